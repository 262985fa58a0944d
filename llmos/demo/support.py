"""The demo company's support: its customer and order tools over DemoStores, its escalation rules,
and its wording, given to llmos's generic support specialist (llmos/agents/specialists/support.py).

    agent = support_agent(prepare_demo())
    context = RunContext(user="C001")  # the signed-in customer: from the login, never from the model
    print(agent.run_sync("My stove from order O1090 arrived damaged.", context=context).text)
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from llmos.agents.agent import Agent, Budget
from llmos.agents.specialists import support as generic
from llmos.agents.specialists.escalation import EscalationPolicy
from llmos.agents.specialists.tickets import DEFAULT_TENANT, NOT_SIGNED_IN, TicketDesk
from llmos.demo.stores import CustomerRow, DemoStores, OrderRow
from llmos.errors import AccessDeniedError, NotFoundError
from llmos.llm.model import ChatModel
from llmos.tools import RunContext, Tool, tool
from llmos.tools.wording import reworded

SUPPORT_INSTRUCTIONS = (
    "You are the customer support agent of Alder & Ridge Outfitters, an outdoor-gear shop.\n"
    "- For questions about returns, refunds, shipping, warranty or damage, call search_policies and cite the "
    "passage numbers you use, like [1].\n"
    "- To check an order, call lookup_order with the order id. The tools know which customer is signed in; "
    "an order of anyone else is refused.\n"
    "- For a problem with an order, call create_ticket.\n"
    "- If the customer asks for a human, or lookup_order says escalation is required, call escalate_to_human "
    "with a short summary: order, what happened, what they want.\n"
    "- Answer in two or three sentences. Say what you did (ticket number, escalation) and what happens next."
)
DESCRIPTION = "Customer support: policies and FAQ with citations, customers and orders, tickets, escalation to a human."
SEARCH_DESCRIPTION = (
    "Search the shop's policies and FAQ (returns, damage, shipping, warranty, escalation). "
    "Returns numbered passages with their source; cite the numbers you use, like [1]."
)

# The shop's escalation rules are data, in its assistant file (escalation.md and damaged-items.md as rules).
ESCALATION = EscalationPolicy(rules=tomllib.loads((Path(__file__).parent / "assistant.toml").read_text())["escalation"])

# The ticket tools in the shop's words: what a ticket is about is an order.
TICKET_WORDING = {
    "create_ticket": {
        "subject": "A few words, e.g. 'Damaged stove in order O1090'.",
        "description": "What happened and what the customer wants.",
        "order_id": "The order concerned, if any.",
        "priority": "'high' for damage or safety problems.",
    },
    "escalate_to_human": {
        "reason": "Why: e.g. 'customer asked for a human', 'damaged safety item', 'damaged item over $200'.",
        "summary": "Who the customer is, the order, what happened, what they want, what was already done.",
        "order_id": "The order concerned, if any.",
    },
}


# --- what the tools return ----------------------------------------------------------------------


class OrderSummary(BaseModel):
    id: str
    date: date
    status: str
    total: float


class Customer(BaseModel):
    id: str
    name: str
    email: str
    tier: str = Field(description="'club' members get a 60-day return window.")
    orders: list[OrderSummary]
    open_tickets: int


class OrderLine(BaseModel):
    item_id: str
    name: str
    category: str
    quantity: int
    price: float


class Order(BaseModel):
    id: str
    customer_id: str
    date: date
    status: str
    note: str
    items: list[OrderLine]
    total: float
    escalation_required: bool = Field(False, description="True when the escalation policy requires a human for this order.")
    next_step: str = Field("", description="What to do next, by the escalation rules (filled in by the support agent).")


# --- the shop's own tools -------------------------------------------------------------------------


class ShopDesk:
    """The shop's customer and order lookups, for the customer signed in to the run (`ctx.user`).

    The customer never comes from the model: each method takes the RunContext, and refuses
    what belongs to another customer. Raises NotFoundError / AccessDeniedError with a message
    for the model.
    """

    def __init__(self, stores: DemoStores) -> None:
        self.stores = stores

    def my_account(self, ctx: RunContext) -> Customer:
        """The signed-in customer's account: name, tier, orders and open tickets."""
        customer = self.find_customer(signed_in(ctx))
        customer.open_tickets = self.stores.tickets.open_count(ctx.tenant or DEFAULT_TENANT, customer.id)
        return customer

    def find_customer(self, customer: str) -> Customer:
        """A customer by id (e.g. C001) or e-mail address: for staff and programs, never a tool a model calls."""
        key = customer.strip()
        with self.stores.session() as db:
            column = CustomerRow.email if "@" in key else CustomerRow.id
            row = db.scalars(select(CustomerRow).where(func.lower(column) == key.lower())).first()
            if row is None:
                raise NotFoundError(f"No customer with id or email {customer!r}. Ask the customer for their id (like C001) or account email.")
            orders = [OrderSummary(id=o.id, date=o.date, status=o.status, total=_total(o)) for o in row.orders]
            tickets = self.stores.tickets.open_count(DEFAULT_TENANT, row.id)
            return Customer(id=row.id, name=row.name, email=row.email, tier=row.tier, orders=orders, open_tickets=tickets)

    def lookup_order(self, ctx: RunContext, order_id: str) -> Order:
        """Look up one of the customer's orders: items, status, delivery note, and whether policy requires a human.

        Args:
            order_id: The order id, like O1003.
        """
        customer_id = signed_in(ctx)
        with self.stores.session() as db:
            self._customer(db, customer_id)
            order = db.get(OrderRow, _order_key(order_id))
            if order is None:
                raise NotFoundError(f"No order {order_id!r}. Ask the customer to check the order number (like O1003).")
            if order.customer_id != customer_id:
                # Say nothing about the order or its owner: that would leak another customer's data.
                raise AccessDeniedError(
                    f"Order {order.id} is not one of this customer's orders. Do not share any details of it; "
                    "ask the customer for an order number from their own account."
                )
            lines = [self._line(i.item_id, i.quantity, i.price) for i in order.items]
            return Order(id=order.id, customer_id=order.customer_id, date=order.date, status=order.status, note=order.note,
                         items=lines, total=_total(order))

    def own_order(self, ctx: RunContext, order_id: str) -> str:
        """The order id as stored, if the order is the signed-in customer's (a ticket's reference check)."""
        customer_id = signed_in(ctx)
        with self.stores.session() as db:
            order = db.get(OrderRow, _order_key(order_id))
            if order is None:
                raise NotFoundError(f"No order {order_id!r}. Ask the customer to check the order number.")
            if order.customer_id != customer_id:
                raise AccessDeniedError(f"Order {order.id} is not one of this customer's orders; use one of their own orders.")
            return order.id

    def customer_key(self, user: str) -> str:
        """A signed-in user as the shop stores customers (C001), who must exist."""
        key = user.strip().upper()
        with self.stores.session() as db:
            self._customer(db, key)
        return key

    # --- helpers ---

    def _customer(self, db, customer_id: str) -> CustomerRow:
        row = db.get(CustomerRow, customer_id.strip().upper())
        if row is None:
            raise NotFoundError(f"No customer {customer_id!r} in the customer records.")
        return row

    def _line(self, item_id: str, quantity: int, price: float) -> OrderLine:
        item = self.stores.items.get(item_id)
        return OrderLine(item_id=item_id, name=item.name if item else item_id, category=item.category if item else "",
                         quantity=quantity, price=price)


