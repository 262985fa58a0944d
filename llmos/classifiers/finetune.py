"""Full fine-tuning: the encoder and a linear head trained together with cross-entropy.

    classifier = train_classifier(data, TrainSettings(method="finetune", epochs=3), name="intents")

The model is the encoder's own pipeline (mean pooling, then unit length) followed by a linear
layer over the labels, so a fine-tuned classifier is saved and loaded exactly like the others
(encoder/ + head.npz + manifest.json) and predicts through the same TrainedClassifier.

The head starts from the logistic regression fitted on the untuned vectors (a linear probe,
then fine-tuning: the encoder is not pulled about by a random head in the first steps), and
learns at its own, larger rate. AdamW, linear warm-up over the first tenth of the steps, then
linear decay. `max_minutes` ends training cleanly between two steps, before one that would end past
the budget; the model is kept as it is.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter

import numpy as np

from llmos.classifiers.data import LabelledTexts
from llmos.classifiers.trained import LinearHead
from llmos.classifiers.training import step_fits


def tune_classification(encoder, head: LinearHead, data: LabelledTexts, settings, progress=None,
                        deadline: float | None = None) -> tuple[LinearHead, dict]:
    """Train `encoder` (in place) and a copy of `head` on `data`; returns the new head and what happened
    (steps run of the planned, whether time ran out, the last loss)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    labels = sorted(set(data.labels))
    index = {label: i for i, label in enumerate(labels)}
    targets = [index[label] for label in data.labels]
    coef, intercept = softmax_rows(head)
    linear = torch.nn.Linear(coef.shape[1], len(labels))
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(coef))
        linear.bias.copy_(torch.from_numpy(intercept))

    weight = None
    if settings.class_weight == "balanced":  # as scikit-learn's: n / (labels * count)
        counts = Counter(targets)
        weight = torch.tensor([len(targets) / (len(labels) * counts[i]) for i in range(len(labels))], dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)

    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    per_epoch = math.ceil(len(data) / settings.batch_size)
    total = max(1, round(per_epoch * settings.epochs))
    optimizer = torch.optim.AdamW([
        {"params": list(encoder.parameters()), "lr": settings.learning_rate},
        {"params": list(linear.parameters()), "lr": settings.head_learning_rate},
    ], weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, total // 10), total)
    tokenize = getattr(encoder, "preprocess", None) or encoder.tokenize
    order: list[int] = []
    step, loss_value, stopped, step_seconds = 0, float("nan"), False, 0.0
    encoder.train()
    try:
        while step < total:
            if not step_fits(deadline, step_seconds):
                stopped = True
                break
            started = time.monotonic()
            if len(order) < settings.batch_size:  # a new epoch: reshuffle (the tail of the last one goes first)
                fresh = list(range(len(data)))
                rng.shuffle(fresh)
                order += fresh
            batch, order = order[:settings.batch_size], order[settings.batch_size:]
            features = tokenize([data.texts[i] for i in batch])
            vectors = encoder(features)["sentence_embedding"]
            loss = loss_fn(linear(vectors), torch.tensor([targets[i] for i in batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(encoder.parameters()) + list(linear.parameters()), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step, step_seconds = step + 1, time.monotonic() - started
            loss_value = float(loss.detach())
            if progress is not None:
                progress(step, total, loss_value)
    finally:
        encoder.eval()
    tuned = LinearHead(coef=linear.weight.detach().numpy().astype(np.float32).copy(),
                       intercept=linear.bias.detach().numpy().astype(np.float32).copy())
    return tuned, {"steps": step, "planned_steps": total, "stopped_by_time": stopped, "last_loss": round(loss_value, 4)}


def softmax_rows(head: LinearHead) -> tuple[np.ndarray, np.ndarray]:
    """One row per label. A two-label logistic regression stores one row (a sigmoid); the softmax over
    [0, s] is that sigmoid, so the rows are zeros and the stored one."""
    if head.coef.shape[0] == 1:
        return (np.concatenate([np.zeros_like(head.coef), head.coef]).astype(np.float32),
                np.concatenate([np.zeros_like(head.intercept), head.intercept]).astype(np.float32))
    return head.coef.astype(np.float32), head.intercept.astype(np.float32)
