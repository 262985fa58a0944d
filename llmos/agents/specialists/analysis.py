"""The analysis specialist: classify texts, follow sentiment over time, detect spikes, draw charts, describe CSVs.

The default sentiment classifier is shipped trained (data/sentiment/: manifest.json and head.npz,
a few KB, loaded without fitting anything): the packaged MiniLM sentence embedding, frozen, and a
logistic-regression head (C=1, balanced class weights) trained on the 9,543 finance tweets of the
twitter-financial-news-sentiment set (MIT licence) plus llmos's own 54 product-review sentences,
each weighted 200 so that together they count about as much as the tweets: the tweets alone teach
it that a product review is "neutral". `python -m bench.sentiment_default --write` builds it.
Measured on texts it was not trained on: 0.767 of the 2,388 tweets of the set's valid split
(always "neutral": 0.656; the previous default, the 54 sentences plus VADER's lexicon scores: 0.589)
and 0.739 of the 356 demo reviews (the previous default: 0.871, on reviews written like its own
sentences). Topics are simpler: the nearest of a few topic descriptions, by the same embeddings.

Spike detection compares the last period's share of negative texts with the periods before
it (the trailing baseline): an alert when it is both `z_threshold` standard deviations
above the baseline mean and `min_ratio` times that mean. The ratio guard keeps a very flat
baseline (tiny standard deviation) from turning noise into alerts. Both, and the rest of
the detector's thresholds, are settings (`SpikeSettings`).

    texts = load_texts("reviews.csv", subject_column="product_id")   # any dated texts
    texts = texts_from_sql("sqlite:///shop.db", "SELECT id, created AS date, body AS text FROM reviews")
    analyst = TextAnalyst(texts, embedder, charts_dir=Path("charts"), spike=SpikeSettings(z_threshold=3))
    agent = analysis_agent(analyst, company="Acme Lamps")

The classifiers are pluggable: `TextAnalyst(sentiment=..., topic=...)` takes any Classifier
(llmos.classifiers: `labels` and `predict_proba`), e.g. one trained with `llmos train classifier`
on your own labelled texts; `TextAnalyst(classifier=...)` takes any object with
`classify(texts) -> list[TextLabel]`. LLMOS_SENTIMENT_CLASSIFIER / LLMOS_TOPIC_CLASSIFIER, or
`sentiment_classifier` / `topic_classifier` in an assistant file, name trained ones.
"""

from __future__ import annotations

import csv
import math
import threading
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from llmos.agents.agent import Agent, Budget
from llmos.agents.specialists.sql import read_rows, shown
from llmos.classifiers.base import Classifier, predict_labels
from llmos.classifiers.trained import TrainedClassifier
from llmos.errors import ClassifierError, InvalidDataError
from llmos.knowledge import Embedder
from llmos.llm.model import ChatModel
from llmos.tools import Tool, tool

DESCRIPTION = "Analyses review sentiment over time, detects spikes of negative reviews, draws charts, and describes CSV files."


def analysis_instructions(company: str) -> str:
    return ANALYSIS_INSTRUCTIONS_TEMPLATE.format(company=company)


ANALYSIS_INSTRUCTIONS_TEMPLATE = (
    "You analyse customer reviews of {company}.\n"
    "- For sentiment over time, call sentiment_trend; dates are YYYY-MM-DD and may be left out for all data.\n"
    "- To check for a spike of negative reviews, call detect_sentiment_spike.\n"
    "- For a chart, call plot_sentiment_trend and give the PNG path.\n"
    "- For statistics of a CSV file, call csv_stats with its path.\n"
    "- Report the numbers the tools return (shares as percentages) in two or three sentences. "
    "If there is an alert, say so first."
)

