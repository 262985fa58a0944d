"""`llmos eval dialogue`: the base model and an adapter on the same held-out chats.

Both are scored on one model in memory (PEFT can switch its adapter off), so the only
difference between the two figures is the adapter. When the file is the one the adapter
was trained on (same SHA-256), the held-out chats are exactly its validation split,
drawn again from the manifest's settings; any other file is held out whole.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llmos.errors import FinetuneError
from llmos.finetune.adapters import locate, read_manifest, resolve_base
from llmos.finetune.data import Turn, read_dialogues
from llmos.finetune.encoding import encode
from llmos.finetune.loss import pad_id_of, perplexity
from llmos.finetune.training import Reporter, quiet_transformers, reported_loss, split_data


class SideBySide(BaseModel):
    """One held-out chat: its last question, the answer in the data, and what each model writes."""

    question: str
    reference: str
    base: str
    adapter: str


class DialogueReport(BaseModel):
    adapter: str
    base: str
    data: str
    data_sha256: str
    held_out: str = Field(description="'validation split' of the training file, or 'whole file'.")
    chats: int
    loss_base: float
    loss_adapter: float
    perplexity_base: float
    perplexity_adapter: float
    perplexity_ratio: float = Field(description="perplexity_adapter / perplexity_base: below 1, the adapter helps.")
    samples: list[SideBySide]
    max_new_tokens: int
    seconds: float


def evaluate_dialogue(
    adapter: str,
    data: str | Path,
    *,
    samples: int = 3,
    max_new_tokens: int = 64,
    max_chats: int | None = None,
    threads: int | None = None,
    columns: dict[str, str] | None = None,
    reporter: Reporter | None = None,
) -> DialogueReport:
    """Held-out loss and perplexity of the base and of base + `adapter`, and `samples` answers side by side.

    `columns` overrides the manifest's question_column / answer_column / messages_column for another file.
    """
    started = time.monotonic()
    reporter = reporter or Reporter()
    folder = locate(adapter)
    manifest = read_manifest(folder)
    settings = manifest.settings.model_copy(update=columns or {})
    dialogues = read_dialogues(
        data, question_column=settings.question_column, answer_column=settings.answer_column,
        messages_column=settings.messages_column, system=settings.system,
    )
    if dialogues.sha256 == manifest.data_sha256:
        held_out, kind = split_data(dialogues, settings)[1], "validation split"
        if not len(held_out):
            raise FinetuneError(
                f"Adapter '{manifest.name}' was trained with no validation split (--validation 0): "
                "evaluate it on another file."
            )
    else:
        held_out, kind = dialogues, "whole file"
    if max_chats is not None:
        held_out = held_out.subset(list(range(min(max_chats, len(held_out)))))

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmos.llm.local.engine import pick_dtype

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_transformers()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    reporter.status(f"Loading {manifest.base} with adapter {manifest.name}")
    _, base_folder = resolve_base(manifest.base)
    tokenizer = AutoTokenizer.from_pretrained(base_folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=pick_dtype(settings.dtype), local_files_only=True)
    model = PeftModel.from_pretrained(model, folder, is_trainable=False)
    model.eval()
    examples, _ = encode(tokenizer, held_out, settings.max_length)
    if not examples:
        raise FinetuneError(f"No held-out chat has an assistant token within {settings.max_length} tokens.")
    pad_id = pad_id_of(tokenizer)

    def score(label: str) -> float:
        status = f"Validation loss, {label} ({len(examples)} chats)"
        return reported_loss(model, examples, pad_id=pad_id, reporter=reporter, status=status)

    with model.disable_adapter():
        loss_base = score("base model")
    loss_adapter = score("with the adapter")
    rows = []
    answerable = [c for c in held_out.chats if any(t.role == "user" for t in c)][:samples]
    for chat in answerable:
        reporter.status(f"Answering {len(rows) + 1}/{len(answerable)} side by side")
        prompt, reference = _prompt_and_reference(chat)
        with model.disable_adapter():
            base_answer = _answer(model, tokenizer, prompt, max_new_tokens)
        rows.append(SideBySide(question=prompt[-1]["content"], reference=reference, base=base_answer,
                               adapter=_answer(model, tokenizer, prompt, max_new_tokens)))
    ppl_base, ppl_adapter = perplexity(loss_base), perplexity(loss_adapter)
    return DialogueReport(
        adapter=manifest.name, base=manifest.base, data=str(Path(data).expanduser().resolve()),
        data_sha256=dialogues.sha256, held_out=kind, chats=len(examples),
        loss_base=loss_base, loss_adapter=loss_adapter, perplexity_base=ppl_base, perplexity_adapter=ppl_adapter,
        perplexity_ratio=ppl_adapter / ppl_base, samples=rows, max_new_tokens=max_new_tokens,
        seconds=time.monotonic() - started,
    )


def _prompt_and_reference(chat: list[Turn]) -> tuple[list[dict[str, str]], str]:
    """The chat up to its last assistant turn, and that turn's text (the chat has a user turn before it)."""
    last = max(i for i, t in enumerate(chat) if t.role == "assistant")
    return [{"role": t.role, "content": t.content} for t in chat[:last]], chat[last].content


def _answer(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int) -> str:
    """A greedy answer of at most `max_new_tokens` tokens."""
    import torch

    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(
            **ids, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=pad_id_of(tokenizer),
        )
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
