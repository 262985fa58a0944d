"""Labelled texts from a CSV file, checked, hashed and split.

    data = read_labelled_csv("tickets.csv", text_column="message", label_column="intent")
    train, valid = data.split(0.2, seed=0)          # stratified: every label in both parts

Every problem (no such file, a missing column, no rows, one label only, empty texts) is a
TrainingDataError that says what is wrong and what to write instead.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from llmos.errors import TrainingDataError


class LabelledTexts(BaseModel):
    """Texts and their labels, in file order."""

    texts: list[str]
    labels: list[str]
    source: str = Field("", description="Where they came from (a path), for manifests and messages.")
    sha256: str = Field("", description="SHA-256 of the file's bytes: which data a model was trained on.")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    def subset(self, indexes: list[int]) -> LabelledTexts:
        return LabelledTexts(texts=[self.texts[i] for i in indexes], labels=[self.labels[i] for i in indexes],
                             source=self.source, sha256=self.sha256)

    def split(self, fraction: float, seed: int = 0) -> tuple[LabelledTexts, LabelledTexts]:
        """(train, validation), stratified by label. Needs two examples of every label."""
        from sklearn.model_selection import train_test_split

        rare = [label for label, n in self.counts().items() if n < 2]
        if rare:
            raise TrainingDataError(
                f"{self.source or 'The data'}: the labels {', '.join(rare[:10])} have a single example; a validation split "
                "needs at least two of each. Add examples, or train with --validation 0."
            )
        n_valid = max(round(len(self) * fraction), len(self.classes))
        if len(self) - n_valid < len(self.classes):
            raise TrainingDataError(
                f"{self.source or 'The data'}: {len(self)} rows are too few to keep {n_valid} for validation and still "
                f"train on every one of the {len(self.classes)} labels. Add examples, or lower --validation."
            )
        train, valid = train_test_split(list(range(len(self))), test_size=n_valid, stratify=self.labels, random_state=seed)
        return self.subset(sorted(train)), self.subset(sorted(valid))

    def sample(self, n: int, seed: int = 0) -> LabelledTexts:
        """`n` rows drawn at random with the labels' shares kept (all rows when there are no more than `n`)."""
        if n >= len(self):
            return self
        from sklearn.model_selection import train_test_split

        chosen, _ = train_test_split(list(range(len(self))), train_size=n, stratify=self.labels, random_state=seed)
        return self.subset(sorted(chosen))

    def per_label(self, n: int, seed: int = 0) -> LabelledTexts:
        """At most `n` examples of each label, drawn at random (a few-shot training set)."""
        import random

        rng = random.Random(seed)
        by_label: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            by_label.setdefault(label, []).append(i)
        chosen = [i for indexes in by_label.values() for i in rng.sample(indexes, min(n, len(indexes)))]
        return self.subset(sorted(chosen))


def read_labelled_csv(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    rename: dict[str, str] | None = None,
    min_classes: int = 2,
) -> LabelledTexts:
    """The rows of a CSV file with a text and a label column. `rename` maps labels as written to the names wanted
    (e.g. {"0": "negative"}). Rows with an empty text or label are errors: a silent skip would hide a broken export."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainingDataError(f"Cannot read {path}: {exc.strerror or exc}. Give the path of a CSV file.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TrainingDataError(f"{path.name} is not UTF-8 text; save it as a UTF-8 CSV file.") from None
    try:
        reader = csv.DictReader(text.splitlines(), strict=True)
        header = reader.fieldnames or []
        rows = list(reader)
    except csv.Error as exc:
        raise TrainingDataError(f"{path.name} is not valid CSV: {exc}.") from None
    if not header:
        raise TrainingDataError(f"{path.name} is empty: write a header line ({text_column},{label_column}) and labelled rows.")
    missing = [c for c in (text_column, label_column) if c not in header]
    if missing:
        raise TrainingDataError(
            f"{path.name} has no column {' or '.join(repr(c) for c in missing)}; its columns are {', '.join(header)}. "
            "Name the right ones with --text-column and --label-column."
        )
    texts, labels = [], []
    rename = rename or {}
    for line, row in enumerate(rows, 2):
        value, label = (row.get(text_column) or "").strip(), (row.get(label_column) or "").strip()
        if not value or not label:
            what = "text" if not value else "label"
            raise TrainingDataError(f"{path.name}, line {line}: the {what} is empty. Fill it in or remove the row.")
        texts.append(value)
        labels.append(rename.get(label, label))
    if not texts:
        raise TrainingDataError(f"{path.name} has a header but no rows; add labelled rows.")
    data = LabelledTexts(texts=texts, labels=labels, source=str(path), sha256=hashlib.sha256(raw).hexdigest())
    if len(data.classes) < min_classes:
        raise TrainingDataError(
            f"{path.name}: every row has the label {data.classes[0]!r}; a classifier needs examples of at least "
            f"{min_classes} labels."
        )
    return data


def parse_rename(pairs: list[str] | None) -> dict[str, str]:
    """["0=negative", "1=positive"] -> {"0": "negative", "1": "positive"} (the CLI's --label-name options)."""
    out = {}
    for pair in pairs or []:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise TrainingDataError(f"--label-name {pair!r}: write VALUE=NAME, e.g. 0=negative.")
        out[old.strip()] = new.strip()
    return out
