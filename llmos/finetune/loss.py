"""The loss of a causal LM on encoded chats: summed over the assistant's tokens, and nothing else.

The output layer of a small model is its most expensive matrix (Qwen2.5-0.5B: a
151,936-word vocabulary, a quarter of its weights), so logits are computed only at the
positions whose next token is trained, not at every prompt or padding position as the
model's own `forward(labels=...)` would.
"""

from __future__ import annotations

import math
from typing import Any

from llmos.finetune.encoding import IGNORE, Example


def collate(examples: list[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for a batch: input_ids, attention_mask, labels (-100 on padding)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def summed_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """(sum of the cross-entropy over trained tokens, as a tensor with its graph; how many tokens)."""
    import torch.nn.functional as F

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model, or a plain one
    hidden = inner.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]  # the token at t+1 is predicted at t
    keep = targets != IGNORE
    logits = inner.get_output_embeddings()(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, targets[keep], reduction="sum"), int(keep.sum())


def by_length(examples: list[Example], batch_size: int) -> list[list[Example]]:
    """Batches of chats of similar length (little padding), longest first."""
    ordered = sorted(examples, key=lambda e: len(e.input_ids), reverse=True)
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def pad_id_of(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its end-of-text token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def mean_loss(model: Any, examples: list[Example], *, pad_id: int, batch_size: int = 4, on_batch=None) -> float:
    """Mean loss per trained token over `examples`, in eval mode, without gradients."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.inference_mode():
            for batch in by_length(examples, batch_size):
                loss, n = summed_loss(model, collate(batch, pad_id))
                total, count = total + float(loss), count + n
                if on_batch is not None:
                    on_batch(len(batch))
    finally:
        model.train(was_training)
    return total / max(count, 1)


def perplexity(loss: float | None) -> float | None:
    return None if loss is None else math.exp(loss)