def signed_in(ctx: RunContext) -> str:
    """The customer the run is for, as stored (C001): set by the caller, never written by the model."""
    if not ctx.user or not ctx.user.strip():
        raise AccessDeniedError(NOT_SIGNED_IN)
    return ctx.user.strip().upper()


def _order_key(order_id: str) -> str:
    """An order id as stored: "o1090" and "1090" both mean O1090 (customers often drop the letter)."""
    key = order_id.strip().upper()
    return f"O{key}" if key.isdigit() else key


def _total(order: OrderRow) -> float:
    return round(sum(i.price * i.quantity for i in order.items), 2)


# --- tools and agent ----------------------------------------------------------------------------


def shop_tools(stores: DemoStores) -> list[Tool]:
    """The shop's own tools, as a company gives them to the support specialist: my_account, lookup_order."""
    desk = ShopDesk(stores)
    return [tool(desk.my_account), tool(desk.lookup_order)]


def ticket_tools(stores: DemoStores) -> list[Tool]:
    """llmos's ticket tools over the demo's ticket store, in the shop's words (a ticket is about an order)."""
    desk = ShopDesk(stores)
    tickets = TicketDesk(stores.tickets, check_reference=desk.own_order, user_key=desk.customer_key)
    out = []
    for t in tickets.tools():
        rename = {"reference": "order_id"} if "reference" in t.args_model.model_fields else {}
        out.append(reworded(t, rename=rename, arguments=TICKET_WORDING.get(t.name, {})))
    return out


def search_tool(stores: DemoStores) -> Tool:
    return stores.docs.as_tool(name="search_policies", k=3, description=SEARCH_DESCRIPTION)


def support_tools(stores: DemoStores) -> list[Tool]:
    """The support tools in a fixed order (the request prefix stays byte-stable)."""
    return [search_tool(stores), *(ESCALATION.guard(t) for t in shop_tools(stores)), *ticket_tools(stores)]


def support_agent(stores: DemoStores, model: ChatModel | str | None = None) -> Agent[str]:
    """The demo company's support specialist: the generic one with the shop's tools, rules and words."""
    return generic.support_agent(
        knowledge=search_tool(stores),
        tools=shop_tools(stores),
        tickets=ticket_tools(stores),
        escalation=ESCALATION,
        instructions=SUPPORT_INSTRUCTIONS,
        description=DESCRIPTION,
        model=model,
        budget=Budget(max_steps=4),
    )