Sentiment = Literal["negative", "neutral", "positive"]
SENTIMENTS = ("negative", "neutral", "positive")
Period = Literal["week", "month"]
DEFAULT_SENTIMENT = Path(__file__).parent / "data" / "sentiment"  # the shipped classifier's folder
TOPICS = {
    "quality": "product quality, broke, defect, leaking, fell apart, durable, well made, stitching",
    "shipping": "shipping and delivery, arrived late or early, parcel, box crushed, lost in transit",
    "price": "price and value for money, expensive, overpriced, cheap, bargain",
    "comfort": "comfort and fit, size, blisters, hurts, comfortable to wear",
    "service": "customer service, support team, emails, refund, staff were helpful or rude",
}
MAX_TEXTS = 100  # per classify_texts call: keeps one tool call quick


class SpikeSettings(BaseModel):
    """When the last period's share of negative texts is an alert (see detect_spike)."""

    z_threshold: float = Field(2.0, gt=0, description="Standard deviations above the baseline mean.")
    min_ratio: float = Field(1.5, gt=0, description="Times the baseline mean.")
    min_count: int = Field(10, ge=1, description="Fewer texts in the period: never an alert.")
    baseline_periods: int = Field(6, ge=2, description="Periods before the last one that make the baseline.")
    std_floor: float = Field(0.02, gt=0, description="Smallest standard deviation used (a flat baseline).")
    critical_ratio: float = Field(2.5, gt=0, description="At or above this ratio an alert is critical, else a warning.")


# --- what the tools return ----------------------------------------------------------------------


class TextLabel(BaseModel):
    text: str
    sentiment: Sentiment
    confidence: float
    topic: str


class PeriodStats(BaseModel):
    period: str = Field(description="'2025-06' for a month, '2025-W23' for a week.")
    start: date
    count: int
    negative: int
    neutral: int
    positive: int
    negative_share: float
    top_negative_topic: str | None = None


class Trend(BaseModel):
    start: date
    end: date
    period: Period
    total: int
    periods: list[PeriodStats]


class Alert(BaseModel):
    kind: Literal["negative_sentiment_spike"] = "negative_sentiment_spike"
    severity: Literal["warning", "critical"]
    period: str
    negative_share: float
    baseline_share: float
    z_score: float
    ratio: float
    top_topics: list[str]
    top_products: list[str]
    examples: list[str]
    message: str


class SpikeReport(BaseModel):
    spike: bool
    latest: PeriodStats
    baseline_share: float
    baseline_std: float
    z_score: float
    ratio: float
    alert: Alert | None = None


class Chart(BaseModel):
    path: str
    title: str
    periods: int


class ColumnStats(BaseModel):
    name: str
    count: int = Field(description="Non-empty values.")
    missing: int
    numeric: bool
    mean: float | None = None
    min: float | str | None = None
    max: float | str | None = None


class CsvStats(BaseModel):
    path: str
    rows: int
    columns: list[ColumnStats]


# --- the classifier -----------------------------------------------------------------------------


class SentimentClassifier:
    """Sentiment and topic of each text.

    sentiment: a Classifier whose labels are among negative, neutral, positive (default: the shipped
        one, default_sentiment_model()). topic: a Classifier of topics (default: the nearest of `topics`' descriptions).
    """

    def __init__(
        self,
        embedder: Embedder,
        topics: dict[str, str] | None = None,
        *,
        sentiment: Classifier | None = None,
        topic: Classifier | None = None,
    ) -> None:
        sentiment = sentiment if sentiment is not None else default_sentiment_model()
        unknown = sorted(set(sentiment.labels) - set(SENTIMENTS))
        if unknown:
            raise ClassifierError(
                f"A sentiment classifier must label texts {', '.join(SENTIMENTS)}; this one also says {', '.join(unknown)}. "
                "Train it with those labels (rename with --label-name, e.g. 0=negative)."
            )
        self.embedder = embedder
        self.sentiment = sentiment
        # The shipped classifier is the knowledge base's own MiniLM plus a head: one embedding pass serves both.
        self.shares_vectors = isinstance(sentiment, TrainedClassifier) and sentiment.frozen_on(getattr(embedder, "path", None))
        self.topic = topic
        topics = topics or TOPICS
        self.topics = list(topics)
        self.topic_vectors = embedder.embed_documents(list(topics.values())) if topic is None else None

    def classify(self, texts: list[str]) -> list[TextLabel]:
        if not texts:
            return []
        vectors = self.embedder.embed_documents(texts) if self.shares_vectors or self.topic is None else None
        probs = self.sentiment.proba(vectors) if self.shares_vectors else self.sentiment.predict_proba(texts)
        classes = list(self.sentiment.labels)
        if self.topic is not None:
            topics = predict_labels(self.topic, texts)
        else:
            topics = [self.topics[int(j)] for j in (vectors @ self.topic_vectors.T).argmax(axis=1)]
        return [
            TextLabel(text=t, sentiment=classes[int(p.argmax())], confidence=round(float(p.max()), 3), topic=topic)
            for t, p, topic in zip(texts, probs, topics)
        ]


