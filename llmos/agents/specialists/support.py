"""The support specialist: answers from the policies, looks up customers and orders, keeps tickets,
and hands a case to a human when the escalation policy says so.

    agent = support_agent(prepare_demo())
    context = RunContext(user="C001")  # the signed-in customer: from the login, never from the model
    print(agent.run_sync("My stove from order O1090 arrived damaged.", context=context).text)

`SupportDesk` holds the logic as plain methods (easy to test and to call from Python);
`support_tools` turns them into tools; `support_agent` adds instructions and a model.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from llmos.agents.agent import Agent, Budget
from llmos.demo.stores import CustomerRow, DemoStores, OrderRow, TicketRow
from llmos.errors import AccessDeniedError, NotFoundError
from llmos.llm.model import ChatModel
from llmos.tools import RunContext, Tool, tool

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

# Items whose damage is a safety matter (escalation.md, rule 2): stoves and fuel, climbing and protective gear.
_SAFETY_WORDS = ("stove", "fuel", "harness", "rope", "helmet", "belay")
_ESCALATE_ABOVE = 200.0  # damaged item value in dollars above which a human takes over (damaged-items.md)


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
    escalation_required: bool = Field(description="True when the escalation policy requires a human for this order.")
    next_step: str


class Ticket(BaseModel):
    id: int
    customer_id: str
    order_id: str | None
    subject: str
    status: str
    priority: str
    handoff: bool
    summary: str
    notes: str
    created_at: datetime
    updated_at: datetime


# --- the desk -----------------------------------------------------------------------------------


class SupportDesk:
    """Support operations on the demo stores, for the customer signed in to the run (`ctx.user`).

    The customer never comes from the model: each method takes the RunContext, and refuses
    what belongs to another customer. Raises NotFoundError / AccessDeniedError with a message
    for the model.
    """

    def __init__(self, stores: DemoStores) -> None:
        self.stores = stores

    def my_account(self, ctx: RunContext) -> Customer:
        """The signed-in customer's account: name, tier, orders and open tickets."""
        return self.find_customer(_signed_in(ctx))

    def find_customer(self, customer: str) -> Customer:
        """A customer by id (e.g. C001) or e-mail address: for staff and programs, never a tool a model calls."""
        key = customer.strip()
        with self.stores.session() as db:
            column = CustomerRow.email if "@" in key else CustomerRow.id
            row = db.scalars(select(CustomerRow).where(func.lower(column) == key.lower())).first()
            if row is None:
                raise NotFoundError(f"No customer with id or email {customer!r}. Ask the customer for their id (like C001) or account email.")
            tickets = db.scalar(
                select(func.count()).select_from(TicketRow).where(TicketRow.customer_id == row.id, TicketRow.status != "resolved")
            )
            orders = [OrderSummary(id=o.id, date=o.date, status=o.status, total=_total(o)) for o in row.orders]
            return Customer(id=row.id, name=row.name, email=row.email, tier=row.tier, orders=orders, open_tickets=tickets or 0)

    def lookup_order(self, ctx: RunContext, order_id: str) -> Order:
        """Look up one of the customer's orders: items, status, delivery note, and whether policy requires a human.

        Args:
            order_id: The order id, like O1003.
        """
        customer_id = _signed_in(ctx)
        with self.stores.session() as db:
            self._customer(db, customer_id)
            order = db.get(OrderRow, _order_key(order_id))
            if order is None:
                raise NotFoundError(f"No order {order_id!r}. Ask the customer to check the order number (like O1003).")
            if order.customer_id != customer_id.strip().upper():
                # Say nothing about the order or its owner: that would leak another customer's data.
                raise AccessDeniedError(
                    f"Order {order.id} is not one of this customer's orders. Do not share any details of it; "
                    "ask the customer for an order number from their own account."
                )
            lines = [self._line(i.item_id, i.quantity, i.price) for i in order.items]
            must, step = _policy_for(order.status, lines)
            return Order(id=order.id, customer_id=order.customer_id, date=order.date, status=order.status, note=order.note,
                         items=lines, total=_total(order), escalation_required=must, next_step=step)

    def create_ticket(
        self,
        ctx: RunContext,
        subject: str,
        description: str,
        order_id: str | None = None,
        priority: Literal["low", "normal", "high"] = "normal",
    ) -> Ticket:
        """Open a support ticket for the customer's problem.

        Args:
            subject: A few words, e.g. 'Damaged stove in order O1090'.
            description: What happened and what the customer wants.
            order_id: The order concerned, if any.
            priority: 'high' for damage or safety problems.
        """
        customer_id = _signed_in(ctx)
        with self.stores.session() as db, db.begin():
            self._customer(db, customer_id)
            if order_id:
                order_id = self._own_order(db, customer_id, order_id)
            now = datetime.now()
            row = TicketRow(customer_id=customer_id.strip().upper(), order_id=order_id, subject=subject,
                            description=description, status="open", priority=priority, created_at=now, updated_at=now)
            db.add(row)
            db.flush()
            return _ticket(row)

    def update_ticket(
        self,
        ctx: RunContext,
        ticket_id: int,
        status: Literal["open", "pending", "resolved"] | None = None,
        note: str | None = None,
    ) -> Ticket:
        """Change the status of one of the customer's tickets and/or add a note to it.

        Args:
            ticket_id: The ticket number returned by create_ticket.
            status: The new status.
            note: Text to append to the ticket's notes.
        """
        customer_id = _signed_in(ctx)
        with self.stores.session() as db, db.begin():
            row = db.get(TicketRow, ticket_id)
            # Another customer's ticket answers like a missing one: its existence is not theirs to learn.
            if row is None or row.customer_id != customer_id:
                raise NotFoundError(f"No ticket {ticket_id} for this customer. Use the number create_ticket returned.")
            if status:
                row.status = status
            if note:
                row.notes = f"{row.notes}\n{note}".strip()
            row.updated_at = datetime.now()
            return _ticket(row)

    def escalate_to_human(
        self,
        ctx: RunContext,
        reason: str,
        summary: str,
        order_id: str | None = None,
        ticket_id: int | None = None,
    ) -> Ticket:
        """Hand the case to a human agent: marks a ticket for handoff with a summary of the conversation.

        Args:
            reason: Why: e.g. 'customer asked for a human', 'damaged safety item', 'damaged item over $200'.
            summary: Who the customer is, the order, what happened, what they want, what was already done.
            order_id: The order concerned, if any.
            ticket_id: An existing ticket to escalate; without it a new ticket is opened.
        """
        customer_id = _signed_in(ctx)
        with self.stores.session() as db, db.begin():
            self._customer(db, customer_id)
            if order_id:
                order_id = self._own_order(db, customer_id, order_id)
            now = datetime.now()
            row = db.get(TicketRow, ticket_id) if ticket_id is not None else None
            if ticket_id is not None and (row is None or row.customer_id != customer_id):
                raise NotFoundError(f"This customer has no ticket {ticket_id}; escalate without ticket_id to open one.")
            if row is None:
                row = TicketRow(customer_id=customer_id, order_id=order_id, subject=f"Escalation: {reason}"[:200],
                                description=summary, created_at=now)
                db.add(row)
            row.status, row.priority, row.handoff, row.summary, row.updated_at = "escalated", "high", True, summary, now
            row.order_id = row.order_id or order_id
            row.notes = f"{row.notes or ''}\nEscalated to a human: {reason}".strip()
            db.flush()
            return _ticket(row)

    # --- helpers ---

    def _customer(self, db, customer_id: str) -> CustomerRow:
        row = db.get(CustomerRow, customer_id.strip().upper())
        if row is None:
            raise NotFoundError(f"No customer {customer_id!r} in the customer records.")
        return row

    def _own_order(self, db, customer_id: str, order_id: str) -> str:
        order = db.get(OrderRow, _order_key(order_id))
        if order is None:
            raise NotFoundError(f"No order {order_id!r}. Ask the customer to check the order number.")
        if order.customer_id != customer_id.strip().upper():
            raise AccessDeniedError(f"Order {order.id} is not one of this customer's orders; use one of their own orders.")
        return order.id

    def _line(self, item_id: str, quantity: int, price: float) -> OrderLine:
        item = self.stores.items.get(item_id)
        return OrderLine(item_id=item_id, name=item.name if item else item_id, category=item.category if item else "",
                         quantity=quantity, price=price)


