"""Train a text classifier on labelled texts: frozen embeddings + logistic regression, a SetFit-style tune, or a full fine-tune.

    data = read_labelled_csv("tickets.csv", label_column="intent")
    classifier = train_classifier(data, TrainSettings(method="setfit", max_steps=300), name="intents")
    classifier.save(folder)

frozen: the encoder (llmos's packaged all-MiniLM-L6-v2 unless told otherwise) embeds every
    text once; a logistic regression learns the labels from the vectors. Seconds to a minute.
setfit: first the encoder itself is tuned contrastively, as SetFit does (Tunstall et al. 2022):
    pairs of texts with the same label are pulled together and pairs with different labels
    pushed apart (cosine-similarity loss, 1 for same, 0 for different). Then the head is fitted
    on the tuned vectors as above. `max_steps` bounds the tuning, so it ends in minutes on 2 cores.
finetune: the head is fitted as above on the untuned vectors, then the encoder and the head are
    trained together with cross-entropy for `epochs` passes (llmos.classifiers.finetune);
    optionally after `contrastive_steps` of the SetFit stage. The most accurate, and the slowest.

`max_minutes` bounds the tuning of setfit and finetune: training stops cleanly between two steps,
before a step that would end past the budget, and the classifier is kept as it is then (the
manifest says so).

The loop is ours (a few lines over sentence-transformers' CosineSimilarityLoss) rather than the
setfit package: that package pulls in datasets, pyarrow, pandas and evaluate, and pins the
training loop; a step budget and a progress callback are all that is needed here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from llmos.classifiers.data import LabelledTexts
from llmos.classifiers.evaluation import evaluate
from llmos.classifiers.trained import (
    DataInfo,
    EncoderInfo,
    LinearHead,
    Manifest,
    TrainedClassifier,
    embed,
    encoder_folder,
    load_encoder,
    weights_sha256,
)
from llmos.errors import TrainingDataError

Progress = Callable[[int, int, float], None]
"""(step, max_steps, loss) after each tuning step."""


DEFAULT_LEARNING_RATES = {"frozen": 2e-5, "setfit": 2e-5, "finetune": 5e-5}


class TrainSettings(BaseModel):
    method: Literal["frozen", "setfit", "finetune"] = "frozen"
    encoder: str = Field("default", description="'default' (llmos's packaged MiniLM) or a sentence-transformers folder.")
    validation: float = Field(0.2, ge=0, lt=1, description="Share of rows held out (stratified) to measure the model.")
    seed: int = 0
    c: float = Field(10.0, gt=0, description="Inverse regularisation of the logistic regression (unit vectors need a large C).")
    max_steps: int = Field(200, ge=1, description="setfit: contrastive steps (batches of pairs).")
    batch_size: int = Field(16, ge=2, description="setfit: pairs per step; finetune: texts per step.")
    learning_rate: float | None = Field(None, gt=0, description="AdamW learning rate of the encoder (None: 2e-5 for setfit, 5e-5 for finetune).")
    max_length: int = Field(128, ge=8, description="Tokens per text; longer texts are cut (short texts train faster).")
    epochs: float = Field(3.0, gt=0, description="finetune: passes over the training rows.")
    head_learning_rate: float = Field(1e-3, gt=0, description="finetune: AdamW learning rate of the linear head.")
    class_weight: Literal["none", "balanced"] = Field("none", description="finetune: weigh the loss by inverse label frequency.")
    contrastive_steps: int = Field(0, ge=0, description="finetune: SetFit contrastive steps before the fine-tune (0: none).")
    max_minutes: float | None = Field(None, gt=0, description="setfit, finetune: stop tuning after this long and keep the model.")

    @model_validator(mode="after")
    def _method_defaults(self) -> TrainSettings:
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LEARNING_RATES[self.method]
        return self


def train_classifier(
    data: LabelledTexts, settings: TrainSettings | None = None, *, name: str = "classifier", progress: Progress | None = None
) -> TrainedClassifier:
    """Split off validation rows, train, and score on them. The result is not saved: call .save(folder)."""
    settings = settings or TrainSettings()
    started = time.perf_counter()
    train, valid = data.split(settings.validation, settings.seed) if settings.validation > 0 else (data, None)
    deadline = time.monotonic() + settings.max_minutes * 60 if settings.max_minutes else None
    folder = encoder_folder(settings.encoder)
    tuning: dict = {}
    if settings.method in ("setfit", "finetune"):
        encoder = load_encoder(folder, shared=False)  # tuned in place: a copy of its own
        encoder.max_seq_length = min(encoder.max_seq_length or settings.max_length, settings.max_length)
        steps = settings.max_steps if settings.method == "setfit" else settings.contrastive_steps
        if steps:
            tuning["contrastive_steps"] = tune_contrastive(encoder, train, settings, progress, steps=steps, deadline=deadline)
        source = "bundled"
    else:
        encoder = load_encoder(folder)
        source = settings.encoder
    head = fit_head(embed(encoder, train.texts), train.labels, settings)
    if settings.method == "finetune":
        from llmos.classifiers.finetune import tune_classification

        head, done = tune_classification(encoder, head, train, settings, progress, deadline)
        tuning.update(done)
    if settings.method != "frozen":  # fewer steps than asked: --max-minutes ended the tuning
        tuning["stopped_by_time"] = tuning.get("stopped_by_time", False) or tuning.get("contrastive_steps", steps) < steps
    labels = sorted(set(train.labels))
    manifest = Manifest(
        name=name, method=settings.method,
        encoder=EncoderInfo(name=folder.name if folder.name != "model" else folder.parent.name, source=source,
                            sha256=weights_sha256(folder)),
        data=DataInfo(source=data.source, sha256=data.sha256, rows=len(data), train_rows=len(train),
                      validation_rows=len(valid) if valid else 0, counts=data.counts()),
        labels=labels, settings=settings.model_dump(), train_seconds=0.0, created=datetime.now(timezone.utc),
        tuning=tuning,
    )
    classifier = TrainedClassifier(encoder, head, manifest)
    manifest.train_seconds = round(time.perf_counter() - started, 2)
    if valid is not None:
        report = evaluate(classifier, valid)
        manifest.metrics = {"validation_accuracy": report.accuracy, "validation_macro_f1": report.macro_f1,
                            "validation_rows": report.rows}
    return classifier


def fit_head(vectors: np.ndarray, labels: list[str], settings: TrainSettings) -> LinearHead:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=settings.c, max_iter=2000)
    model.fit(vectors, labels)
    if list(model.classes_) != sorted(set(labels)):  # the manifest's label order is the columns' order
        raise TrainingDataError("The head's classes came out in an unexpected order; this is a bug, please report it.")
    return LinearHead.from_sklearn(model)


def tune_contrastive(encoder, data: LabelledTexts, settings: TrainSettings, progress: Progress | None = None, *,
                     steps: int | None = None, deadline: float | None = None) -> int:
    """SetFit's first stage: `steps` (default `max_steps`) batches of same-label (target 1) and different-label
    (target 0) pairs, fewer if `deadline` (time.monotonic()) passes. Returns the steps run."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    try:
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.losses import CosineSimilarityLoss

    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    loss_fn = CosineSimilarityLoss(encoder)
    total = steps or settings.max_steps
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=DEFAULT_LEARNING_RATES["setfit"] if settings.method != "setfit"
                                  else settings.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, total // 10), total)
    tokenize = getattr(encoder, "preprocess", None) or encoder.tokenize
    by_label: dict[str, list[str]] = {}
    for text, label in zip(data.texts, data.labels):
        by_label.setdefault(label, []).append(text)
    encoder.train()
    done, step_seconds = 0, 0.0
    try:
        for step in range(1, total + 1):
            if not step_fits(deadline, step_seconds):
                break
            started = time.monotonic()
            left, right, targets = sample_pairs(by_label, settings.batch_size, rng)
            loss = loss_fn([tokenize(left), tokenize(right)], torch.tensor(targets, dtype=torch.float32))
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            done, step_seconds = step, time.monotonic() - started
            if progress is not None:
                progress(step, total, float(loss.detach()))
    finally:
        encoder.eval()
    return done