_classifiers: dict[str, SentimentClassifier] = {}
_lock = threading.Lock()


def classifier_for(embedder: Embedder) -> SentimentClassifier:
    """One classifier per embedding model and process (the shipped sentiment classifier loads once).

    LLMOS_SENTIMENT_CLASSIFIER and LLMOS_TOPIC_CLASSIFIER name trained classifiers to use instead of the shipped
    sentiment classifier and the topic descriptions (a name under LLMOS_HOME/classifiers, or a folder).
    """
    from llmos.config import get_settings

    settings = get_settings()
    key = f"{embedder.name}|{settings.sentiment_classifier}|{settings.topic_classifier}"
    with _lock:
        if key not in _classifiers:
            from llmos.classifiers import load_classifier

            sentiment = load_classifier(settings.sentiment_classifier) if settings.sentiment_classifier else None
            topic = load_classifier(settings.topic_classifier) if settings.topic_classifier else None
            _classifiers[key] = SentimentClassifier(embedder, sentiment=sentiment, topic=topic)
        return _classifiers[key]


def default_sentiment_model() -> TrainedClassifier:
    """The shipped sentiment classifier (frozen packaged MiniLM + a trained head; see the module docstring)."""
    from llmos.classifiers import load_classifier

    return load_classifier(DEFAULT_SENTIMENT)


# --- pure functions: periods, spikes, charts, CSV statistics -------------------------------------


def period_of(day: date, period: Period) -> tuple[str, date]:
    if period == "month":
        return f"{day.year}-{day.month:02d}", day.replace(day=1)
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}", day - timedelta(days=day.weekday())


def aggregate(rows: list[tuple[date, TextLabel]], period: Period) -> list[PeriodStats]:
    """Counts per period, in date order."""
    groups: dict[str, tuple[date, list[TextLabel]]] = {}
    for day, label in sorted(rows, key=lambda r: r[0]):
        key, start = period_of(day, period)
        groups.setdefault(key, (start, []))[1].append(label)
    out = []
    for key, (start, labels) in groups.items():
        counts = Counter(lab.sentiment for lab in labels)
        negative_topics = Counter(lab.topic for lab in labels if lab.sentiment == "negative")
        out.append(PeriodStats(
            period=key, start=start, count=len(labels), negative=counts["negative"], neutral=counts["neutral"],
            positive=counts["positive"], negative_share=round(counts["negative"] / len(labels), 3),
            top_negative_topic=negative_topics.most_common(1)[0][0] if negative_topics else None,
        ))
    return out


def detect_spike(
    periods: list[PeriodStats],
    *,
    z_threshold: float = 2.0,
    min_ratio: float = 1.5,
    min_count: int = 10,
    baseline_periods: int = 6,
    std_floor: float = 0.02,
) -> SpikeReport:
    """Is the last period's negative share a spike against the `baseline_periods` before it?

    `std_floor` keeps a perfectly flat baseline from dividing by zero; `min_count` ignores
    periods too small to mean anything.
    """
    if len(periods) < 3:
        raise InvalidDataError(f"Need at least 3 periods to compare against a baseline, got {len(periods)}; widen the date range.")
    latest, baseline = periods[-1], periods[-1 - baseline_periods : -1]
    shares = np.array([p.negative_share for p in baseline])
    mean, std = float(shares.mean()), float(shares.std())
    z = (latest.negative_share - mean) / max(std, std_floor)
    ratio = latest.negative_share / mean if mean > 0 else math.inf if latest.negative_share > 0 else 1.0
    spike = latest.count >= min_count and z >= z_threshold and ratio >= min_ratio
    return SpikeReport(spike=spike, latest=latest, baseline_share=round(mean, 3), baseline_std=round(std, 3),
                       z_score=round(z, 2), ratio=round(min(ratio, 99.0), 2))