def _signed_in(ctx: RunContext) -> str:
    """The customer the run is for, as stored (C001): set by the caller, never written by the model."""
    if not ctx.user or not ctx.user.strip():
        raise AccessDeniedError(
            "No customer is signed in to this conversation, so no account, order or ticket can be opened. "
            "Answer from the policies, and ask the customer to sign in for anything about their orders."
        )
    return ctx.user.strip().upper()


def _order_key(order_id: str) -> str:
    """An order id as stored: "o1090" and "1090" both mean O1090 (customers often drop the letter)."""
    key = order_id.strip().upper()
    return f"O{key}" if key.isdigit() else key


def _total(order: OrderRow) -> float:
    return round(sum(i.price * i.quantity for i in order.items), 2)


def _policy_for(status: str, lines: list[OrderLine]) -> tuple[bool, str]:
    """The escalation rule for damaged deliveries, so that a small model need not derive it from the text."""
    if status != "damaged":
        return False, "No action required by policy."
    unsafe = [line.name for line in lines if any(w in line.name.lower() for w in _SAFETY_WORDS)]
    costly = [line.name for line in lines if line.price > _ESCALATE_ABOVE]
    if unsafe or costly:
        why = f"safety item ({', '.join(unsafe)})" if unsafe else f"item over ${_ESCALATE_ABOVE:.0f} ({', '.join(costly)})"
        return True, f"Damaged {why}: escalate_to_human is required by policy; tell the customer not to use it."
    return False, "Damaged delivery: create_ticket and offer a replacement or full refund (damaged-items.md)."


