"""How well a classifier labels texts: accuracy, macro-F1, a report per label, the confusion matrix.

    report = evaluate(classifier, read_labelled_csv("test.csv"))
    report.accuracy, report.macro_f1, report.confusion      # rows: true label, columns: predicted

`score(true, predicted)` is the pure part (scikit-learn's metrics), used by training for its
validation split too.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from llmos.classifiers.base import Classifier, predict_labels
from llmos.classifiers.data import LabelledTexts
from llmos.errors import TrainingDataError


class LabelScores(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int


class ClassifierReport(BaseModel):
    rows: int
    accuracy: float
    macro_f1: float
    labels: list[str] = Field(description="The order of the confusion matrix's rows and columns.")
    per_label: dict[str, LabelScores]
    confusion: list[list[int]] = Field(description="confusion[i][j]: texts of labels[i] predicted as labels[j].")
    predictions_per_second: float | None = None


def score(true: list[str], predicted: list[str], labels: list[str] | None = None) -> ClassifierReport:
    """Metrics of predicted against true labels. `labels`: the order of the matrix (default: every label seen, sorted)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if not true or len(true) != len(predicted):
        raise TrainingDataError(f"Scoring needs as many predictions as true labels, and at least one (got {len(true)}, {len(predicted)}).")
    labels = labels or sorted(set(true) | set(predicted))
    # Macro-F1 over the labels that occur in the data: a label no text has would add a meaningless 0.
    present = [label for label in labels if label in set(true)]
    p, r, f, s = precision_recall_fscore_support(true, predicted, labels=labels, zero_division=0)
    _, _, macro, _ = precision_recall_fscore_support(true, predicted, labels=present, average="macro", zero_division=0)
    return ClassifierReport(
        rows=len(true),
        accuracy=round(float(accuracy_score(true, predicted)), 4),
        macro_f1=round(float(macro), 4),
        labels=labels,
        per_label={label: LabelScores(precision=round(float(p[i]), 4), recall=round(float(r[i]), 4),
                                      f1=round(float(f[i]), 4), support=int(s[i])) for i, label in enumerate(labels)},
        confusion=confusion_matrix(true, predicted, labels=labels).tolist(),
    )


def evaluate(classifier: Classifier, data: LabelledTexts) -> ClassifierReport:
    """Score `classifier` on `data`. Every label in the data must be one the classifier knows."""
    unknown = sorted(set(data.labels) - set(classifier.labels))
    if unknown:
        raise TrainingDataError(
            f"{data.source or 'The data'} has labels the classifier does not know: {', '.join(unknown[:10])} "
            f"(it knows {', '.join(classifier.labels[:20])}). Rename them with --label-name VALUE=NAME, or evaluate "
            "on data with the classifier's labels."
        )
    started = time.perf_counter()
    predicted = predict_labels(classifier, data.texts)
    seconds = time.perf_counter() - started
    report = score(data.labels, predicted, labels=list(classifier.labels))
    report.predictions_per_second = round(len(data) / seconds, 1) if seconds > 0 else None
    return report


def matching_rows(data: LabelledTexts, labels: list[str]) -> LabelledTexts | None:
    """The rows whose label is one of `labels` (to compare a classifier with other labels on the same data), or None."""
    keep = [i for i, label in enumerate(data.labels) if label in set(labels)]
    return data.subset(keep) if keep else None