def step_fits(deadline: float | None, step_seconds: float) -> bool:
    """Whether a step as long as the last one would end before `deadline` (time.monotonic())."""
    return deadline is None or time.monotonic() + step_seconds < deadline


def sample_pairs(by_label: dict[str, list[str]], n: int, rng: random.Random) -> tuple[list[str], list[str], list[float]]:
    """Half same-label pairs (from labels with two or more texts), half pairs of two different labels."""
    labels = list(by_label)
    pairable = [label for label in labels if len(by_label[label]) >= 2]
    left, right, targets = [], [], []
    for i in range(n):
        if i % 2 == 0 and pairable:
            a, b = rng.sample(by_label[rng.choice(pairable)], 2)
            target = 1.0
        else:
            x, y = rng.sample(labels, 2)
            a, b = rng.choice(by_label[x]), rng.choice(by_label[y])
            target = 0.0
        left.append(a)
        right.append(b)
        targets.append(target)
    return left, right, targets


def save_path_for(name: str, out: Path | None, home: Path | None) -> tuple[int | None, Path]:
    """Where `llmos train classifier` saves: --out as given, else the next version under LLMOS_HOME/classifiers/NAME."""
    from llmos.classifiers.trained import next_version_folder

    return (None, out) if out is not None else next_version_folder(name, home)