def draw_chart(periods: list[PeriodStats], path: Path, title: str, alert_period: str | None = None) -> Path:
    """A PNG: share of each sentiment per period as lines, the alert period shaded."""
    import matplotlib

    matplotlib.use("Agg")  # no display: works on servers and in tests
    import matplotlib.pyplot as plt

    labels = [p.period for p in periods]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for name, colour in (("negative", "#c0392b"), ("neutral", "#7f8c8d"), ("positive", "#27ae60")):
        ax.plot(labels, [getattr(p, name) / p.count for p in periods], marker="o", label=name, color=colour)
    if alert_period in labels:
        n = labels.index(alert_period)
        ax.axvspan(n - 0.4, n + 0.4, color="#c0392b", alpha=0.12, label="alert")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of reviews")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax.tick_params(axis="x", labelrotation=45 if len(labels) > 8 else 0, labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


CSV_MAX_BYTES = 20 * 1024 * 1024
"""The largest file csv_stats reads: it loads the file whole, and a model must not make it read gigabytes."""


def csv_statistics(path: Path, *, max_bytes: int = CSV_MAX_BYTES) -> CsvStats:
    """Count, mean, min and max per column. A column is numeric when every non-empty value is a number."""
    if path.suffix.lower() != ".csv":
        raise InvalidDataError(f"{path.name} is not a .csv file; csv_stats reads CSV files only.")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InvalidDataError(
                f"{path.name} is {size / 1e6:.1f} MB; csv_stats reads files up to {max_bytes / 1e6:.0f} MB."
            )
        raw = path.read_bytes()
        if b"\x00" in raw:
            raise InvalidDataError(f"{path.name} holds binary data, not CSV text.")
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidDataError(f"{path.name} is not a UTF-8 text file; give a CSV file.") from None
    except OSError as exc:
        raise InvalidDataError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        rows = list(csv.reader(text.splitlines(), strict=True))
    except csv.Error as exc:
        raise InvalidDataError(f"{path.name} is not valid CSV: {exc}.") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise InvalidDataError(f"{path.name} has no data rows: a CSV needs a header line and at least one row.")
    header, data = rows[0], rows[1:]
    if len(header) < 2:
        # One column cannot be told from a list of secrets or lines of text (`KEY=value` in a renamed .env).
        raise InvalidDataError(f"{path.name} is not a CSV table: csv_stats needs at least two columns, found one.")
    if len(set(header)) != len(header) or any(not h.strip() for h in header):
        raise InvalidDataError(f"{path.name}: the header must name every column once, got {header}.")
    for n, row in enumerate(data, 2):
        if len(row) != len(header):
            raise InvalidDataError(
                f"{path.name} is malformed: line {n} has {len(row)} fields, the header has {len(header)}. Fix that line and retry."
            )
    columns = []
    for j, name in enumerate(header):
        values = [r[j].strip() for r in data if r[j].strip()]
        numbers = _numbers(values)
        if numbers is not None and numbers:
            columns.append(ColumnStats(name=name, count=len(values), missing=len(data) - len(values), numeric=True,
                                       mean=round(sum(numbers) / len(numbers), 4), min=min(numbers), max=max(numbers)))
        else:
            columns.append(ColumnStats(name=name, count=len(values), missing=len(data) - len(values), numeric=False,
                                       min=min(values, default=None), max=max(values, default=None)))
    return CsvStats(path=str(path), rows=len(data), columns=columns)


def _numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


# --- the analyst: dated texts, classified once ----------------------------------------------------


