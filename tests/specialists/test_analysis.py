"""Analysis tools: the classifier, trends, the spike detector, charts, CSV statistics."""

from __future__ import annotations

import json
import struct
from datetime import date

import pytest

from llmos.agents.specialists.analysis import PeriodStats, classifier_for, detect_spike
from llmos.demo.generate import review_labels
from llmos.errors import InvalidDataError


def test_classifier_accuracy_on_the_demo_reviews(stores):
    """The shipped classifier, trained mostly on finance tweets, gets 0.739 of the demo reviews right
    (bench.sentiment_default; always "positive" would get 0.53). What the spike alert rests on is
    finding the negative reviews: 69 of 76."""
    from llmos.demo.specialists import analyst

    predicted = [label.sentiment for label in analyst(stores).labels()]
    gold = review_labels()  # what the generator wrote each review as; never shipped in the CSV
    accuracy = sum(p == g for p, g in zip(predicted, gold)) / len(gold)
    assert accuracy >= 0.7, accuracy
    negatives = [p for p, g in zip(predicted, gold) if g == "negative"]
    assert negatives.count("negative") / len(negatives) >= 0.85, negatives.count("negative")


FINANCE = {
    "Shares plunged after the profit warning.": "negative",
    "Revenue beat expectations and the stock soared.": "positive",
    "The company cut its dividend and its shares fell to a five-year low.": "negative",
    "Quarterly profit doubled and the shares hit a record high.": "positive",
    "The company will report its quarterly results on Thursday.": "neutral",
}


def test_the_shipped_sentiment_classifier():
    from llmos.agents.specialists.analysis import DEFAULT_SENTIMENT, default_sentiment_model
    from llmos.classifiers import predict_labels

    classifier = default_sentiment_model()
    assert classifier.labels == ["negative", "neutral", "positive"]
    manifest = classifier.manifest
    assert manifest.method == "frozen" and manifest.encoder.source == "default"  # no encoder copy: a few tens of KB
    assert sum(f.stat().st_size for f in DEFAULT_SENTIMENT.iterdir()) < 100_000
    assert "twitter-financial-news-sentiment" in manifest.data.source and manifest.data.licence.startswith("MIT")
    assert len(manifest.data.sha256) == 64 and manifest.metrics["valid_accuracy"] > 0.7
    # Clearly worded news, of every label: always answering one label would get at most 2 of 5 right.
    assert predict_labels(classifier, list(FINANCE)) == list(FINANCE.values())


async def test_classify_texts(tools):
    labels = await tools["classify_texts"](texts=[
        "The tent is superb, I love it.", "The stove leaked and broke, terrible.", "My parcel arrived two weeks late."
    ])
    assert [lab.sentiment for lab in labels][:2] == ["positive", "negative"]
    assert labels[2].topic == "shipping"
    empty = await tools["classify_texts"].run('{"texts": []}')
    assert empty.is_error


async def test_monthly_and_weekly_trend(tools):
    monthly = await tools["sentiment_trend"]()
    assert [p.period for p in monthly.periods] == [f"2025-0{m}" for m in range(1, 7)]
    assert monthly.total == sum(p.count for p in monthly.periods)
    weekly = await tools["sentiment_trend"](start=date(2025, 5, 1), end=date(2025, 6, 30), period="week")
    assert all(p.period.startswith("2025-W") for p in weekly.periods) and len(weekly.periods) >= 8


async def test_spike_detector_finds_the_planted_spike(tools):
    report = await tools["detect_sentiment_spike"]()
    assert report.spike and report.alert is not None
    assert report.alert.period == "2025-06" and report.alert.negative_share > 2 * report.alert.baseline_share
    assert "Emberline Windproof Canister Stove (P051)" in report.alert.top_products
    assert report.alert.examples and report.alert.message


async def test_no_spike_before_it(tools):
    report = await tools["detect_sentiment_spike"](end=date(2025, 5, 31))
    assert not report.spike and report.alert is None


def flat(shares: list[float], count: int = 60) -> list[PeriodStats]:
    return [
        PeriodStats(period=f"2025-{n + 1:02d}", start=date(2025, n + 1, 1), count=count, negative=round(s * count),
                    neutral=0, positive=count - round(s * count), negative_share=s)
        for n, s in enumerate(shares)
    ]


def test_spike_detector_on_synthetic_series():
    assert not detect_spike(flat([0.15] * 6)).spike  # perfectly flat
    assert not detect_spike(flat([0.12, 0.18, 0.14, 0.17, 0.13, 0.19])).spike  # noisy but flat
    assert detect_spike(flat([0.15, 0.16, 0.14, 0.15, 0.15, 0.45])).spike
    assert not detect_spike(flat([0.15, 0.16, 0.14, 0.15, 0.15, 0.45], count=5)).spike  # too few to mean anything
    with pytest.raises(InvalidDataError):
        detect_spike(flat([0.1, 0.5]))


