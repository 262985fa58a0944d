"""The demo company's stores, built once from the packaged data files.

    stores = prepare_demo()             # LLMOS_HOME/demo: demo.sqlite, knowledge/ (Chroma), charts/
    stores.docs.search("damaged stove") # policies and FAQ (tenant "demo-docs")
    stores.catalog                      # catalog item texts (tenant "demo-catalog"), one chunk per item
    with stores.session() as db: ...    # customers, orders, order_items (SQLAlchemy)
    stores.tickets                      # llmos's ticket store, which the support specialist writes: the session
                                        # database (LLMOS_MEMORY_URL) when one is set, else tickets.sqlite

Preparing again is free: a marker file records which data version was built. When the
packaged data changes, customers and orders are reloaded and both collections rebuilt;
tickets are kept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import Date, Engine, Float, ForeignKey, Integer, String, Text, create_engine, delete
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from llmos.agents.specialists.catalog import CatalogItem
from llmos.agents.specialists.tickets import TicketStore
from llmos.knowledge import Chunk, Embedder, KnowledgeBase, Location, open_tenants

DATA_DIR = Path(__file__).parent / "data"
COMPANY = "Alder & Ridge Outfitters"
DOCS_TENANT = "demo-docs"
CATALOG_TENANT = "demo-catalog"
_SCHEMA = "1"  # bump when the tables or the way collections are built change


# --- tables ------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class CustomerRow(Base):
    __tablename__ = "customers"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    tier: Mapped[str] = mapped_column(String(20))
    joined: Mapped[date] = mapped_column(Date)
    orders: Mapped[list[OrderRow]] = relationship(back_populates="customer", order_by="OrderRow.date")


class OrderRow(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))  # processing, shipped, delivered, damaged, returned
    note: Mapped[str] = mapped_column(Text, default="")
    customer: Mapped[CustomerRow] = relationship(back_populates="orders")
    items: Mapped[list[OrderItemRow]] = relationship(back_populates="order")


class OrderItemRow(Base):
    __tablename__ = "order_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    item_id: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(Integer)
    price: Mapped[float] = mapped_column(Float)
    order: Mapped[OrderRow] = relationship(back_populates="items")


# --- the stores --------------------------------------------------------------------------------


@dataclass
class DemoStores:
    """Everything the demo specialists work on. Made by `prepare_demo`."""

    root: Path
    engine: Engine
    docs: KnowledgeBase
    catalog: KnowledgeBase
    items: dict[str, CatalogItem]
    reviews_csv: Path
    tickets: TicketStore

    @property
    def embedder(self) -> Embedder:
        return self.docs.embedder

    @property
    def charts_dir(self) -> Path:
        return self.root / "charts"

    def load(self) -> None:
        """Load the embedding model now, not at the first tool call: a few seconds (torch, MiniLM) that would
        otherwise fall in the middle of the first goal, with every specialist waiting on its tools."""
        self.embedder.embed_query("load")

    def session(self) -> Session:
        # expire_on_commit=False: tools return values read after the commit.
        return Session(self.engine, expire_on_commit=False)


def prepare_demo(home: str | Path | None = None, *, embedder: Embedder | None = None) -> DemoStores:
    """Build the demo stores under `home`/demo (default LLMOS_HOME), once; later calls only open them.

    Tickets go to the session database when LLMOS_MEMORY_URL names one and `home` is the default; a `home`
    given (a test's, a trial's) keeps everything, tickets included, under it.
    """
    from llmos.config import get_settings

    memory_url = get_settings().memory_url if home is None else None
    if home is None:
        home = get_settings().home
    root = Path(home).expanduser() / "demo"
    root.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{root / 'demo.sqlite'}")
    kbs = open_tenants(root / "knowledge", [DOCS_TENANT, CATALOG_TENANT], embedder=embedder)
    items = {i["id"]: CatalogItem(**i) for i in json.loads((DATA_DIR / "catalog.json").read_text())}
    tickets = TicketStore(memory_url or root / "tickets.sqlite")
    stores = DemoStores(root, engine, kbs[DOCS_TENANT], kbs[CATALOG_TENANT], items, DATA_DIR / "reviews.csv", tickets)

    marker = root / "prepared.json"
    want = {"data": _data_version(), "embedder": stores.embedder.name}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return stores
    Base.metadata.create_all(engine)
    _load_customers(stores)
    _rebuild_docs(stores.docs)
    _rebuild_catalog(stores.catalog, list(items.values()))
    marker.write_text(json.dumps(want))  # last: an interrupted prepare runs again next time
    return stores


def _data_version() -> str:
    digest = hashlib.sha256(_SCHEMA.encode())
    for path in sorted(DATA_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(DATA_DIR).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _load_customers(stores: DemoStores) -> None:
    """Replace customers, orders and order items with the packaged ones; tickets stay."""
    customers = json.loads((DATA_DIR / "customers.json").read_text())
    with stores.session() as db, db.begin():
        for table in (OrderItemRow, OrderRow, CustomerRow):
            db.execute(delete(table))
        for c in customers:
            db.add(CustomerRow(id=c["id"], name=c["name"], email=c["email"], tier=c["tier"],
                               joined=date.fromisoformat(c["joined"])))
            for o in c["orders"]:
                db.add(OrderRow(id=o["id"], customer_id=c["id"], date=date.fromisoformat(o["date"]),
                                status=o["status"], note=o["note"]))
                db.add_all(OrderItemRow(order_id=o["id"], item_id=i["item_id"], quantity=i["quantity"], price=i["price"])
                           for i in o["items"])


def _clear(kb: KnowledgeBase) -> None:
    ids = kb.store.collection.get(include=[])["ids"]
    if ids:
        kb.store.collection.delete(ids=ids)


def _rebuild_docs(kb: KnowledgeBase) -> None:
    """Chunk the policies by heading. Sources are bare file names ('returns.md'): short citations."""
    from llmos.knowledge.chunking import Chunker
    from llmos.knowledge.loaders import markdown_sections

    chunker = Chunker(kb.embedder.count_tokens, kb.settings.chunk_tokens, kb.settings.chunk_overlap)
    chunks: list[Chunk] = []
    for path in sorted((DATA_DIR / "policies").glob("*.md")):
        data = path.read_bytes()
        chunks += chunker.split(markdown_sections(data.decode()), path.name, hashlib.sha256(data).hexdigest())
    _clear(kb)
    kb.add_chunks(chunks)
    kb.keyword_index()  # build BM25 now rather than on the first search


def _rebuild_catalog(kb: KnowledgeBase, items: list[CatalogItem]) -> None:
    """One chunk per item, its id the item id, its category a tag: the recommender filters and looks up by both."""
    chunks = [
        Chunk(id=item.id, text=item.text(), source="catalog.json", location=Location(row=n), tags=[item.category])
        for n, item in enumerate(items, 1)
    ]
    _clear(kb)
    kb.add_chunks(chunks)
