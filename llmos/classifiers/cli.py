"""`llmos train classifier` and `llmos eval classifier`.

`register(app)` adds them to the main `llmos` app (`eval` is the knowledge commands' group).
Heavy imports happen inside the commands, so that `llmos --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from llmos.commands import run_command

console = Console(highlight=False, soft_wrap=True)
train_app = typer.Typer(help="Train models on your own data.", no_args_is_help=True)

TextColumn = Annotated[str, typer.Option(help="The column holding the texts.")]
LabelColumn = Annotated[str, typer.Option(help="The column holding the labels.")]
LabelName = Annotated[
    Optional[list[str]], typer.Option("--label-name", help="Rename a label: VALUE=NAME, e.g. 0=negative (repeatable).")
]
Home = Annotated[Optional[Path], typer.Option(help="Where named classifiers live (default: LLMOS_HOME).")]


def _guard(fn):
    return run_command(fn, console)


@train_app.command("classifier")
def train_classifier_command(
    data: Annotated[Path, typer.Argument(help="A CSV file of labelled texts.")],
    name: Annotated[str, typer.Option(help="Save as the next version of this name under LLMOS_HOME/classifiers.")] = "classifier",
    out: Annotated[Optional[Path], typer.Option(help="Save to this folder instead (new or empty).")] = None,
    method: Annotated[str, typer.Option(
        help="frozen (embeddings + logistic regression), setfit (contrastive tune, then the same head) or finetune "
             "(encoder + linear head trained together: the most accurate and the slowest).")] = "frozen",
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    label_name: LabelName = None,
    encoder: Annotated[str, typer.Option(help="'default' (the packaged MiniLM), 'mpnet' (all-mpnet-base-v2, installed apart: "
                                                      "see llmos.classifiers.carried) or a sentence-transformers folder.")] = "default",
    validation: Annotated[float, typer.Option(help="Share of rows held out to measure the model (0: none).")] = 0.2,
    max_steps: Annotated[int, typer.Option(help="setfit: contrastive training steps (the time budget).")] = 200,
    batch_size: Annotated[int, typer.Option(help="setfit: pairs per step; finetune: texts per step.")] = 16,
    epochs: Annotated[float, typer.Option(help="finetune: passes over the training rows.")] = 3.0,
    learning_rate: Annotated[Optional[float], typer.Option(help="setfit, finetune: the encoder's learning rate (default 2e-5, 5e-5).")] = None,
    max_length: Annotated[int, typer.Option(help="Tokens per text; longer texts are cut (short texts train faster).")] = 128,
    class_weight: Annotated[str, typer.Option(help="finetune: none, or balanced (weigh rare labels up).")] = "none",
    contrastive_steps: Annotated[int, typer.Option(help="finetune: SetFit contrastive steps first (0: none).")] = 0,
    max_minutes: Annotated[Optional[float], typer.Option(help="setfit, finetune: stop tuning after this long; the model is still saved.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the split and the pairs.")] = 0,
    home: Home = None,
) -> None:
    """Train a text classifier on a CSV file; saves it, versioned, with a manifest of what it learned from and how well."""

    def run() -> None:
        from rich.progress import BarColumn, Progress, TextColumn as Text, TimeElapsedColumn

        from llmos.classifiers.data import parse_rename, read_labelled_csv
        from llmos.classifiers.training import TrainSettings, save_path_for, train_classifier
        from llmos.errors import ConfigError

        if method not in ("frozen", "setfit", "finetune"):
            raise ConfigError(f"--method {method!r}: write frozen, setfit or finetune.")
        if class_weight not in ("none", "balanced"):
            raise ConfigError(f"--class-weight {class_weight!r}: write none or balanced.")
        try:
            settings = TrainSettings(method=method, encoder=encoder, validation=validation, max_steps=max_steps,
                                     batch_size=batch_size, seed=seed, epochs=epochs, learning_rate=learning_rate,
                                     max_length=max_length, class_weight=class_weight, contrastive_steps=contrastive_steps,
                                     max_minutes=max_minutes)
        except ValueError as exc:
            raise ConfigError(f"Invalid training options: {exc}") from None
        labelled = read_labelled_csv(data, text_column=text_column, label_column=label_column, rename=parse_rename(label_name))
        version, folder = save_path_for(name, out, home)
        console.print(f"{len(labelled)} rows, {len(labelled.classes)} labels; training ({method}) ...")
        with Progress(Text("{task.description}"), BarColumn(), Text("{task.completed}/{task.total}"), Text("loss {task.fields[loss]}"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("tuning the encoder", total=max_steps, loss="-", visible=method != "frozen")
            classifier = train_classifier(
                labelled, settings, name=name,
                progress=lambda step, total, loss: bar.update(task, completed=step, total=total, loss=f"{loss:.4f}"),
            )
        classifier.manifest.version = version
        classifier.save(folder)
        m = classifier.manifest
        scores = (f"validation accuracy {m.metrics['validation_accuracy']:.3f}, macro-F1 {m.metrics['validation_macro_f1']:.3f} "
                  f"on {m.metrics['validation_rows']} rows; ") if m.metrics else ""
        if m.tuning.get("stopped_by_time"):
            console.print(f"[yellow]--max-minutes {max_minutes:g} ended the tuning early[/] "
                          f"({m.tuning.get('steps', m.tuning.get('contrastive_steps', 0))} steps); the model is saved as it was then.")
        console.print(f"[green]Saved {classifier.name}[/] to {folder}: {scores}{m.train_seconds:.0f} s.")

    _guard(run)


def eval_classifier(
    model: Annotated[str, typer.Argument(help="A classifier's name (NAME or NAME@vN) or folder.")],
    data: Annotated[Path, typer.Argument(help="A CSV file of labelled texts.")],
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    label_name: LabelName = None,
    out: Annotated[
        Optional[Path], typer.Option(help="JSON output (default: LLMOS_HOME/evals/classifier_<model>_<data>.json).")
    ] = None,
    baseline: Annotated[
        bool, typer.Option(help="Also score the analysis specialist's default sentiment classifier where labels match.")
    ] = True,
    home: Home = None,
) -> None:
    """Accuracy, macro-F1, a report per label and the confusion matrix of a trained classifier on labelled data."""

    def run() -> None:
        from llmos.classifiers.data import parse_rename, read_labelled_csv
        from llmos.classifiers.evaluation import evaluate, matching_rows
        from llmos.classifiers.trained import load_classifier
        from llmos.config import get_settings

        labelled = read_labelled_csv(data, text_column=text_column, label_column=label_column, rename=parse_rename(label_name))
        with console.status(f"Scoring {model} on {len(labelled)} rows ..."):
            classifier = load_classifier(model, home)
            reports = {classifier.name: evaluate(classifier, labelled)}
        if baseline:
            from llmos.agents.specialists.analysis import default_sentiment_model

            default = default_sentiment_model()
            rows = matching_rows(labelled, default.labels)
            if rows is None:
                console.print(f"[dim]No row has a label of the default sentiment classifier ({', '.join(default.labels)}): "
                              "no comparison. Rename labels with --label-name to compare.[/]")
            else:
                with console.status(f"Scoring the default sentiment classifier on {len(rows)} rows ..."):
                    reports["default-sentiment"] = evaluate(default, rows)
        print_reports(reports)
        path = out or (home.expanduser() if home else get_settings().home) / "evals" / f"classifier_{classifier.manifest.name}_{data.stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"data": str(data), "rows": len(labelled), "model": classifier.name, "manifest": json.loads(classifier.manifest.model_dump_json()),
                   "reports": {k: r.model_dump() for k, r in reports.items()}}
        path.write_text(json.dumps(payload, indent=2) + "\n")
        console.print(f"Wrote {path}")

    _guard(run)


def print_reports(reports: dict) -> None:
    summary = Table("classifier", "rows", "accuracy", "macro-F1", "texts/s", title="Classifiers")
    for name, r in reports.items():
        summary.add_row(name, str(r.rows), f"{r.accuracy:.3f}", f"{r.macro_f1:.3f}", f"{r.predictions_per_second or 0:.0f}")
    console.print(summary)
    first = next(iter(reports.values()))
    per_label = Table("label", "precision", "recall", "F1", "support", title="Per label")
    for label, s in first.per_label.items():
        per_label.add_row(label, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", str(s.support))
    console.print(per_label)
    if len(first.labels) <= 12:  # a wider matrix does not fit a terminal; it is in the JSON
        matrix = Table("true \\ predicted", *first.labels, title="Confusion matrix")
        for label, row in zip(first.labels, first.confusion):
            matrix.add_row(label, *map(str, row))
        console.print(matrix)


def register(app: typer.Typer) -> None:
    """Add `train classifier` and `eval classifier` to the `llmos` app."""
    from llmos.knowledge.cli import eval_app

    app.add_typer(train_app, name="train")
    eval_app.command("classifier")(eval_classifier)
