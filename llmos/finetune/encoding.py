"""Chats to token ids and labels: the base model's chat template, loss on the assistant's tokens only.

Each chat is rendered whole with the tokenizer's chat template, exactly as the model
sees a conversation when it answers. Every assistant turn is located by rendering the
chat up to it twice, with and without that turn: the text between is what the model
writes there (its content and the end-of-turn marker, so that it learns to stop). Tokens
inside those spans keep their id as label; every other token (system prompt, user turns,
the template's markup) gets -100, which the loss ignores, as in TRL's SFT recipe with
assistant-only loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmos.errors import FinetuneError
from llmos.finetune.data import Dialogues, Turn

IGNORE = -100
"""The label of a token the loss skips (PyTorch's cross-entropy `ignore_index`)."""


@dataclass(frozen=True)
class Example:
    """One chat as the model trains on it."""

    input_ids: list[int]
    labels: list[int]

    @property
    def target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def encode_chat(tokenizer: Any, chat: list[Turn], max_length: int) -> Example | None:
    """Token ids and labels of one chat, cut to `max_length` tokens; None if nothing to learn is left.

    An assistant turn that opens a chat (nothing before it to answer) is kept as context, not trained.
    """
    messages = [{"role": t.role, "content": t.content} for t in chat]
    full = _render(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for i, turn in enumerate(chat):
        if turn.role != "assistant" or i == 0:
            continue
        before = _render(tokenizer, messages[:i], add_generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not through.startswith(before) or not full.startswith(through):
            raise FinetuneError(
                "The base model's chat template does not render a conversation as the prefix of its continuation, "
                "so the assistant's turns cannot be found in it. Fine-tuning needs a model whose template does."
            )
        # Trailing whitespace after the end-of-turn marker belongs to the template, not to the answer.
        spans.append((len(before), len(through.rstrip())))
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"][:max_length]
    offsets = encoded["offset_mapping"][:max_length]
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORE
        for token, (begin, _) in zip(ids, offsets)
    ]
    if all(label == IGNORE for label in labels):
        return None
    return Example(input_ids=list(ids), labels=labels)


def encode(tokenizer: Any, dialogues: Dialogues, max_length: int) -> tuple[list[Example], int]:
    """(examples, how many chats were dropped because no assistant token fit in `max_length`)."""
    examples = [encode_chat(tokenizer, chat, max_length) for chat in dialogues.chats]
    kept = [e for e in examples if e is not None]
    return kept, len(examples) - len(kept)


def _render(tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
