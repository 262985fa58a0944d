"""LoRA fine-tuning of the default local model on customer-support dialogues, with the default settings.

    python -m bench.finetune [--data ../shared/data/support/bitext-customer-support/train.csv]

Trains the adapter `bench-support` (under LLMOS_HOME/adapters) exactly as `llmos finetune`
does with its defaults, the questions in `instruction` and the answers in `response`
(Bitext customer-support dialogues: 4,514 single-turn chats, 27 intents). A killed run
resumes from its last checkpoint when started again.

Reported: the held-out perplexity of the base model and of the adapter on the same
validation split (answer tokens only), their ratio (the goal: at most 0.7), the minutes
spent in training steps and in the whole run, and the training throughput in tokens
(prompt + answer) per second. The load average is kept with the figures: on a shared
2-core machine it moves them.

Writes bench/results/finetune.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads hurt on a busy 2-core machine

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.common import print_table, write_results  # noqa: E402
from llmos.finetune import FinetuneSettings, finetune  # noqa: E402
from llmos.finetune.cli import BarReporter, _bar  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "support" / "bitext-customer-support" / "train.csv"
GOAL = 0.7  # ppl_adapter <= GOAL x ppl_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA), help="The dialogue CSV (default: ../shared/data/support/...).")
    parser.add_argument("--name", default="bench-support", help="The adapter's name under LLMOS_HOME/adapters.")
    args = parser.parse_args()
    settings = FinetuneSettings(question_column="instruction", answer_column="response")
    load_before = os.getloadavg()[0]
    with _bar() as bar:
        m = finetune(args.data, args.name, settings, overwrite=True, reporter=BarReporter(bar))
    ratio = m.perplexity_after / m.perplexity_before
    results = {
        "data": Path(args.data).name,
        "base": m.base,
        "ppl_base": round(m.perplexity_before, 4),
        "ppl_adapter": round(m.perplexity_after, 4),
        "ppl_ratio": round(ratio, 4),
        "goal_ratio": GOAL,
        "goal_met": ratio <= GOAL,
        "loss_base": round(m.loss_before, 4),
        "loss_adapter": round(m.loss_after, 4),
        "train_minutes": round(m.train_minutes, 2),
        "total_minutes": round(m.total_minutes, 2),
        "train_tokens": m.train_tokens,
        "train_tokens_per_s": round(m.tokens_per_s, 1),
        "train_chats_seen": m.steps * m.settings.chats_per_step,
        "validation_chats": m.validation_chats,
        "resumed": m.resumed,
        "settings": m.settings.model_dump(exclude={"question_column", "answer_column", "messages_column", "system"}),
        "threads": __import__("torch").get_num_threads(),
        "load_average": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
    }
    path = write_results("finetune", results)
    print_table("LoRA fine-tuning (validation, answer tokens)", ["", "base", "adapter"], [
        ["perplexity", m.perplexity_before, m.perplexity_after],
        ["loss", m.loss_before, m.loss_after],
    ])
    print(f"ratio {ratio:.3f} (goal <= {GOAL}); training {m.train_minutes:.1f} min at {m.tokens_per_s:.0f} tokens/s, "
          f"whole run {m.total_minutes:.1f} min. Wrote {path}")


if __name__ == "__main__":
    main()
