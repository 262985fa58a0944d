"""What llmos needs from a text classifier: its labels, and probabilities for texts.

Anything with these two members plugs in: a trained classifier (`load_classifier`), the analysis
specialist's shipped sentiment model, a wrapper around a model of your own.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel


@runtime_checkable
class Classifier(Protocol):
    @property
    def labels(self) -> list[str]:
        """The labels, in the order of predict_proba's columns."""
        ...

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """One row per text, one column per label; each row sums to 1."""
        ...


class Prediction(BaseModel):
    label: str
    confidence: float
    probabilities: dict[str, float]


def predict(classifier: Classifier, texts: list[str]) -> list[Prediction]:
    """The most probable label of each text, with its probability and every label's."""
    if not texts:
        return []
    probs = classifier.predict_proba(texts)
    labels = classifier.labels
    return [
        Prediction(label=labels[int(row.argmax())], confidence=round(float(row.max()), 4),
                   probabilities={label: round(float(p), 4) for label, p in zip(labels, row)})
        for row in probs
    ]


def predict_labels(classifier: Classifier, texts: list[str]) -> list[str]:
    labels = classifier.labels
    return [labels[int(i)] for i in classifier.predict_proba(texts).argmax(axis=1)] if texts else []
