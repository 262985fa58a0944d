"""The demo company's recommendation and analysis specialists: llmos's generic ones over the demo's
catalog, purchases and reviews, in the shop's words."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from llmos.agents.agent import Agent, Budget
from llmos.agents.specialists.analysis import ANALYSIS_INSTRUCTIONS_TEMPLATE, TextAnalyst, TimedText, analysis_agent as generic_analysis_agent, analysis_tools as generic_analysis_tools
from llmos.agents.specialists.catalog import ItemCatalog
from llmos.agents.specialists.recommendation import Recommender, recommendation_agent as generic_recommendation_agent
from llmos.agents.specialists.recommendation import recommendation_tools as generic_recommendation_tools
from llmos.demo.stores import COMPANY, CustomerRow, DemoStores, OrderItemRow, OrderRow
from llmos.errors import NotFoundError
from llmos.llm.model import ChatModel
from llmos.tools import RunContext, Tool
from llmos.tools.wording import reworded

RECOMMENDATION_INSTRUCTIONS = (
    "You recommend products of Alder & Ridge Outfitters, an outdoor-gear shop.\n"
    "- Call recommend_products with what the customer asks for, in a few words; the signed-in customer's "
    "purchases guide the picks.\n"
    "- To look up a described product, call search_catalog.\n"
    "- Answer with the picks as a short list: name, price, and the reason the tool gives. "
    "Only recommend items the tools returned."
)
ANALYSIS_INSTRUCTIONS = ANALYSIS_INSTRUCTIONS_TEMPLATE.format(company=COMPANY)
# The shop's examples in the tools' help, for the model that serves its customers.
RECOMMENDATION_WORDING = {
    "recommend_products": {"request": "What they are looking for, e.g. 'warm sleeping bag for winter'. May be empty."},
}
SEARCH_CATALOG_DESCRIPTION = "Search the catalog by description, e.g. 'light tent for two'."
ANALYSIS_WORDING = {"sentiment_trend": {"product_id": "Only reviews of this product (like P051)."}}


def purchases(stores: DemoStores):
    """The demo's purchase history: item ids in the signed-in customer's orders."""

    def history(ctx: RunContext) -> list[str]:
        customer_id = (ctx.user or "").strip().upper()
        with stores.session() as db:
            if db.get(CustomerRow, customer_id) is None:
                raise NotFoundError(f"No customer {ctx.user!r} in the customer records.")
            rows = db.scalars(select(OrderItemRow.item_id).join(OrderRow).where(OrderRow.customer_id == customer_id))
            return sorted(set(rows))

    return history


def recommendation_tools(stores: DemoStores) -> list[Tool]:
    recommender = Recommender(ItemCatalog(stores.items, stores.catalog), purchases(stores), user_key=lambda u: u.strip().upper())
    recommend, search = generic_recommendation_tools(recommender)
    return [reworded(recommend, arguments=RECOMMENDATION_WORDING["recommend_products"]),
            reworded(search, description=SEARCH_CATALOG_DESCRIPTION)]


def recommendation_agent(stores: DemoStores, model: ChatModel | str | None = None) -> Agent[str]:
    """The recommendation specialist over the demo catalog."""
    return generic_recommendation_agent(tools=recommendation_tools(stores), instructions=RECOMMENDATION_INSTRUCTIONS,
                                        model=model, budget=Budget(max_steps=2))


def analyst(stores: DemoStores, csv_dirs: list[Path] | None = None) -> TextAnalyst:
    """The demo reviews (review_id, date, product_id, text) as dated texts about products."""
    import csv

    with open(stores.reviews_csv, newline="") as f:
        texts = [TimedText(id=r["review_id"], date=r["date"], text=r["text"], subject=r["product_id"]) for r in csv.DictReader(f)]
    names = {item_id: item.name for item_id, item in stores.items.items()}
    return TextAnalyst(texts, stores.embedder, charts_dir=stores.charts_dir, csv_dirs=csv_dirs, names=names)


def analysis_tools(stores: DemoStores, csv_dirs: list[Path] | None = None) -> list[Tool]:
    return [reworded(t, arguments=ANALYSIS_WORDING.get(t.name, {})) for t in generic_analysis_tools(analyst(stores, csv_dirs))]


def analysis_agent(stores: DemoStores, model: ChatModel | str | None = None, csv_dirs: list[Path] | None = None) -> Agent[str]:
    """The analysis specialist over the demo reviews; `csv_dirs` are the folders csv_stats may read (default: none)."""
    return generic_analysis_agent(tools=analysis_tools(stores, csv_dirs), instructions=ANALYSIS_INSTRUCTIONS,
                                  model=model, budget=Budget(max_steps=3))