class TimedText(BaseModel):
    """One dated text: a review, a ticket, a survey answer. `subject` is what it is about (a product id...)."""

    id: str
    date: date
    text: str
    subject: str | None = None


def load_texts(
    path: str | Path,
    *,
    id_column: str = "id",
    date_column: str = "date",
    text_column: str = "text",
    subject_column: str | None = None,
) -> list[TimedText]:
    """Dated texts from a CSV file (dates YYYY-MM-DD), in date order."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise InvalidDataError(f"Cannot read the texts file {path}: {exc.strerror or exc}.") from None
    missing = [c for c in (id_column, date_column, text_column, subject_column) if c and rows and c not in rows[0]]
    if not rows or missing:
        raise InvalidDataError(f"{path.name} needs a header with the columns {', '.join(missing) or 'id, date, text'} and rows.")
    try:
        texts = [TimedText(id=r[id_column], date=r[date_column], text=r[text_column],
                           subject=r[subject_column] if subject_column else None) for r in rows]
    except ValueError as exc:
        raise InvalidDataError(f"{path.name}: a row cannot be read ({exc}); dates are YYYY-MM-DD.") from None
    return sorted(texts, key=lambda t: t.date)


def texts_from_sql(url: str, query: str, *, subject_column: str | None = None, base: Path | None = None) -> list[TimedText]:
    """Dated texts from a SQL query returning the columns id, date, text (and `subject_column`), in date order.

    A date may be a DATE, a timestamp (its day counts) or text starting YYYY-MM-DD. url: a SQLAlchemy URL (a
    relative SQLite path is taken from `base`). Raises InvalidDataError for a failing query, a missing column,
    no rows or a row that cannot be read.
    """
    where = f"The texts query on {shown(url)}"
    columns, rows = read_rows(url, query, what="The texts query", base=base)
    missing = [c for c in ("id", "date", "text", subject_column) if c and c not in columns]
    if missing:
        raise InvalidDataError(f"{where} returns the columns {', '.join(columns) or 'none'}, without {', '.join(missing)}; "
                               "alias them, e.g. SELECT review_id AS id, created_at AS date, body AS text.")
    if not rows:
        raise InvalidDataError(f"{where} returns no rows; the analyst needs at least one dated text.")
    texts = []
    for n, row in enumerate(rows, 1):
        try:
            texts.append(TimedText(id=str(row["id"]), date=_day(row["date"]), text=str(row["text"] or ""),
                                   subject=None if not subject_column or row[subject_column] is None else str(row[subject_column])))
        except (TypeError, ValueError) as exc:
            raise InvalidDataError(f"{where}: row {n} cannot be read ({exc}); dates are DATE, TIMESTAMP or "
                                   "YYYY-MM-DD text.") from None
    return sorted(texts, key=lambda t: t.date)


def _day(value: object) -> date:
    """The day of a SQL date, timestamp or ISO text (SQLite keeps timestamps as text)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.strip()).date()
    raise ValueError(f"date {value!r} is not a date")


