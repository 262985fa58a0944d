"""`llmos finetune` and `llmos eval dialogue`.

`register(app)` adds them to the main `llmos` app (`eval` is the knowledge commands' group).
Heavy imports happen inside the commands, so that `llmos --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from llmos.commands import run_command
from llmos.finetune.settings import FinetuneSettings
from llmos.finetune.training import Reporter

console = Console(highlight=False, soft_wrap=True)
_DEFAULTS = FinetuneSettings()


def _guard(fn):
    return run_command(fn, console)


class BarReporter(Reporter):
    """A rich progress bar: the phase, then the steps with the last step's loss and the tokens/s.

    Where the output is not a terminal (a log file, CI), a bar is never drawn: phases and
    steps are printed as lines instead.
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.lines = not progress.console.is_terminal

    def _line(self, text: str) -> None:
        if self.lines:
            self.progress.console.print(text)

    def _task(self, description: str, total: float | None, **fields) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(description, total=total, **{"detail": "", **fields})

    def status(self, text: str) -> None:
        self._task(text, None)
        self._line(text)

    def validation(self, done: int, total: int) -> None:
        self.progress.update(self.task, total=total, completed=done, detail=f"{done}/{total} chats")

    def start(self, first_step: int, steps: int) -> None:
        if first_step:
            self.progress.console.print(f"Resuming from the checkpoint at step {first_step}.")
        self._task("Training", steps)
        self.progress.update(self.task, completed=first_step, detail=f"step {first_step}/{steps}")

    def step(self, step: int, steps: int, loss: float, tokens_per_s: float) -> None:
        detail = f"step {step}/{steps}  loss {loss:.3f}  {tokens_per_s:.0f} tok/s"
        self.progress.update(self.task, completed=step, detail=detail)
        self._line(detail)

    def checkpoint(self, step: int, path: Path) -> None:
        self.progress.console.print(f"[dim]Checkpoint at step {step}: {path}[/]")


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console)


def finetune_command(
    data: Annotated[Path, typer.Argument(help="Dialogues: a CSV or JSON-lines file (single-turn columns, or a messages list).")],
    name: Annotated[str, typer.Option(help="Save as LLMOS_HOME/adapters/NAME; use it as the model BASE+NAME.")],
    base: Annotated[str, typer.Option(help="The base model: a catalog name or a model folder.")] = _DEFAULTS.base,
    question_column: Annotated[str, typer.Option(help="Single-turn data: the user's column.")] = _DEFAULTS.question_column,
    answer_column: Annotated[str, typer.Option(help="Single-turn data: the assistant's column.")] = _DEFAULTS.answer_column,
    messages_column: Annotated[str, typer.Option(help="Multi-turn data: the column of [{role, content}] lists.")] = _DEFAULTS.messages_column,
    system: Annotated[Optional[str], typer.Option(help="A system message put first in chats that have none.")] = None,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = _DEFAULTS.rank,
    alpha: Annotated[int, typer.Option(help="LoRA alpha (the update is scaled by alpha/rank).")] = _DEFAULTS.alpha,
    dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = _DEFAULTS.dropout,
    target_modules: Annotated[str, typer.Option(help="Comma-separated module names LoRA adapts.")] = ",".join(_DEFAULTS.target_modules),
    top_layers: Annotated[Optional[int], typer.Option(help="Adapt only the last N layers (faster); default: all.")] = _DEFAULTS.top_layers,
    max_length: Annotated[int, typer.Option(help="Tokens per chat; longer chats are cut.")] = _DEFAULTS.max_length,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = _DEFAULTS.steps,
    batch_size: Annotated[int, typer.Option(help="Chats per forward pass.")] = _DEFAULTS.batch_size,
    grad_accumulation: Annotated[int, typer.Option(help="Forward passes per optimizer step.")] = _DEFAULTS.grad_accumulation,
    lr: Annotated[float, typer.Option(help="Peak learning rate (warm-up, then cosine).")] = _DEFAULTS.lr,
    warmup_steps: Annotated[int, typer.Option(help="Warm-up steps.")] = _DEFAULTS.warmup_steps,
    validation: Annotated[float, typer.Option(help="Share of chats held out to measure the loss (0: none).")] = _DEFAULTS.validation,
    max_validation: Annotated[int, typer.Option(help="At most this many held-out chats.")] = _DEFAULTS.max_validation,
    seed: Annotated[int, typer.Option(help="Seed of the split, the order and the LoRA init.")] = _DEFAULTS.seed,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16 (bf16 backward passes are slow on CPUs without AMX).")] = _DEFAULTS.dtype,
    checkpoint_every: Annotated[int, typer.Option(help="Write a checkpoint every N steps.")] = 10,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Save to this folder instead of LLMOS_HOME/adapters/NAME.")] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Discard an unfinished run's checkpoints and start over.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an adapter of this name.")] = False,
) -> None:
    """Fine-tune the local model on dialogues with LoRA. A killed run resumes from its last checkpoint
    when started again with the same arguments."""

    def run() -> None:
        from llmos.finetune.training import finetune

        settings = FinetuneSettings(
            base=base, question_column=question_column, answer_column=answer_column, messages_column=messages_column,
            system=system, rank=rank, alpha=alpha, dropout=dropout,
            target_modules=[m.strip() for m in target_modules.split(",") if m.strip()], top_layers=top_layers,
            max_length=max_length, steps=steps, batch_size=batch_size, grad_accumulation=grad_accumulation, lr=lr,
            warmup_steps=warmup_steps, validation=validation, max_validation=max_validation, seed=seed, dtype=dtype,
        )
        with _bar() as bar:
            m = finetune(data, name, settings, out=out, checkpoint_every=checkpoint_every, threads=threads,
                         restart=restart, overwrite=overwrite, reporter=BarReporter(bar))
        table = Table("", "base", "with adapter", title=f"Adapter {m.name}: {m.train_chats} chats, {m.steps} steps")
        if m.loss_after is not None:
            table.add_row("validation loss", f"{m.loss_before:.4f}", f"{m.loss_after:.4f}")
            table.add_row("validation perplexity", f"{m.perplexity_before:.3f}", f"{m.perplexity_after:.3f}")
        console.print(table)
        console.print(f"Trained in {m.train_minutes:.1f} min ({m.tokens_per_s:.0f} tokens/s); "
                      f"whole run {m.total_minutes:.1f} min.")
        from llmos.finetune.adapters import adapters_home

        # An adapter outside LLMOS_HOME/adapters is named by its folder: BASE+/path/to/it.
        use = m.model_name if out is None else f"{m.base}+{out.expanduser().resolve()}"
        console.print(f"[green]Saved[/] {out or adapters_home() / m.name}. Use it as the model [bold]{use}[/].")

    _guard(run)


