"""An assistant file whose catalog, purchase history, reviews and tickets live in SQL databases."""

from __future__ import annotations

import json
import sqlite3

import pytest

from llmos.agents.specialists import TicketStore
from llmos.assistants import check_file, load_assistant
from llmos.config import get_settings
from llmos.errors import ConfigError
from llmos.llm import ToolCall
from llmos.tools import RunContext
from tests.knowledge.conftest import HashEmbedder
from tests.scripted import ScriptedModel

HEARTH = """
name = "Hearth Lamps"

[[specialists]]
name = "desk"
kind = "support"
[specialists.tickets]
url = "sqlite:///data/tickets.db"                # relative to this file

[[specialists]]
name = "picks"
kind = "recommendation"
catalog = { sql = "SELECT sku AS id, title AS name, kind AS category, price FROM products", url = "sqlite:///shop.db" }
history = { sql = "SELECT sku FROM purchases WHERE customer = :user", url = "sqlite:///shop.db" }

[[specialists]]
name = "reviews"
kind = "analysis"
texts = { sql = "SELECT rid AS id, created AS date, body AS text FROM reviews", url = "${HEARTH_DB}" }
"""


@pytest.fixture(autouse=True)
def _settings(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMOS_MEMORY_URL", raising=False)
    monkeypatch.setenv("HEARTH_DB", f"sqlite:///{tmp_path / 'shop.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def hearth(tmp_path):
    """Hearth Lamps' assistant file, next to its shop database."""
    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.executescript("""
            CREATE TABLE products (sku INTEGER PRIMARY KEY, title TEXT, kind TEXT, price REAL);
            INSERT INTO products VALUES (1, 'Brass Desk Lamp', 'desk lamps', 89), (2, 'Oak Desk Lamp', 'desk lamps', 120),
                (3, 'Paper Floor Lamp', 'floor lamps', 150), (4, 'Linen Lamp Shade', 'shades', 30);
            CREATE TABLE purchases (customer TEXT, sku INTEGER);
            INSERT INTO purchases VALUES ('C1', 1), ('C2', 3);
            CREATE TABLE reviews (rid INTEGER, created TEXT, body TEXT);
            INSERT INTO reviews VALUES (1, '2025-01-03 10:00:00', 'Lovely warm light.'), (2, '2025-02-11', 'Arrived broken.'),
                (3, '2025-02-20 08:15:00', 'The shade is beautiful.');
        """)
    db.close()
    path = tmp_path / "hearth.toml"
    path.write_text(HEARTH)
    return path


def load(path, model):
    return load_assistant(path, model, home=path.parent / "home", embedder=HashEmbedder())


async def test_recommendations_from_the_companys_tables_for_the_signed_in_customer(hearth):
    model = ScriptedModel([json.dumps({"route": "picks"}), ToolCall.make("recommend_products", {"request": "desk lamp"}),
                           "The Oak Desk Lamp."])
    assistant = load(hearth, model)
    result = await assistant.team.run("A desk lamp for me?", context=assistant.context(user="C1"))
    picks = json.loads(next(m for m in model.requests[2].messages if m.role == "tool").content)  # what the model read
    assert picks["customer_id"] == "C1" and picks["owned"] == ["1"]  # the history query ran for the run's user
    assert picks["picks"][0]["name"] == "Oak Desk Lamp" and "1" not in [p["item_id"] for p in picks["picks"]]
    assert result.route == "picks"


async def test_tickets_go_to_the_database_the_file_names(hearth, tmp_path):
    assistant = load(hearth, ScriptedModel([]))
    desk = assistant.team.specialists[0]
    ticket = await desk.tools["create_ticket"](assistant.context(user="C2"), subject="Flicker", description="The lamp flickers.")
    stored = TicketStore(tmp_path / "data" / "tickets.db").of(assistant.tenant, "C2")
    assert [t.id for t in stored] == [ticket.id] and stored[0].subject == "Flicker"
    assert not (tmp_path / "home" / "tickets.sqlite").exists()


async def test_without_a_ticket_url_tickets_go_to_the_session_database(hearth, tmp_path, monkeypatch):
    memory = tmp_path / "memory.db"
    monkeypatch.setenv("LLMOS_MEMORY_URL", f"sqlite+aiosqlite:///{memory}")
    get_settings.cache_clear()
    hearth.write_text(HEARTH.replace('url = "sqlite:///data/tickets.db"', "enabled = true"))
    assistant = load(hearth, ScriptedModel([]))
    await assistant.team.specialists[0].tools["create_ticket"](assistant.context(user="C2"), subject="s", description="d")
    assert TicketStore(memory).open_count(assistant.tenant, "C2") == 1


async def test_analysis_of_texts_from_a_query(hearth):
    assistant = load(hearth, ScriptedModel([]))
    trend = await assistant.team.specialists[2].tools["sentiment_trend"]()
    assert [(p.period, p.count) for p in trend.periods] == [("2025-01", 1), ("2025-02", 2)]


def test_a_query_that_fails_when_the_assistant_loads_names_the_file_and_the_specialist(hearth):
    hearth.write_text(HEARTH.replace("FROM products", "FROM produkts"))
    with pytest.raises(ConfigError, match=r"hearth\.toml: specialists\[1\] \(picks\): The catalog query failed on "
                                          r"sqlite:///.*shop\.db \(no such table: produkts\)"):
        load(hearth, ScriptedModel([]))


SQL_MISTAKES = """
name = "Broken shop"
[[specialists]]
name = "desk"
kind = "support"
[specialists.tickets]
url = "not a url"
[[specialists]]
name = "desk2"
kind = "support"
[specialists.tickets]
url = "sqlite:///t.db"
store = "llmos.agents.specialists.tickets:TicketStore"
[[specialists]]
name = "picks"
kind = "recommendation"
catalog = { sql = "SELECT sku AS id, title AS name FROM products" }
history = { sql = "SELECT sku FROM purchases WHERE customer = 'C1'", url = "sqlite:///shop.db" }
[[specialists]]
name = "more"
kind = "recommendation"
catalog = { sql = "SELECT sku AS id, title AS name FROM products", url = "sqlite:///no-such.db" }
[[specialists]]
name = "reviews"
kind = "analysis"
texts = { sql = "SELECT id, date, text FROM reviews WHERE date > :since", url = "postgresql+psycopg://shop:${NO_SUCH_VAR}@db/shop" }
"""


def test_check_names_every_sql_mistake_with_its_field(tmp_path):
    (tmp_path / "shop.db").touch()
    path = tmp_path / "broken.toml"
    path.write_text(SQL_MISTAKES)
    spec, problems = check_file(path)
    assert spec is None and all(p.startswith(f"{path}: ") for p in problems)
    expected = [
        ("specialists[2] (picks).catalog.url", "Field required; add it"),
        ("specialists[0] (desk).tickets.url", "not a database URL. Write sqlite:///"),
        ("specialists[1] (desk2).tickets", "give store = \"module:function\" or url = \"...\", not both"),
        ("specialists[2] (picks).history.sql", "must name the customer as :user"),
        ("specialists[3] (more).catalog.url", f"no SQLite file {tmp_path / 'no-such.db'}"),
        ("specialists[4] (reviews).texts.url", "the environment variable NO_SUCH_VAR is not set"),
        ("specialists[4] (reviews).texts.sql", "names :since, but llmos gives none"),
    ]
    assert len(problems) == len(expected), problems
    for (field, words), problem in zip(expected, problems):
        assert f": {field}: " in problem and words in problem, problem


def test_a_history_without_a_catalog_is_a_mistake(hearth):
    hearth.write_text(HEARTH.replace("catalog = {", "# catalog = {"))
    _, problems = check_file(hearth)
    assert len(problems) == 2, problems  # and the specialist has no catalog at all
    assert ": specialists[1] (picks).history: a history is read with a catalog" in problems[1], problems


def test_the_sql_file_passes_the_check(hearth):
    spec, problems = check_file(hearth)
    assert problems == [] and spec.specialists[1].catalog.url == "sqlite:///shop.db"
