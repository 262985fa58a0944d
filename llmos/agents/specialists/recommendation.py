"""The recommendation specialist: items of any catalog for a customer, from what they have and what they ask for.

    recommender = Recommender(ItemCatalog.from_file("products.csv", kb), history=purchases_of)
    agent = recommendation_agent(recommender, company="Acme Lamps")

`history(ctx) -> item ids` is the company's: the items the signed-in customer already has
(from its order system, a table, long-term memory). Without it, picks follow the request only.
`SQLHistory(url, "SELECT item_id FROM orders WHERE customer_id = :user")` is one over a SQL table.

How a recommendation is made (`Recommender.recommend`):
1. The query vector mixes the request's embedding and the mean embedding of the items the
   customer bought (the catalog collection already holds every item's vector).
2. The nearest catalog items, minus everything the customer already owns, are candidates.
3. Maximal marginal relevance picks among them, at most two per category, so that three picks
   are three different things rather than three versions of one tent. Owned items count as
   already picked, so another colour of a pot the customer has ranks low.
4. Each pick is explained: the owned item it is closest to, and the request words it contains.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from llmos.agents.agent import Agent, Budget
from llmos.agents.specialists.catalog import ItemCatalog
from llmos.agents.specialists.sql import bound_names, read_rows, shown
from llmos.errors import InvalidDataError
from llmos.llm.model import ChatModel
from llmos.tools import RunContext, Tool, tool

DESCRIPTION = "Recommends catalog products for a customer from their purchases and request, and explains each pick."


def recommendation_instructions(company: str) -> str:
    return (
        f"You recommend products of {company}.\n"
        "- Call recommend_products with what the customer asks for, in a few words; the signed-in customer's "
        "purchases guide the picks.\n"
        "- To look up a described product, call search_catalog.\n"
        "- Answer with the picks as a short list: name, price, and the reason the tool gives. "
        "Only recommend items the tools returned."
    )


REQUEST_WEIGHT = 0.75  # share of the request in the query vector; the purchase history gets the rest
MMR_LAMBDA = 0.6  # 1 is pure relevance, lower is more varied
PER_CATEGORY = 2  # most picks from one category
CANDIDATES = 40
_STOP = set("a an and or the for with to of in on my me i im i'm is it its that this some something want need looking like "
            "new good best any please recommend show similar products product items item buy get".split())


class Pick(BaseModel):
    item_id: str
    name: str
    category: str
    price: float | None
    score: float = Field(description="Cosine similarity to the query, 0..1.")
    reason: str
    similar_to_owned: str | None = Field(None, description="The owned item this pick is closest to.")
    matched_terms: list[str] = Field(default_factory=list, description="Request words found in the item's text.")


class Recommendations(BaseModel):
    customer_id: str | None
    request: str
    picks: list[Pick]
    owned: list[str] = Field(description="Ids of items the customer already owns; never recommended.")


class SQLHistory:
    """A customer's items from a SQL query: `history = SQLHistory(url, query)`, then `Recommender(catalog, history)`.

    The query names the signed-in customer as the bound parameter `:user` (the run's user, through `user_key`),
    never formatted into its text, and returns the item ids: a column `id`, or its only column.
    """

    def __init__(self, url: str, query: str, *, user_key: Callable[[str], str] = str.strip, base: Path | None = None) -> None:
        if "user" not in bound_names(query):
            raise InvalidDataError("The history query must name the customer as :user, e.g. "
                                   "SELECT item_id FROM orders WHERE customer_id = :user.")
        self.url, self.query, self.user_key, self.base = url, query, user_key, base

    def __call__(self, ctx: RunContext) -> list[str]:
        if not ctx.user or not ctx.user.strip():
            return []
        where = f"The history query on {shown(self.url)}"
        columns, rows = read_rows(self.url, self.query, {"user": self.user_key(ctx.user)}, what="The history query", base=self.base)
        if "id" not in columns and len(columns) != 1:
            raise InvalidDataError(f"{where} returns the columns {', '.join(columns)}; return the item ids as one column, "
                                   "or name it id (SELECT item_id AS id ...).")
        column = "id" if "id" in columns else columns[0]
        return [str(row[column]) for row in rows if row[column] is not None]


class Recommender:
    """Recommendations over `catalog`; `history(ctx)` lists the item ids the signed-in customer has
    (it raises NotFoundError for an unknown customer), `user_key` says how a user id is stored."""

    def __init__(
        self,
        catalog: ItemCatalog,
        history: Callable[[RunContext], list[str]] | None = None,
        user_key: Callable[[str], str] = str.strip,
    ) -> None:
        self.catalog = catalog
        self.history = history
        self.user_key = user_key

    def recommend_products(self, ctx: RunContext, request: str = "", k: int = 3) -> Recommendations:
        """Recommend catalog items for the customer, from what they bought and what they ask for. Never an item they own.

        The purchases are those of the customer signed in to the run (`ctx.user`), if any.

        Args:
            request: What they are looking for, in a few words. May be empty.
            k: How many items to recommend (1-10).
        """
        k = max(1, min(10, k))
        customer_id = self.user_key(ctx.user) if ctx.user and ctx.user.strip() else None
        owned = sorted(set(self.history(ctx))) if customer_id and self.history else []
        if not owned and not request.strip():
            raise InvalidDataError("Nothing to go on: give a request, what the customer wants, in a few words.")
        store, embedder = self.catalog.store, self.catalog.embedder
        owned_vectors = store.vectors(owned)
        parts, weights = [], []
        if request.strip():
            parts.append(embedder.embed_query(request))
            weights.append(REQUEST_WEIGHT if owned_vectors else 1.0)
        if owned_vectors:
            history = np.mean(list(owned_vectors.values()), axis=0)
            parts.append(history / np.linalg.norm(history))
            weights.append(1.0 - REQUEST_WEIGHT if request.strip() else 1.0)
        query = np.sum([w * p for w, p in zip(weights, parts)], axis=0)
        query = (query / np.linalg.norm(query)).astype(np.float32)

        ranked = [(i, s) for i, s in store.query(query, CANDIDATES + len(owned)) if i not in set(owned)]
        vectors = store.vectors([i for i, _ in ranked])
        categories = [self.catalog.items[i].category for i, _ in ranked]
        chosen = _mmr_with_category_cap(ranked, vectors, categories, k, list(owned_vectors.values()))
        terms = _terms(request)
        picks = [self._explain(i, score, terms, vectors[i], owned_vectors) for i, score in chosen]
        return Recommendations(customer_id=customer_id, request=request, picks=picks, owned=owned)

    def search_catalog(self, query: str, k: int = 5, max_price: float | None = None) -> list[Pick]:
        """Search the catalog by description.

        Args:
            query: What to look for.
            k: How many items (1-10).
            max_price: Only items at or below this price in dollars.
        """
        if not query.strip():
            raise InvalidDataError("Give a query: what kind of item to look for.")
        vector = self.catalog.embedder.embed_query(query)
        hits = self.catalog.store.query(vector, CANDIDATES)
        items = [(i, s) for i, s in hits if max_price is None or (self.catalog.items[i].price or 0.0) <= max_price]
        terms = _terms(query)
        return [self._explain(i, s, terms, None, {}) for i, s in items[: max(1, min(10, k))]]

    # --- helpers ---

    def _explain(self, item_id: str, score: float, terms: list[str], vector, owned_vectors: dict) -> Pick:
        item = self.catalog.items[item_id]
        text = item.text().lower()
        matched = [t for t in terms if t in text or t[:5] in text]  # a crude stem: 'tents' matches 'tent'
        similar = None
        if owned_vectors and vector is not None:
            best = max(owned_vectors, key=lambda o: float(owned_vectors[o] @ vector))
            similar = self.catalog.items[best].name
        reasons = []
        if matched:
            reasons.append("matches " + ", ".join(f"'{t}'" for t in matched))
        if similar:
            reasons.append(f"goes with your {similar}")
        reason = "; ".join(reasons) or "close to what you asked for"
        return Pick(item_id=item.id, name=item.name, category=item.category, price=item.price, score=round(float(score), 3),
                    reason=reason[0].upper() + reason[1:], similar_to_owned=similar, matched_terms=matched)


def _terms(text: str) -> list[str]:
    words = re.findall(r"[a-z][a-z-]+", text.lower())
    return list(dict.fromkeys(w for w in words if w not in _STOP and len(w) > 2))


def _mmr_with_category_cap(
    ranked: list[tuple[str, float]], vectors: dict[str, np.ndarray], categories: list[str], k: int, owned: list[np.ndarray]
) -> list[tuple[str, float]]:
    """Greedy MMR over `ranked`, skipping a candidate whose category already has PER_CATEGORY picks.

    Redundancy is the highest similarity to anything picked or owned.
    """
    chosen: list[int] = []
    count: dict[str, int] = {}
    while len(chosen) < min(k, len(ranked)):
        best, best_score = None, -np.inf
        for n, (item_id, relevance) in enumerate(ranked):
            if n in chosen or count.get(categories[n], 0) >= PER_CATEGORY:
                continue
            others = [vectors[ranked[c][0]] for c in chosen] + owned
            redundancy = max((float(vectors[item_id] @ v) for v in others), default=0.0)
            score = MMR_LAMBDA * relevance - (1 - MMR_LAMBDA) * redundancy
            if score > best_score:
                best, best_score = n, score
        if best is None:  # every remaining candidate is in a full category
            break
        chosen.append(best)
        count[categories[best]] = count.get(categories[best], 0) + 1
    return [ranked[n] for n in chosen]


def recommendation_tools(recommender: Recommender) -> list[Tool]:
    """recommend_products and search_catalog, in this order."""
    return [tool(recommender.recommend_products), tool(recommender.search_catalog)]


def recommendation_agent(
    recommender: Recommender | None = None,
    *,
    tools: list[Tool] | None = None,
    company: str = "the company",
    instructions: str | None = None,
    description: str = DESCRIPTION,
    model: ChatModel | str | None = None,
    name: str = "recommendation",
    budget: Budget | None = None,
) -> Agent[str]:
    """The recommendation specialist over `recommender`'s catalog (or over ready `tools`)."""
    if tools is None:
        if recommender is None:
            raise InvalidDataError("recommendation_agent needs a Recommender (or its tools).")
        tools = recommendation_tools(recommender)
    return Agent(
        name,
        description=description,
        instructions=instructions or recommendation_instructions(company),
        tools=tools,
        model=model,
        tool_choice="required",  # a specialist always looks something up before it answers
        budget=budget or Budget(max_steps=2),
        max_tokens_per_call=256,  # two or three sentences, or a few calls; a runaway answer is cut short
    )
