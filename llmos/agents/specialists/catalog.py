"""An item catalog for the recommendation specialist: items with vectors, from CSV, JSON lines, SQL or a knowledge base.

    catalog = ItemCatalog.from_file("products.csv", kb)    # columns id, name, category, price, description
    catalog = ItemCatalog.from_sql("sqlite:///shop.db", "SELECT sku AS id, title AS name, price FROM products", kb)
    catalog = ItemCatalog.from_knowledge(kb)               # a collection already holding one chunk per item

The vectors live in a knowledge-base collection (one chunk per item, its id the item id, its
category a tag), so a catalog is embedded once and reopened for free.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from llmos.agents.specialists.sql import read_rows, shown
from llmos.errors import InvalidDataError
from llmos.knowledge import Chunk, Embedder, KnowledgeBase, Location


class CatalogItem(BaseModel):
    id: str
    name: str
    category: str = ""
    price: float | None = None
    description: str = ""

    def text(self) -> str:
        """What gets embedded: name, category and description together."""
        return f"{self.name} ({self.category}). {self.description}"


class ItemCatalog:
    """Items by id, and the knowledge base whose collection holds their vectors."""

    def __init__(self, items: dict[str, CatalogItem], kb: KnowledgeBase) -> None:
        self.items = items
        self.kb = kb

    @property
    def store(self):
        return self.kb.store

    @property
    def embedder(self) -> Embedder:
        return self.kb.embedder

    @classmethod
    def from_items(cls, items: list[CatalogItem], kb: KnowledgeBase, *, source: str = "catalog") -> ItemCatalog:
        """Index `items` into `kb` (replacing what its collection held) unless it already holds exactly them."""
        catalog = cls({i.id: i for i in items}, kb)
        held = {chunk_id: text for chunk_id, text, _ in kb.store.iter_all()}
        if held != {i.id: i.text() for i in items}:
            if held:
                kb.store.collection.delete(ids=list(held))
            kb.add_chunks([
                Chunk(id=item.id, text=item.text(), source=source, location=Location(row=n), tags=[item.category] if item.category else [])
                for n, item in enumerate(items, 1)
            ])
        return catalog

    @classmethod
    def from_file(cls, path: str | Path, kb: KnowledgeBase) -> ItemCatalog:
        return cls.from_items(load_items(path), kb, source=Path(path).name)

    @classmethod
    def from_sql(cls, url: str, query: str, kb: KnowledgeBase, *, base: Path | None = None) -> ItemCatalog:
        """The items a query returns, its columns named like a CSV catalog's (alias them: `SELECT sku AS id ...`).

        url: a SQLAlchemy URL (a relative SQLite path is taken from `base`, default the current folder).
        Raises InvalidDataError when the query fails, lacks the id or name column, or returns no items.
        """
        columns, rows = read_rows(url, query, what="The catalog query", base=base)
        return cls.from_items(items_from_rows(columns, rows, f"The catalog query on {shown(url)}"), kb, source="catalog query")

    @classmethod
    def from_knowledge(cls, kb: KnowledgeBase) -> ItemCatalog:
        """Every chunk of the collection as an item: its id, its first line as the name, its first tag as the category."""
        items = {}
        for chunk_id, text, meta in kb.store.iter_all():
            tags = sorted(k.split(":", 1)[1] for k in meta if k.startswith("tag:"))
            items[chunk_id] = CatalogItem(id=chunk_id, name=text.strip().splitlines()[0][:120] if text.strip() else chunk_id,
                                          category=tags[0] if tags else "", description=text)
        if not items:
            raise InvalidDataError(f"The knowledge base tenant '{kb.tenant}' holds no items; ingest the catalog first.")
        return cls(items, kb)


ITEM_COLUMNS = ("id", "name", "category", "price", "description")


def items_from_rows(columns: list[str], rows: list[dict], where: str) -> list[CatalogItem]:
    """Catalog items from the rows of a SQL query: columns as in a CSV catalog, NULLs as empty cells, other columns ignored."""
    missing = [c for c in ("id", "name") if c not in columns]
    if missing:
        raise InvalidDataError(
            f"{where} returns the columns {', '.join(columns) or 'none'}, without {' and '.join(missing)}. A catalog "
            f"needs id and name (and may have category, price, description): alias them, e.g. SELECT sku AS id, title AS name.")
    if not rows:
        raise InvalidDataError(f"{where} returns no rows; a catalog needs at least one item.")
    items = []
    for n, row in enumerate(rows, 1):
        values = {c: row[c] for c in ITEM_COLUMNS if c in row and row[c] is not None}
        # SQL ids are often numbers and prices decimals: read them as a CSV cell would be.
        values.update({c: str(values[c]) for c in ("id", "name", "category", "description") if c in values})
        try:
            items.append(CatalogItem(**values))
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            raise InvalidDataError(f"{where}: row {n} is not a catalog item ({problem}).") from None
    return items


def load_items(path: str | Path) -> list[CatalogItem]:
    """Catalog items from a .csv (a header naming id, name and optionally category, price, description),
    a .jsonl (one object a line) or a .json file (a list of objects)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidDataError(f"No catalog file {path}; give a .csv, .jsonl or .json file of items.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = [{k: v for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
        elif suffix == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        elif suffix == ".json":
            rows = json.loads(path.read_text())
        else:
            raise InvalidDataError(f"{path.name}: a catalog is a .csv, .jsonl or .json file.")
        return [CatalogItem(**row) for row in rows]
    except (ValidationError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidDataError):
            raise
        raise InvalidDataError(f"{path.name} is not a catalog of items (id, name, category, price, description): {exc}") from None