async def test_empty_or_reversed_date_range_is_a_clear_error(tools):
    result = await tools["sentiment_trend"].run(json.dumps({"start": "2030-01-01", "end": "2030-02-01"}))
    assert result.is_error and "No reviews" in result.content and "2025-01-01" in result.content
    result = await tools["sentiment_trend"].run(json.dumps({"start": "2025-06-01", "end": "2025-01-01"}))
    assert result.is_error and "after" in result.content


async def test_chart_is_a_valid_png(tools):
    chart = await tools["plot_sentiment_trend"]()
    with open(chart.path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 200 and chart.periods == 6


def analyst_tools(stores, folder):
    from llmos.demo.specialists import analysis_tools

    return {t.name: t for t in analysis_tools(stores, csv_dirs=[folder])}


async def test_csv_stats(stores, tmp_path):
    (tmp_path / "sales.csv").write_text("region,units,price\nnorth,10,2.5\nsouth,30,3.5\neast,,4.0\n")
    stats = await analyst_tools(stores, tmp_path)["csv_stats"](path="sales.csv")
    assert stats.rows == 3
    units = next(c for c in stats.columns if c.name == "units")
    assert units.numeric and units.count == 2 and units.missing == 1 and units.mean == 20 and units.min == 10 and units.max == 30
    region = next(c for c in stats.columns if c.name == "region")
    assert not region.numeric and region.count == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n3,4,5\n", "line 3 has 3 fields"),
        ("a,b\n", "no data rows"),
        ('a,b\n"unclosed,2\n', "not valid CSV"),
        (b"\xff\xfebinary", "not a UTF-8"),
        (b"a,b\n1,\x00\n", "binary data"),
    ],
)
async def test_malformed_csv_is_a_tool_error(stores, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = await analyst_tools(stores, tmp_path)["csv_stats"].run(json.dumps({"path": str(path)}))
    assert result.is_error and message in result.content


async def test_csv_outside_allowed_folders_is_refused(stores, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "secret.csv").write_text("a\n1\n")
    tools = analyst_tools(stores, allowed)
    for path in (str(tmp_path / "secret.csv"), "../secret.csv"):
        result = await tools["csv_stats"].run(json.dumps({"path": path}))
        assert result.is_error and "allowed folders" in result.content


async def test_csv_stats_reads_no_folder_unless_the_caller_gives_one(stores, tmp_path, monkeypatch):
    (tmp_path / "orders.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)  # the working directory is not readable by default either
    from llmos.demo.specialists import analysis_tools

    csv_stats = {t.name: t for t in analysis_tools(stores)}["csv_stats"]
    for path in ("orders.csv", str(tmp_path / "orders.csv")):
        result = await csv_stats.run(json.dumps({"path": path}))
        assert result.is_error and "no folder" in result.content


async def test_csv_stats_reads_csv_files_only_and_never_their_secrets(stores, tmp_path):
    (tmp_path / ".env").write_text("LLMOS_API_KEY=sk-very-secret\n")
    (tmp_path / "shadow").write_text("root:$6$hash:19000:0:99999:7:::\n")
    tools = analyst_tools(stores, tmp_path)
    for name in (".env", "shadow"):
        result = await tools["csv_stats"].run(json.dumps({"path": name}))
        assert result.is_error and "CSV files only" in result.content
        assert "sk-very-secret" not in result.content and "$6$" not in result.content
    # Renamed to .csv, the secrets are still no CSV table: one column, refused by content.
    (tmp_path / "env.csv").write_text("LLMOS_API_KEY=sk-very-secret\nOTHER=x\n")
    result = await tools["csv_stats"].run(json.dumps({"path": "env.csv"}))
    assert result.is_error and "not a CSV table" in result.content and "sk-very-secret" not in result.content


def test_csv_stats_refuses_files_over_its_size_cap(tmp_path):
    from llmos.agents.specialists.analysis import csv_statistics
    from llmos.errors import InvalidDataError

    big = tmp_path / "big.csv"
    big.write_text("a,b\n" + "1,2\n" * 1000)
    with pytest.raises(InvalidDataError, match="up to"):
        csv_statistics(big, max_bytes=1000)
    assert csv_statistics(big).rows == 1000


def test_classifier_is_trained_once_per_embedder(stores):
    assert classifier_for(stores.embedder) is classifier_for(stores.embedder)
