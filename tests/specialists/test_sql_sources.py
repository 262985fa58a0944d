"""The specialists' data from SQL databases (SQLite files and a real PostgreSQL server): tickets in any
database, the session database by default; a catalog, a customer's history and dated texts from queries."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import date

import pytest
import sqlalchemy as sa

from llmos.agents.specialists import ItemCatalog, Recommender, SQLHistory, TicketDesk, TicketStore, texts_from_sql
from llmos.config import get_settings
from llmos.errors import InvalidDataError
from llmos.knowledge import KnowledgeBase
from llmos.tools import RunContext
from tests.knowledge.conftest import HashEmbedder

PRODUCTS = [  # id, name, category, price, description, internal code (a column the catalog does not use)
    (1, "Alpine Tent", "tents", 420.0, "Four-season tent for two", "X1"),
    (2, "Meadow Tent", "tents", 180.5, "Light summer tent", "X2"),
    (3, "Ember Stove", "stoves", 75.0, None, "X3"),
    (4, "Glacier Sleeping Bag", "sleeping bags", 260.0, "Down bag for winter nights", "X4"),
    (5, "Trail Headlamp", "lights", 35.0, "Headlamp for night hiking", "X5"),
]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMOS_MEMORY_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """An empty database of each backend, as the URL a company would write (sync or async driver)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shop.db'}"
    return request.getfixturevalue("postgres_server").create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
def shop(db_url) -> str:
    """A company's own tables: products, purchases, reviews."""
    engine = sa.create_engine(db_url)
    with engine.begin() as db:
        db.execute(sa.text("CREATE TABLE products (sku INTEGER PRIMARY KEY, title TEXT, kind TEXT, price NUMERIC(8,2), "
                           "blurb TEXT, code TEXT)"))
        db.execute(sa.text("INSERT INTO products VALUES (:s, :t, :k, :p, :b, :c)"),
                   [dict(zip("stkpbc", row)) for row in PRODUCTS])
        db.execute(sa.text("CREATE TABLE purchases (customer TEXT, sku INTEGER)"))
        db.execute(sa.text("INSERT INTO purchases VALUES (:c, :s)"),
                   [{"c": "C1", "s": 1}, {"c": "C1", "s": 3}, {"c": "C2", "s": 5}])
        db.execute(sa.text("CREATE TABLE reviews (rid INTEGER, created TIMESTAMP, body TEXT, sku INTEGER)"))
        db.execute(sa.text("INSERT INTO reviews VALUES (:r, :d, :b, :s)"), [
            {"r": 1, "d": "2025-03-02 09:30:00", "b": "Great tent, dry all night.", "s": 1},
            {"r": 2, "d": "2025-01-15 18:00:00", "b": "The stove leaked.", "s": 3},
            {"r": 3, "d": "2025-02-10 12:00:00", "b": "Bright and light.", "s": None},
        ])
    engine.dispose()
    return db_url


CATALOG_SQL = "SELECT sku AS id, title AS name, kind AS category, price, blurb AS description, code FROM products"
HISTORY_SQL = "SELECT sku FROM purchases WHERE customer = :user"


def catalog_of(shop, tmp_path) -> ItemCatalog:
    return ItemCatalog.from_sql(shop, CATALOG_SQL, KnowledgeBase(tmp_path / "kb", tenant="shop", embedder=HashEmbedder()))


# --- tickets -------------------------------------------------------------------------------------


async def test_tickets_in_a_database_url_are_scoped_to_tenant_and_customer(db_url):
    store = TicketStore(db_url)
    tools = {t.name: t for t in TicketDesk(store).tools()}
    alice = RunContext(user="alice", tenant="bank-a")
    ticket = await tools["create_ticket"](alice, subject="Card lost", description="Lost at the station", reference="card-9")
    for other in (RunContext(user="bob", tenant="bank-a"), RunContext(user="alice", tenant="bank-b")):
        result = await tools["update_ticket"].run(json.dumps({"ticket_id": ticket.id, "status": "resolved"}), other)
        assert result.is_error and "No ticket" in result.content and "Card lost" not in result.content
        assert store.get(other.tenant, other.user, ticket.id) is None
    await tools["escalate_to_human"](alice, reason="asked for a person", summary="Alice lost her card.", ticket_id=ticket.id)
    reopened = TicketStore(db_url)  # another process's store: the same table, not a new one
    assert reopened.get("bank-a", "alice", ticket.id).summary == "Alice lost her card."
    assert reopened.open_count("bank-a", "alice") == 1 and reopened.open_count("bank-b", "alice") == 0


def test_stores_opening_a_fresh_database_at_once_create_one_table(db_url):
    errors, stores = [], []

    def open_store():
        try:
            stores.append(TicketStore(db_url))
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(stores) == 4
    assert sa.inspect(stores[0].engine).get_table_names().count("tickets") == 1


async def test_tickets_go_to_the_session_database_when_one_is_configured(db_url, monkeypatch):
    from llmos.memory import SQLSessionStore

    monkeypatch.setenv("LLMOS_MEMORY_URL", db_url)  # as an operator writes it; the session store gets its async driver
    get_settings.cache_clear()
    sessions = SQLSessionStore()
    await sessions.create_session(user="alice")
    await sessions.close()
    store = TicketStore()
    assert store.database.split("://")[1] == sa.make_url(db_url).render_as_string(hide_password=True).split("://")[1]
    await TicketDesk(store).tools()[0](RunContext(user="alice", tenant="t"), subject="s", description="d")
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"tickets", "sessions", "messages"} <= tables  # one database holds both
    assert store.open_count("t", "alice") == 1


