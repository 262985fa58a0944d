"""Trained classifiers against the shipped one: financial-news sentiment and banking intents.

    python -m bench.classifiers [--data ../shared/data] [--configs sentiment,banking77-8shot,banking77]
                                [--methods frozen,setfit,finetune] [--encoder PATH ...]

Configs (data read from --data, never copied into the repository):
- sentiment: sentiment/twitter-financial-news, train.csv -> valid.csv (labels 0 bearish,
  1 bullish, 2 neutral, named negative, positive, neutral here so that the analysis
  specialist's shipped classifier can be scored on the same rows).
- banking77-8shot: routing/banking77, 8 training examples per intent (616) -> test.csv.
- banking77: routing/banking77, a stratified subset of train.csv -> test.csv.
- sentiment-all: as sentiment, trained on all 9,543 rows of train.csv (not run by default:
  the fine-tune uses its whole 20-minute budget on 2 cores; `--configs sentiment-all --methods
  frozen,finetune --sentiment-eval 2388` scores all of valid.csv).
- banking77-all: all 10,003 rows of train.csv -> all 3,080 rows of test.csv (not run by default;
  `--configs banking77-all --methods frozen,finetune --finetune-epochs 1`).

--encoder (default: the packaged MiniLM) takes a sentence-transformers folder; given more than once,
each config runs with each encoder on the same rows in one run. A config run with an encoder other
than the packaged one is stored as CONFIG@ENCODER (e.g. banking77-8shot@all-mpnet-base-v2); every
config records its encoder's name and the SHA-256 of its weights. The Banking77 8-shot figures in
the README: `--configs banking77-8shot --banking-eval 3080 --methods frozen,finetune --encoder default
--encoder FOLDER/all-mpnet-base-v2`.

Each config scores, on the same evaluation rows: the majority class (baseline), the shipped
default sentiment classifier (sentiment only: its labels are not intents), frozen MiniLM +
logistic regression, the SetFit-style tune (contrastive steps, then the same head), and the full
fine-tune (encoder + linear head, cross-entropy; max length 64 tokens: the 99th percentile of
the texts' lengths is 53 for Banking77 and 57 for the tweets).
Reported: accuracy, macro-F1, training seconds, predictions per second, the load average.
A method left out by --methods keeps its row from the previous run (same rows, same seed, same encoder),
marked with the date it was measured. Subsets keep each
config within minutes on 2 shared cores; their sizes are in the results. For reference,
FinBERT reports about 0.86 accuracy on Financial PhraseBank: different data (news sentences
labelled by finance students), so not directly comparable with the tweets here.

Writes bench/results/classifiers.json (each config's key as it finishes; others are kept).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads hurt on a busy 2-core machine

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.common import RESULTS, print_table, write_results  # noqa: E402
from llmos.classifiers import LabelledTexts, TrainSettings, evaluate, read_labelled_csv, score, train_classifier  # noqa: E402
from llmos.classifiers.trained import encoder_folder, weights_sha256  # noqa: E402

SENTIMENT_NAMES = {"0": "negative", "1": "positive", "2": "neutral"}  # bearish, bullish, neutral
CONFIGS = ("sentiment", "banking77-8shot", "banking77", "sentiment-all", "banking77-all")
METHODS = ("frozen", "setfit", "finetune")


def load(args) -> dict[str, tuple[LabelledTexts, LabelledTexts]]:
    """(train, evaluation) per config, subsets drawn with a fixed seed."""
    data = Path(args.data)
    out = {}
    if "sentiment" in args.configs or "sentiment-all" in args.configs:
        folder = data / "sentiment" / "twitter-financial-news"
        train = read_labelled_csv(folder / "train.csv", rename=SENTIMENT_NAMES)
        valid = read_labelled_csv(folder / "valid.csv", rename=SENTIMENT_NAMES).sample(args.sentiment_eval)
        if "sentiment" in args.configs:
            out["sentiment"] = (train.sample(args.sentiment_train), valid)
        if "sentiment-all" in args.configs:
            out["sentiment-all"] = (train, valid)
    if {"banking77-8shot", "banking77", "banking77-all"} & set(args.configs):
        folder = data / "routing" / "banking77"
        train = read_labelled_csv(folder / "train.csv", label_column="category")
        whole_test = read_labelled_csv(folder / "test.csv", label_column="category")
        test = whole_test.sample(args.banking_eval)
        if "banking77-all" in args.configs:
            out["banking77-all"] = (train, whole_test)
        if "banking77-8shot" in args.configs:
            out["banking77-8shot"] = (train.per_label(8), test)
        if "banking77" in args.configs:
            out["banking77"] = (train.sample(args.banking_train), test)
    return out


def majority(train: LabelledTexts, test: LabelledTexts) -> dict:
    label = Counter(train.labels).most_common(1)[0][0]
    report = score(test.labels, [label] * len(test))
    return {"accuracy": report.accuracy, "macro_f1": report.macro_f1, "train_seconds": 0.0, "predictions_per_s": None}


def encoder_name(source: str) -> str:
    """The encoder's folder name, as a trained classifier's manifest names it (the packaged one's folder is 'model')."""
    folder = encoder_folder(source)
    return folder.name if folder.name != "model" else folder.parent.name


def trained(train: LabelledTexts, test: LabelledTexts, settings: TrainSettings) -> dict:
    started = time.perf_counter()
    classifier = train_classifier(train, settings, name=settings.method)
    seconds = time.perf_counter() - started
    report = evaluate(classifier, test)
    return {"accuracy": report.accuracy, "macro_f1": report.macro_f1, "train_seconds": round(seconds, 1),
            "predictions_per_s": report.predictions_per_second, "settings": settings.model_dump(exclude={"encoder"}),
            **({"tuning": classifier.manifest.tuning} if classifier.manifest.tuning else {})}


def default_sentiment(test: LabelledTexts) -> dict:
    from llmos.agents.specialists.analysis import default_sentiment_model

    report = evaluate(default_sentiment_model(), test)
    return {"accuracy": report.accuracy, "macro_f1": report.macro_f1, "train_seconds": 0.0,
            "predictions_per_s": report.predictions_per_second,
            "note": "the analysis specialist's shipped classifier (bench.sentiment_default): trained on all of "
                    "train.csv plus 54 review sentences, never on valid.csv"}


def run_config(name: str, train: LabelledTexts, test: LabelledTexts, args, previous: dict, encoder: str) -> dict:
    encoder_label = encoder_name(encoder)
    print(f"{name}: train {len(train)} rows, {len(train.classes)} labels; evaluate on {len(test)} rows; "
          f"encoder {encoder_label}", flush=True)
    methods = {"majority": majority(train, test)}
    if name.startswith("sentiment"):
        methods["default"] = default_sentiment(test)
        print("  default done", flush=True)
    settings = {
        "frozen+lr": TrainSettings(method="frozen", encoder=encoder, validation=0),
        "setfit": TrainSettings(method="setfit", encoder=encoder, validation=0, max_steps=args.setfit_steps),
        "finetune": TrainSettings(method="finetune", encoder=encoder, validation=0, max_length=64,
                                  epochs=args.finetune_epochs, max_minutes=args.finetune_minutes),
    }
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # Rows kept from an earlier run must come from the same rows and the same encoder (results from before
    # encoders were recorded all used the packaged one).
    same_rows = (previous.get("train_rows") == len(train) and previous.get("eval_rows") == len(test)
                 and previous.get("encoder", encoder_name("default")) == encoder_label)
    for key, method in zip(settings, METHODS):
        if method in args.methods and not (method == "setfit" and args.setfit_steps == 0):
            methods[key] = trained(train, test, settings[key])
            methods[key]["measured"] = now
            methods[key]["load_average"] = round(os.getloadavg()[0], 2)
            print(f"  {key} done: {methods[key]['accuracy']} in {methods[key]['train_seconds']} s", flush=True)
    kept = previous.get("methods", {}) if same_rows else {}
    for key, row in kept.items():  # the rows this run did not measure
        if key not in methods:
            methods[key] = row
            row.setdefault("measured", previous.get("date", "an earlier run"))
    return {"encoder": encoder_label, "encoder_sha256": weights_sha256(encoder_folder(encoder)),
            "train_rows": len(train), "eval_rows": len(test), "labels": len(train.classes),
            "train_source": train.source, "eval_source": test.source, "methods": methods}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"),
                        help="The shared data folder (default: ../shared/data from the repository).")
    parser.add_argument("--configs", default=",".join(CONFIGS[:3]), help=f"Comma-separated, of {', '.join(CONFIGS)}.")
    parser.add_argument("--sentiment-train", type=int, default=2000, help="Training rows drawn from train.csv (9,543).")
    parser.add_argument("--sentiment-eval", type=int, default=1000, help="Rows drawn from valid.csv (2,388).")
    parser.add_argument("--banking-train", type=int, default=3000, help="Training rows for 'banking77' (10,003).")
    parser.add_argument("--banking-eval", type=int, default=1000, help="Rows drawn from test.csv (3,080).")
    parser.add_argument("--setfit-steps", type=int, default=60, help="Contrastive steps of 16 pairs (0: skip setfit).")
    parser.add_argument("--finetune-epochs", type=float, default=3.0, help="Passes over the training rows of the fine-tune.")
    parser.add_argument("--finetune-minutes", type=float, default=20.0, help="Time budget of each fine-tune (it stops and keeps the model).")
    parser.add_argument("--encoder", action="append", metavar="PATH",
                        help="'default' (the packaged MiniLM) or a sentence-transformers folder; give it more than once "
                             "to run each config with each encoder on the same rows.")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"Comma-separated, of {', '.join(METHODS)}; others keep their previous rows.")
    args = parser.parse_args()
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.encoder = args.encoder or ["default"]
    for encoder in args.encoder:
        try:
            encoder_folder(encoder)
        except Exception as exc:  # a missing folder or a missing packaged model: say so before hours of work
            parser.error(str(exc))
    unknown = set(args.configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {', '.join(sorted(unknown))}; choose from {', '.join(CONFIGS)}")
    if set(args.methods) - set(METHODS):
        parser.error(f"unknown methods {', '.join(sorted(set(args.methods) - set(METHODS)))}; choose from {', '.join(METHODS)}")
    path = RESULTS / "classifiers.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    results = stored.get("configs", {})
    for name, (train, test) in load(args).items():
        for encoder in args.encoder:
            key = name if encoder == "default" else f"{name}@{encoder_name(encoder)}"
            previous = dict(results.get(key, {}), date=stored.get("date"))
            results[key] = run_config(name, train, test, args, previous, encoder)
            results[key]["load_average"] = os.getloadavg()[0]
            write_results("classifiers", {
                "configs": results,
                "reference": "FinBERT: about 0.86 accuracy on Financial PhraseBank (other data: not comparable with the tweets).",
                "threads": __import__("torch").get_num_threads(),
            })
    rows = [[name, method, config["train_rows"], config["eval_rows"], m["accuracy"], m["macro_f1"], m["train_seconds"],
             m["predictions_per_s"] or "-"] for name, config in results.items() for method, m in config["methods"].items()]
    print_table("Classifiers", ["config", "method", "train rows", "eval rows", "accuracy", "macro-F1", "train s", "pred/s"], rows)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