def _ticket(row: TicketRow) -> Ticket:
    return Ticket(id=row.id, customer_id=row.customer_id, order_id=row.order_id, subject=row.subject, status=row.status,
                  priority=row.priority, handoff=row.handoff, summary=row.summary or "", notes=row.notes or "",
                  created_at=row.created_at, updated_at=row.updated_at)


# --- tools and agent ----------------------------------------------------------------------------


def support_tools(stores: DemoStores) -> list[Tool]:
    """The support tools in a fixed order (the request prefix stays byte-stable)."""
    desk = SupportDesk(stores)
    search = stores.docs.as_tool(
        name="search_policies", k=3,
        description="Search the shop's policies and FAQ (returns, damage, shipping, warranty, escalation). "
        "Returns numbered passages with their source; cite the numbers you use, like [1].",
    )
    methods = (desk.my_account, desk.lookup_order, desk.create_ticket, desk.update_ticket, desk.escalate_to_human)
    return [search, *(tool(m) for m in methods)]


def support_agent(stores: DemoStores, model: ChatModel | str | None = None) -> Agent[str]:
    """The support specialist over the demo stores."""
    return Agent(
        "support",
        description="Customer support: policies and FAQ with citations, customers and orders, tickets, escalation to a human.",
        instructions=SUPPORT_INSTRUCTIONS,
        tools=support_tools(stores),
        model=model,
        tool_choice="search_policies",  # support answers from the policies first, so its answers cite them
        budget=Budget(max_steps=4),
        max_tokens_per_call=256,  # two or three sentences, or a few calls; a runaway answer is cut short
    )