def test_without_a_session_database_tickets_are_a_file_in_llmos_home(tmp_path):
    store = TicketStore()
    assert store.url.database == str(tmp_path / "home" / "tickets.sqlite")
    assert (tmp_path / "home" / "tickets.sqlite").is_file()


def test_an_unusable_ticket_database_is_named_without_its_password(monkeypatch):
    from llmos.errors import ConfigError

    monkeypatch.setenv("LLMOS_MEMORY_URL", "not a url")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=r"The ticket database URL \(LLMOS_MEMORY_URL\): not a database URL"):
        TicketStore()
    with pytest.raises(ConfigError, match="in-memory"):
        TicketStore("sqlite://")
    with pytest.raises(ConfigError, match=r"postgresql\+psycopg://bank:\*\*\*@.* cannot be opened \(") as caught:
        TicketStore("postgresql+psycopg://bank:s3cret@127.0.0.1:1/db?connect_timeout=2")
    assert "s3cret" not in str(caught.value)


# --- the catalog and a customer's history -----------------------------------------------------------


def test_a_catalog_from_a_query_maps_its_columns_like_a_csv(shop, tmp_path):
    catalog = catalog_of(shop, tmp_path)
    assert sorted(catalog.items) == ["1", "2", "3", "4", "5"]  # numeric ids read as the CSV's text
    tent, stove = catalog.items["2"], catalog.items["3"]
    assert (tent.name, tent.category, tent.price, tent.description) == ("Meadow Tent", "tents", 180.5, "Light summer tent")
    assert stove.description == ""  # NULL is an empty cell
    assert {chunk_id for chunk_id, _, _ in catalog.store.iter_all()} == set(catalog.items)  # embedded


async def test_recommendations_leave_out_what_the_signed_in_customer_bought(shop, tmp_path):
    history = SQLHistory(shop, HISTORY_SQL)
    assert history(RunContext(user=" C1 ")) == ["1", "3"] and history(RunContext()) == []
    recommender = Recommender(catalog_of(shop, tmp_path), history)
    recs = recommender.recommend_products(RunContext(user="C1"), request="tent", k=3)
    assert recs.owned == ["1", "3"] and recs.picks[0].name == "Meadow Tent"
    assert not {"1", "3"} & {p.item_id for p in recs.picks}
    # The user id is a bound value, never SQL: a crafted one matches no purchase.
    assert history(RunContext(user="C1' OR '1'='1")) == []


def test_a_history_query_must_name_the_customer_as_a_parameter(shop):
    with pytest.raises(InvalidDataError, match=":user"):
        SQLHistory(shop, "SELECT sku FROM purchases WHERE customer = 'C1'")
    wide = SQLHistory(shop, "SELECT customer, sku FROM purchases WHERE customer = :user")
    with pytest.raises(InvalidDataError, match="one column, or name it id"):
        wide(RunContext(user="C1"))


@pytest.mark.parametrize(("query", "words"), [
    ("SELECT sku, title AS name FROM products", "returns the columns sku, name, without id. A catalog needs id and name"),
    ("SELECT sku AS id, title FROM products WHERE 1 = 0", "without name"),
    ("SELECT sku AS id, title AS name FROM products WHERE 1 = 0", "returns no rows"),
    ("SELECT id, name FROM no_such_table", "The catalog query failed on"),
    ("SELEC id", "The catalog query failed on"),
    ("SELECT sku AS id, title AS name FROM products WHERE price < :max", "names :max, which llmos does not give"),
])
def test_a_catalog_query_that_cannot_be_used_says_why(shop, tmp_path, query, words):
    kb = KnowledgeBase(tmp_path / "kb", tenant="shop", embedder=HashEmbedder())
    with pytest.raises(InvalidDataError, match="catalog") as caught:
        ItemCatalog.from_sql(shop, query, kb)
    assert words in str(caught.value)


def test_a_source_query_cannot_change_the_companys_data(shop):
    from llmos.agents.specialists.sql import read_rows

    with pytest.raises(InvalidDataError, match="The history query failed on"):
        read_rows(shop, "DELETE FROM purchases RETURNING customer", what="The history query")
    _, rows = read_rows(shop, "SELECT count(*) AS n FROM purchases", what="The count")
    assert rows == [{"n": 3}]


def test_a_missing_sqlite_file_is_not_created(tmp_path):
    with pytest.raises(InvalidDataError, match="no SQLite file"):
        ItemCatalog.from_sql(f"sqlite:///{tmp_path / 'nope.db'}", CATALOG_SQL, None)
    assert not (tmp_path / "nope.db").exists()


# --- dated texts ------------------------------------------------------------------------------------


def test_texts_from_a_query_are_dated_and_in_date_order(shop):
    texts = texts_from_sql(shop, "SELECT rid AS id, created AS date, body AS text, sku FROM reviews", subject_column="sku")
    assert [t.id for t in texts] == ["2", "3", "1"]  # by date
    assert [t.date for t in texts] == [date(2025, 1, 15), date(2025, 2, 10), date(2025, 3, 2)]  # a timestamp's day
    assert [t.subject for t in texts] == ["3", None, "1"]


@pytest.mark.parametrize(("query", "words"), [
    ("SELECT rid AS id, body AS text FROM reviews", "without date"),
    ("SELECT rid AS id, created AS date, body AS text FROM reviews WHERE rid > 9", "returns no rows"),
    ("SELECT rid AS id, body AS date, body AS text FROM reviews", "row 1 cannot be read"),
    ("SELECT * FROM missing_reviews", "The texts query failed on"),
])
def test_texts_a_query_cannot_give_are_refused_with_the_reason(shop, query, words):
    with pytest.raises(InvalidDataError, match="texts query") as caught:
        texts_from_sql(shop, query)
    assert words in str(caught.value)
