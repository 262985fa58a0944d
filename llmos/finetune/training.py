"""Train a LoRA adapter (PEFT) on dialogues, on CPU, with checkpoints a killed run resumes from.

    manifest = finetune("support.csv", "support-lora", FinetuneSettings(answer_column="response"))

A small loop of its own rather than transformers' Trainer: the loss is computed on the
assistant's tokens only and only there (see llmos.finetune.loss), progress goes to a
`Reporter`, and a checkpoint holds exactly what resuming needs: the adapter's weights,
the optimizer and schedule, the step, the RNG states and the counters. The chats each
step trains on follow from the seed and the step alone, so a resumed run goes on with
the very chats and dropout masks the uninterrupted run would have used.

The output folder (default `<LLMOS_HOME>/adapters/<NAME>`) holds `checkpoints/` while
training; at the end the adapter (PEFT's `save_pretrained`) and its manifest are
written there, the manifest last, and the checkpoints removed.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from llmos.errors import FinetuneError
from llmos.finetune.adapters import (
    MANIFEST,
    AdapterManifest,
    adapters_home,
    check_name,
    resolve_base,
    weights_sha256,
)
from llmos.finetune.data import Dialogues, read_dialogues
from llmos.finetune.encoding import Example, encode
from llmos.finetune.loss import by_length, collate, mean_loss, pad_id_of, perplexity, summed_loss
from llmos.finetune.settings import FinetuneSettings

CHECKPOINTS = "checkpoints"
STATE = "state.pt"
INFO = "checkpoint.json"


class Reporter:
    """What a run tells as it goes; the default tells nothing. The CLI draws a progress bar from it."""

    def status(self, text: str) -> None:
        """A phase begins: loading, validation, saving."""

    def validation(self, done: int, total: int) -> None:
        """`done` of `total` held-out chats scored."""

    def start(self, first_step: int, steps: int) -> None:
        """Training starts at `first_step` (0, or where a checkpoint left off)."""

    def step(self, step: int, steps: int, loss: float, tokens_per_s: float) -> None:
        """Optimizer step `step` (1-based) is done; `loss` is its mean per trained token."""

    def checkpoint(self, step: int, path: Path) -> None:
        """A checkpoint was written."""


def reported_loss(model: Any, examples: list[Example], *, pad_id: int, reporter: Reporter, status: str) -> float:
    """mean_loss over `examples`, the reporter told what is scored and how far it got."""
    reporter.status(status)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        reporter.validation(done, len(examples))

    return mean_loss(model, examples, pad_id=pad_id, on_batch=advance)


def split_data(dialogues: Dialogues, settings: FinetuneSettings) -> tuple[Dialogues, Dialogues]:
    """The run's (train, validation) chats: `llmos eval dialogue` draws the same split from the same settings."""
    return dialogues.split(settings.validation, max_validation=settings.max_validation, seed=settings.seed)


