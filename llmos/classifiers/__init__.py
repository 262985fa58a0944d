"""Text classifiers trained on a company's own labelled texts (intents, sentiment, topics).

    llmos train classifier tickets.csv --label-column intent --name intents [--method setfit|finetune]
    llmos eval classifier intents test.csv

In Python: `read_labelled_csv`, `train_classifier`, `load_classifier`, `predict`, `evaluate`.
Any object with `labels` and `predict_proba(texts)` is a `Classifier` and plugs into the
analysis specialist (sentiment, topic) and into a team's routing.
"""

from llmos.classifiers.base import Classifier, Prediction, predict, predict_labels
from llmos.classifiers.data import LabelledTexts, read_labelled_csv
from llmos.classifiers.evaluation import ClassifierReport, evaluate, score
from llmos.classifiers.trained import Manifest, TrainedClassifier, load_classifier, locate
from llmos.classifiers.training import TrainSettings, train_classifier

__all__ = [
    "Classifier", "ClassifierReport", "LabelledTexts", "Manifest", "Prediction", "TrainSettings", "TrainedClassifier",
    "evaluate", "load_classifier", "locate", "predict", "predict_labels", "read_labelled_csv", "score", "train_classifier",
]
