"""The demo company's tools module, as its assistant file (assistant.toml) names them.

The tools work on the demo stores, prepared once under LLMOS_HOME/demo on first use, or the
ones given to `use_stores` (tests, `demo_team(stores)`).
"""

from __future__ import annotations

from llmos.assistants import toolset
from llmos.demo.stores import DemoStores, prepare_demo
from llmos.tools import RunContext

_stores: DemoStores | None = None


def use_stores(stores: DemoStores) -> None:
    """Make the tools work on `stores`."""
    global _stores
    _stores = stores


def stores() -> DemoStores:
    global _stores
    if _stores is None:
        _stores = prepare_demo()
    return _stores


@toolset
def policy_search():
    from llmos.demo.support import search_tool

    return [search_tool(stores())]


@toolset
def shop():
    """my_account and lookup_order."""
    from llmos.demo.support import shop_tools

    return shop_tools(stores())


@toolset
def recommendation():
    from llmos.demo.specialists import recommendation_tools

    return recommendation_tools(stores())


@toolset
def analysis():
    from llmos.demo.specialists import analysis_tools

    return analysis_tools(stores())


def ticket_store():
    return stores().tickets


def own_order(ctx: RunContext, order_id: str) -> str:
    from llmos.demo.support import ShopDesk

    return ShopDesk(stores()).own_order(ctx, order_id)


def customer_key(user: str) -> str:
    from llmos.demo.support import ShopDesk

    return ShopDesk(stores()).customer_key(user)
