"""The finetune method: the encoder and a linear head trained together; saved, reloaded and used like the others.

Tiny CSVs and a few steps: each test trains MiniLM for seconds on 2 cores.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from llmos.classifiers import Classifier, TrainSettings, load_classifier, predict, read_labelled_csv, train_classifier
from llmos.classifiers.finetune import softmax_rows
from llmos.classifiers.trained import LinearHead, embed, load_encoder
from llmos.classifiers.training import step_fits
from llmos.errors import TrainingDataError
from tests.classifiers.test_classifiers import EXAMPLES, UNSEEN, write_csv


@pytest.fixture(scope="module")
def topics_csv(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("data") / "topics.csv",
                     [(t, label) for label, texts in EXAMPLES.items() for t in texts])


@pytest.fixture(scope="module")
def finetuned(topics_csv):
    steps = []
    settings = TrainSettings(method="finetune", epochs=2, batch_size=8, validation=0, max_length=32, contrastive_steps=2)
    classifier = train_classifier(read_labelled_csv(topics_csv), settings, name="topics",
                                  progress=lambda step, total, loss: steps.append((step, total, loss)))
    return classifier, steps


def test_finetune_trains_the_encoder_and_the_head(finetuned):
    from llmos.knowledge.embeddings import default_model_path

    classifier, steps = finetuned
    # 2 contrastive steps first; then 30 rows in batches of 8: 4 steps an epoch, 2 epochs. The progress callback
    # sees each step with its loss.
    assert [s[:2] for s in steps] == [(1, 2), (2, 2)] + [(i, 8) for i in range(1, 9)] and all(s[2] >= 0 for s in steps)
    assert classifier.manifest.method == "finetune" and classifier.manifest.settings["learning_rate"] == 5e-5
    assert classifier.manifest.tuning == {"contrastive_steps": 2, "steps": 8, "planned_steps": 8, "stopped_by_time": False,
                                          "last_loss": round(steps[-1][2], 4)}
    text = ["Hail fell across the valley."]
    assert not np.allclose(embed(classifier.encoder, text), embed(load_encoder(default_model_path()), text))
    assert classifier.head.coef.shape == (3, 384)
    assert [p.label for p in predict(classifier, list(UNSEEN))] == list(UNSEEN.values())


def test_finetune_saves_the_encoder_and_reloads_to_the_same_predictions(finetuned, tmp_path):
    classifier, _ = finetuned
    classifier.path = None
    classifier.save(tmp_path / "ft")
    assert sorted(p.name for p in (tmp_path / "ft").iterdir()) == ["encoder", "head.npz", "manifest.json"]
    manifest = json.loads((tmp_path / "ft" / "manifest.json").read_text())
    assert manifest["method"] == "finetune" and manifest["encoder"]["source"] == "bundled"
    loaded = load_classifier(tmp_path / "ft")
    assert isinstance(loaded, Classifier) and loaded.labels == ["food", "sport", "weather"]
    np.testing.assert_allclose(loaded.predict_proba(list(UNSEEN)), classifier.predict_proba(list(UNSEEN)), atol=1e-5)


def test_max_minutes_stops_training_and_keeps_a_usable_model(topics_csv, tmp_path):
    settings = TrainSettings(method="finetune", epochs=50, batch_size=8, validation=0, max_length=32, max_minutes=0.05)
    classifier = train_classifier(read_labelled_csv(topics_csv), settings)
    tuning = classifier.manifest.tuning
    assert tuning["stopped_by_time"] is True and tuning["planned_steps"] == 200 and tuning["steps"] < 200
    classifier.save(tmp_path / "early")
    assert load_classifier(tmp_path / "early").manifest.tuning["stopped_by_time"] is True


def test_a_step_starts_only_when_it_would_end_inside_the_budget():
    now = time.monotonic()
    assert step_fits(None, 1e9)  # no budget
    assert step_fits(now + 60, 1.0)
    assert not step_fits(now + 60, 120.0)  # the last step took longer than what is left
    assert not step_fits(now - 1, 0.0)  # the budget is spent


def test_a_two_label_head_becomes_two_softmax_rows():
    head = LinearHead(coef=np.array([[1.0, -2.0]], dtype=np.float32), intercept=np.array([0.5], dtype=np.float32))
    coef, intercept = softmax_rows(head)
    vectors = np.array([[0.3, 0.1], [-1.0, 0.4]], dtype=np.float32)
    two = LinearHead(coef=coef, intercept=intercept)
    assert coef.shape == (2, 2)
    np.testing.assert_allclose(two.proba(vectors), head.proba(vectors), atol=1e-6)


def test_balanced_class_weight_on_two_labels(tmp_path):
    rows = [(t, "weather") for t in EXAMPLES["weather"]] + [(t, "food") for t in EXAMPLES["food"][:4]]
    settings = TrainSettings(method="finetune", epochs=1, batch_size=8, validation=0, max_length=32, class_weight="balanced")
    classifier = train_classifier(read_labelled_csv(write_csv(tmp_path / "two.csv", rows)), settings)
    assert classifier.labels == ["food", "weather"] and classifier.head.coef.shape == (2, 384)
    assert [p.label for p in predict(classifier, ["Thunder and rain all night.", "Garlic bread with cheese."])] == ["weather", "food"]


def test_finetune_on_bad_data_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,label\nhello,a\nhi,a\nhey,a\n")
    with pytest.raises(TrainingDataError, match="every row has the label 'a'"):
        read_labelled_csv(path)
    data = read_labelled_csv(write_csv(tmp_path / "tiny.csv", [("a", "x"), ("b", "x"), ("c", "y")]))
    with pytest.raises(TrainingDataError, match="single example"):
        train_classifier(data, TrainSettings(method="finetune", validation=0.2))


def test_the_train_command_fine_tunes_and_refuses_bad_options(topics_csv, tmp_path):
    from llmos.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", "classifier", str(topics_csv), "--name", "topics", "--home", str(tmp_path),
                                 "--method", "finetune", "--epochs", "1", "--batch-size", "8", "--max-length", "32",
                                 "--validation", "0.3"])
    assert result.exit_code == 0, result.output
    assert "Saved topics@v1" in result.output and "validation accuracy" in result.output
    manifest = json.loads((tmp_path / "classifiers" / "topics" / "v1" / "manifest.json").read_text())
    assert manifest["method"] == "finetune" and manifest["settings"]["epochs"] == 1.0 and manifest["data"]["validation_rows"] == 9
    assert (tmp_path / "classifiers" / "topics" / "v1" / "encoder").is_dir()
    bad = runner.invoke(app, ["train", "classifier", str(topics_csv), "--home", str(tmp_path), "--method", "finetune",
                              "--class-weight", "sometimes"])
    assert bad.exit_code == 1 and "--class-weight 'sometimes': write none or balanced" in bad.output
    bad = runner.invoke(app, ["train", "classifier", str(topics_csv), "--home", str(tmp_path), "--method", "finetune",
                              "--epochs", "0"])
    assert bad.exit_code == 1 and "ConfigError" in bad.output and "epochs" in bad.output