class TextAnalyst:
    """The analysis tools over dated texts.

    classifier: anything with `classify(texts) -> list[TextLabel]`; default: the shipped one.
    sentiment, topic: Classifiers to use instead of the shipped sentiment model and topic descriptions.
    charts_dir: where charts are written. csv_dirs: the folders csv_stats may read (default: none).
    names: how subjects are shown in alerts (e.g. product id -> product name).
    """

    def __init__(
        self,
        texts: list[TimedText],
        embedder: Embedder,
        *,
        charts_dir: Path,
        csv_dirs: list[Path] | None = None,
        spike: SpikeSettings | None = None,
        classifier=None,
        sentiment: Classifier | None = None,
        topic: Classifier | None = None,
        names: dict[str, str] | None = None,
    ) -> None:
        if not texts:
            raise InvalidDataError("The analyst needs at least one dated text.")
        self.reviews = sorted(texts, key=lambda t: t.date)
        self.embedder = embedder
        self.charts_dir = Path(charts_dir)
        # None: no folder at all. Which files a model may read is the caller's decision, never a default.
        self.csv_dirs = [Path(p).resolve() for p in (csv_dirs or [])]
        self.spike = spike or SpikeSettings()
        if classifier is None and (sentiment is not None or topic is not None):
            classifier = SentimentClassifier(embedder, sentiment=sentiment, topic=topic)
        self._classifier = classifier
        self.names = names or {}
        self._labels: list[TextLabel] | None = None
        self._lock = threading.Lock()

    @property
    def classifier(self) -> SentimentClassifier:
        return self._classifier or classifier_for(self.embedder)

    def labels(self) -> list[TextLabel]:
        """Every review classified, computed once (a few seconds for a few hundred reviews)."""
        with self._lock:
            if self._labels is None:
                self._labels = self.classifier.classify([r.text for r in self.reviews])
            return self._labels

    # --- tools ---

    def classify_texts(self, texts: list[str]) -> list[TextLabel]:
        """Classify texts by sentiment (negative, neutral, positive) and topic (quality, shipping, price, comfort, service).

        Args:
            texts: The texts, up to 100.
        """
        if not texts:
            raise InvalidDataError("Give at least one text to classify.")
        if len(texts) > MAX_TEXTS:
            raise InvalidDataError(f"At most {MAX_TEXTS} texts per call, got {len(texts)}; split them into several calls.")
        return self.classifier.classify(texts)

    def sentiment_trend(
        self, start: date | None = None, end: date | None = None, period: Period = "month", product_id: str | None = None
    ) -> Trend:
        """Sentiment of customer reviews per month or week between two dates.

        Args:
            start: First day (YYYY-MM-DD); default: the first review.
            end: Last day (YYYY-MM-DD); default: the last review.
            period: 'month' or 'week'.
            product_id: Only reviews of this product (its id).
        """
        start, end, rows = self._select(start, end, product_id)
        return Trend(start=start, end=end, period=period, total=len(rows), periods=aggregate(_dated(rows), period))

    def detect_sentiment_spike(
        self, start: date | None = None, end: date | None = None, period: Period = "month"
    ) -> SpikeReport:
        """Check whether the last period in the range has a spike of negative reviews; returns an alert if so.

        Args:
            start: First day of the range (YYYY-MM-DD); default: the first review.
            end: Last day of the range, the period checked (YYYY-MM-DD); default: the last review.
            period: 'month' or 'week'.
        """
        _, _, rows = self._select(start, end, None)
        report = detect_spike(aggregate(_dated(rows), period), **self._detector())
        if report.spike:
            report.alert = self._alert(report, rows, period)
        return report

    def plot_sentiment_trend(
        self, start: date | None = None, end: date | None = None, period: Period = "month"
    ) -> Chart:
        """Draw the sentiment trend of reviews as a PNG chart and return its path.

        Args:
            start: First day (YYYY-MM-DD); default: the first review.
            end: Last day (YYYY-MM-DD); default: the last review.
            period: 'month' or 'week'.
        """
        start, end, rows = self._select(start, end, None)
        periods = aggregate(_dated(rows), period)
        alert = None
        if len(periods) >= 3:
            report = detect_spike(periods, **self._detector())
            alert = report.latest.period if report.spike else None
        title = f"Review sentiment by {period}, {start} to {end}"
        path = self.charts_dir / f"sentiment_{period}_{start}_{end}.png"
        draw_chart(periods, path, title, alert)
        return Chart(path=str(path), title=title, periods=len(periods))

    def csv_stats(self, path: str) -> CsvStats:
        """Statistics of a CSV file: rows, and count, mean, min, max per column.

        Args:
            path: The CSV file's path.
        """
        return csv_statistics(self._allowed(path))

    # --- helpers ---

    def _select(self, start: date | None, end: date | None, product_id: str | None) -> tuple[date, date, list[tuple[TimedText, TextLabel]]]:
        first, last = self.reviews[0].date, self.reviews[-1].date
        start, end = start or first, end or last
        if start > end:
            raise InvalidDataError(f"The start date {start} is after the end date {end}.")
        labels = self.labels()
        rows = [(r, lab) for r, lab in zip(self.reviews, labels)
                if start <= r.date <= end and (product_id is None or (r.subject or "").upper() == product_id.strip().upper())]
        if not rows:
            what = f" of product {product_id}" if product_id else ""
            raise InvalidDataError(f"No reviews{what} between {start} and {end}; the reviews cover {first} to {last}.")
        return start, end, rows

    def _alert(self, report: SpikeReport, rows: list[tuple[TimedText, TextLabel]], period: Period) -> Alert:
        latest = report.latest.period
        negative = [(r, lab) for r, lab in rows if lab.sentiment == "negative" and period_of(r.date, period)[0] == latest]
        topics = [t for t, _ in Counter(lab.topic for _, lab in negative).most_common(2)]
        products = [f"{self.names[p]} ({p})" if p in self.names else p
                    for p, _ in Counter(r.subject for r, _ in negative if r.subject).most_common(2)]
        severity = "critical" if report.ratio >= self.spike.critical_ratio else "warning"
        message = (
            f"Negative reviews spiked in {latest}: {report.latest.negative_share:.0%} of {report.latest.count} reviews "
            f"against a baseline of {report.baseline_share:.0%} ({report.ratio:.1f}x, z={report.z_score:.1f}). "
            f"Main topics: {', '.join(topics)}. Most affected: {', '.join(products)}."
        )
        return Alert(severity=severity, period=latest, negative_share=report.latest.negative_share,
                     baseline_share=report.baseline_share, z_score=report.z_score, ratio=report.ratio,
                     top_topics=topics, top_products=products, examples=[r.text for r, _ in negative[:3]], message=message)

    def _detector(self) -> dict:
        return self.spike.model_dump(exclude={"critical_ratio"})

    def _allowed(self, path: str) -> Path:
        """Only files inside the allowed folders: a model must not read arbitrary files."""
        if not self.csv_dirs:
            raise InvalidDataError("csv_stats may read no folder here (none was configured); answer without it.")
        given = Path(path)
        candidates = [given] if given.is_absolute() else [d / given for d in self.csv_dirs]
        for candidate in candidates:
            resolved = candidate.resolve()
            if any(resolved.is_relative_to(d) for d in self.csv_dirs) and resolved.is_file():
                return resolved
        raise InvalidDataError(f"No CSV file {path!r} in the allowed folders ({', '.join(map(str, self.csv_dirs))}).")


