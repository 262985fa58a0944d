"""Recommendation tools against the real catalog collection."""

from __future__ import annotations

import json

import pytest

from llmos.demo.stores import OrderRow
from llmos.errors import InvalidDataError, NotFoundError
from llmos.tools import RunContext


def owned_by(stores, customer_id):
    with stores.session() as db:
        return {i.item_id for o in db.query(OrderRow).filter_by(customer_id=customer_id) for i in o.items}


@pytest.mark.parametrize("request_text", ["", "a warm sleeping bag for winter", "stove"])
async def test_never_recommends_owned_items(tools, stores, request_text):
    for n in range(1, 21):
        customer = f"C{n:03d}"
        recs = await tools["recommend_products"](RunContext(user=customer), request=request_text, k=5)
        owned = owned_by(stores, customer)
        assert set(recs.owned) == owned
        assert not owned & {p.item_id for p in recs.picks}
        assert len(recs.picks) == 5


async def test_picks_are_diverse_and_explained(tools):
    recs = await tools["recommend_products"](RunContext(user="C001"), k=3)
    assert len({p.item_id for p in recs.picks}) == 3
    assert len({p.category for p in recs.picks}) >= 2  # at most two per category
    assert all(p.reason and p.similar_to_owned for p in recs.picks)


async def test_request_terms_steer_and_explain(tools):
    recs = await tools["recommend_products"](RunContext(user="C002"), request="headlamp for night hiking", k=3)
    top = recs.picks[0]
    assert "Headlamp" in top.name and "headlamp" in top.matched_terms
    assert "headlamp" in top.reason


async def test_bad_input(tools):
    with pytest.raises(NotFoundError):
        await tools["recommend_products"](RunContext(user="C999"))
    with pytest.raises(InvalidDataError):
        await tools["recommend_products"]()
    result = await tools["recommend_products"].run(json.dumps({"request": "tent"}), RunContext(user="nobody"))
    assert result.is_error and "No customer" in result.content


async def test_the_model_cannot_read_another_customers_purchases(tools, stores):
    # A customer id written by the model is no argument: the history used is the signed-in customer's.
    result = await tools["recommend_products"].run(json.dumps({"customer_id": "C002", "request": "tent"}))
    assert result.is_error and result.bad_arguments
    anonymous = await tools["recommend_products"](request="tent", k=3)
    assert anonymous.customer_id is None and anonymous.owned == []


async def test_search_catalog_with_price_cap(tools):
    picks = await tools["search_catalog"](query="water filter", k=3, max_price=60)
    assert picks and all(p.price <= 60 for p in picks)
    assert any("Filter" in p.name for p in picks)