def finetune(
    data: str | Path,
    name: str,
    settings: FinetuneSettings | None = None,
    *,
    out: Path | None = None,
    checkpoint_every: int = 10,
    threads: int | None = None,
    restart: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> AdapterManifest:
    """Train, or resume, the adapter `name` on the dialogue file `data`; returns its manifest once saved."""
    started = time.monotonic()
    settings = settings or FinetuneSettings()
    reporter = reporter or Reporter()
    check_name(name)
    if checkpoint_every < 1:
        raise FinetuneError(f"--checkpoint-every must be at least 1, got {checkpoint_every}.")
    folder = Path(out).expanduser() if out is not None else adapters_home() / name
    if (folder / MANIFEST).is_file() and not overwrite:
        raise FinetuneError(
            f"Adapter '{name}' already exists at {folder}. Choose another --name, or pass --overwrite to train it again."
        )
    dialogues = read_dialogues(
        data, question_column=settings.question_column, answer_column=settings.answer_column,
        messages_column=settings.messages_column, system=settings.system,
    )
    reporter.status(f"Preparing the base model {settings.base}")
    base, base_folder = resolve_base(settings.base)
    base_sha256 = weights_sha256(base_folder)
    fingerprint = settings.fingerprint(data_sha256=dialogues.sha256, base_sha256=base_sha256)
    checkpoints = folder / CHECKPOINTS
    resume = _latest_checkpoint(checkpoints)
    if resume is not None and (restart or resume[1]["fingerprint"] != fingerprint):
        if not restart:
            raise FinetuneError(
                f"{folder} holds an unfinished run (step {resume[1]['step']}) started with other arguments or data. "
                "Start it again with the same ones to resume it, or pass --restart to discard it."
            )
        shutil.rmtree(checkpoints)
        resume = None
    train, valid = split_data(dialogues, settings)

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmos.llm.local.engine import pick_dtype

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_transformers()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    reporter.status(f"Loading {settings.base}")
    tokenizer = AutoTokenizer.from_pretrained(base_folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=pick_dtype(settings.dtype), local_files_only=True)
    model.config.use_cache = False
    train_examples, dropped_train = encode(tokenizer, train, settings.max_length)
    valid_examples, dropped_valid = encode(tokenizer, valid, settings.max_length)
    if not train_examples:
        raise FinetuneError(
            f"No training chat has an assistant token within the first {settings.max_length} tokens. "
            "Raise --max-length, or shorten what comes before the answers."
        )
    layers = model.config.num_hidden_layers
    lora = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        layers_to_transform=list(range(max(0, layers - settings.top_layers), layers)) if settings.top_layers else None,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(settings.seed)  # LoRA's A matrices are drawn at random
    model = get_peft_model(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(settings.warmup_steps, settings.steps))
    pad_id = pad_id_of(tokenizer)

    def validate(label: str) -> float | None:
        if not valid_examples:
            return None
        status = f"Validation loss {label} ({len(valid_examples)} held-out chats)"
        return reported_loss(model, valid_examples, pad_id=pad_id, reporter=reporter, status=status)

    counters = {"step": 0, "train_seconds": 0.0, "train_tokens": 0, "loss_before": None, "resumed": 0,
                "elapsed_before": 0.0}
    if resume is not None:
        counters = _load_checkpoint(resume[0], model, optimizer, schedule)
        counters["resumed"] += 1
    else:
        # The adapter starts as a no-op (LoRA's B matrices are zero): this is the base model's loss.
        counters["loss_before"] = validate("before")

    model.train()
    reporter.start(counters["step"], settings.steps)
    for step in range(counters["step"], settings.steps):
        chats = _chats_of_step(len(train_examples), step, settings)
        examples = [train_examples[i] for i in chats]
        targets = sum(e.target_tokens for e in examples)
        tick = time.monotonic()
        total = 0.0
        for batch in by_length(examples, settings.batch_size):
            loss, _ = summed_loss(model, collate(batch, pad_id))
            (loss / targets).backward()  # the step's mean over its trained tokens, whatever the batching
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.monotonic() - tick
        counters["step"] = step + 1
        counters["train_seconds"] += seconds
        counters["train_tokens"] += sum(len(e.input_ids) for e in examples)
        reporter.step(step + 1, settings.steps, total / targets, counters["train_tokens"] / counters["train_seconds"])
        if (step + 1) % checkpoint_every == 0 and step + 1 < settings.steps:
            counters_now = {**counters, "elapsed_before": counters["elapsed_before"] + time.monotonic() - started}
            path = _save_checkpoint(checkpoints, model, optimizer, schedule, counters_now, fingerprint)
            reporter.checkpoint(step + 1, path)

    loss_after = validate("after")
    reporter.status(f"Saving the adapter to {folder}")
    (folder / MANIFEST).unlink(missing_ok=True)  # an overwritten adapter is not complete until its new manifest is
    model.save_pretrained(folder)
    manifest = AdapterManifest(
        name=name,
        base=base,
        base_sha256=base_sha256,
        data=str(Path(data).expanduser().resolve()),
        data_sha256=dialogues.sha256,
        settings=settings,
        train_chats=len(train_examples),
        validation_chats=len(valid_examples),
        dropped_chats=dropped_train + dropped_valid,
        steps=settings.steps,
        loss_before=counters["loss_before"],
        loss_after=loss_after,
        perplexity_before=perplexity(counters["loss_before"]),
        perplexity_after=perplexity(loss_after),
        train_minutes=counters["train_seconds"] / 60,
        total_minutes=(counters["elapsed_before"] + time.monotonic() - started) / 60,
        train_tokens=counters["train_tokens"],
        tokens_per_s=counters["train_tokens"] / max(counters["train_seconds"], 1e-9),
        resumed=counters["resumed"],
    )
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    shutil.rmtree(checkpoints, ignore_errors=True)
    return manifest


def quiet_transformers() -> None:
    """No weight-loading bar (it would cut into ours) and no deprecation notice PEFT triggers in transformers."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _chats_of_step(n: int, step: int, settings: FinetuneSettings) -> list[int]:
    """Indexes of the training chats of optimizer step `step`: epochs of seeded shuffles, back to back."""
    per_step = settings.chats_per_step
    chosen, orders = [], {}
    for k in range(step * per_step, (step + 1) * per_step):
        epoch, position = divmod(k, n)
        if epoch not in orders:
            order = list(range(n))
            random.Random(settings.seed * 1_000_003 + epoch).shuffle(order)
            orders[epoch] = order
        chosen.append(orders[epoch][position])
    return chosen


def _warmup_cosine(warmup: int, steps: int):
    """Learning-rate factor: linear warm-up, then a cosine down to a tenth."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


# --- checkpoints -------------------------------------------------------------------


def _save_checkpoint(root: Path, model: Any, optimizer: Any, schedule: Any, counters: dict, fingerprint: str) -> Path:
    """Write `root/step-NNNNNN` (through a temporary folder, so a kill never leaves half of one); keep only it."""
    import torch
    from peft import get_peft_model_state_dict

    step = counters["step"]
    target = root / f"step-{step:06d}"
    work = root / f".step-{step:06d}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    state = {
        "adapter": get_peft_model_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }
    torch.save(state, work / STATE)
    (work / INFO).write_text(json.dumps({"fingerprint": fingerprint, **counters}, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(work, target)
    for old in root.glob("step-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _latest_checkpoint(root: Path) -> tuple[Path, dict] | None:
    """(folder, its info) of the last complete checkpoint, or None."""
    found = []
    for folder in root.glob("step-*") if root.is_dir() else []:
        try:
            info = json.loads((folder / INFO).read_text())
        except (OSError, ValueError):
            continue
        if (folder / STATE).is_file():
            found.append((info["step"], folder, info))
    if not found:
        return None
    _, folder, info = max(found, key=lambda f: f[0])
    return folder, info


def _load_checkpoint(folder: Path, model: Any, optimizer: Any, schedule: Any) -> dict:
    import torch
    from peft import set_peft_model_state_dict

    state = torch.load(folder / STATE, weights_only=False)  # our own file: optimizer state and RNG tuples
    set_peft_model_state_dict(model, state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    info = json.loads((folder / INFO).read_text())
    info.pop("fingerprint")
    return info