def _dated(rows: list[tuple[TimedText, TextLabel]]) -> list[tuple[date, TextLabel]]:
    return [(r.date, lab) for r, lab in rows]


def analysis_tools(analyst: TextAnalyst) -> list[Tool]:
    """classify_texts, sentiment_trend, detect_sentiment_spike, plot_sentiment_trend, csv_stats, in this order."""
    methods = (analyst.classify_texts, analyst.sentiment_trend, analyst.detect_sentiment_spike,
               analyst.plot_sentiment_trend, analyst.csv_stats)
    return [tool(m, timeout=120.0) for m in methods]  # the first call classifies every text: give it time


def analysis_agent(
    analyst: TextAnalyst | None = None,
    *,
    tools: list[Tool] | None = None,
    company: str = "the company",
    instructions: str | None = None,
    description: str = DESCRIPTION,
    model: ChatModel | str | None = None,
    name: str = "analysis",
    budget: Budget | None = None,
) -> Agent[str]:
    """The analysis specialist over `analyst`'s texts (or over ready `tools`)."""
    if tools is None:
        if analyst is None:
            raise InvalidDataError("analysis_agent needs a TextAnalyst (or its tools).")
        tools = analysis_tools(analyst)
    return Agent(
        name,
        description=description,
        instructions=instructions or analysis_instructions(company),
        tools=tools,
        model=model,
        tool_choice="required",  # a specialist always looks something up before it answers
        budget=budget or Budget(max_steps=3),
        max_tokens_per_call=256,  # two or three sentences, or a few calls; a runaway answer is cut short
    )