def eval_dialogue(
    data: Annotated[Path, typer.Argument(help="Dialogues (the training file: its validation split is used).")],
    adapter: Annotated[str, typer.Option(help="The adapter's name (under LLMOS_HOME/adapters) or folder.")],
    out: Annotated[
        Optional[Path], typer.Option(help="JSON output (default: LLMOS_HOME/evals/dialogue_<adapter>_<data>.json).")
    ] = None,
    samples: Annotated[int, typer.Option(help="Held-out chats answered by both models, side by side.")] = 3,
    max_new_tokens: Annotated[int, typer.Option(help="Longest side-by-side answer, in tokens.")] = 64,
    max_chats: Annotated[Optional[int], typer.Option(help="Score at most this many held-out chats.")] = None,
    question_column: Annotated[Optional[str], typer.Option(help="Default: as the adapter was trained.")] = None,
    answer_column: Annotated[Optional[str], typer.Option(help="Default: as the adapter was trained.")] = None,
    messages_column: Annotated[Optional[str], typer.Option(help="Default: as the adapter was trained.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores).")] = None,
) -> None:
    """Held-out loss and perplexity of the base model and of an adapter on the same chats, plus answers side by side."""

    def run() -> None:
        from llmos.config import get_settings
        from llmos.finetune.evaluation import evaluate_dialogue

        columns = {k: v for k, v in (("question_column", question_column), ("answer_column", answer_column),
                                      ("messages_column", messages_column)) if v is not None}
        with _bar() as bar:
            report = evaluate_dialogue(adapter, data, samples=samples, max_new_tokens=max_new_tokens, max_chats=max_chats,
                                       threads=threads, columns=columns, reporter=BarReporter(bar))
        table = Table("", "base", f"+ {report.adapter}", title=f"{report.chats} held-out chats ({report.held_out})")
        table.add_row("loss per token", f"{report.loss_base:.4f}", f"{report.loss_adapter:.4f}")
        table.add_row("perplexity", f"{report.perplexity_base:.3f}", f"{report.perplexity_adapter:.3f}")
        table.add_row("ratio", "", f"{report.perplexity_ratio:.3f}")
        console.print(table)
        answers = Table("question", "in the data", "base", f"+ {report.adapter}",
                        title=f"Answers (at most {report.max_new_tokens} tokens)", show_lines=True)
        for s in report.samples:
            answers.add_row(s.question, _cut(s.reference), s.base, s.adapter)
        console.print(answers)
        path = out or get_settings().home / "evals" / f"dialogue_{report.adapter}_{data.stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.model_dump(), indent=2, ensure_ascii=False) + "\n")
        console.print(f"Wrote {path}")

    _guard(run)


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def register(app: typer.Typer) -> None:
    """Add `finetune` and `eval dialogue` to the `llmos` app."""
    from llmos.knowledge.cli import eval_app

    app.command("finetune")(finetune_command)
    eval_app.command("dialogue")(eval_dialogue)
