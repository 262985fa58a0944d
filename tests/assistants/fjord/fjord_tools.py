"""Fjord Bank's own tools: its card records, for the customer signed in to the run (never named by the model)."""

from __future__ import annotations

from pydantic import BaseModel

from llmos.errors import AccessDeniedError
from llmos.tools import RunContext, tool


class Payment(BaseModel):
    merchant: str
    category: str
    amount: float
    country: str


class CardStatus(BaseModel):
    card_id: str
    holder: str
    state: str
    recent_payments: list[Payment]
    escalation_required: bool = False
    next_step: str = ""


# The bank's card system, in memory for the tests: one card per customer.
CARDS: dict[str, CardStatus] = {
    "u-100": CardStatus(card_id="card-4411", holder="Ingrid Berg", state="active", recent_payments=[
        Payment(merchant="Rema 1000", category="groceries", amount=41.5, country="NO"),
        Payment(merchant="NSB", category="travel", amount=89.0, country="NO"),
    ]),
    "u-200": CardStatus(card_id="card-7302", holder="Ola Nordmann", state="active", recent_payments=[
        Payment(merchant="LuckySpin Casino", category="online gambling", amount=950.0, country="MT"),
        Payment(merchant="Kiwi", category="groceries", amount=23.0, country="NO"),
    ]),
}


def _customer(ctx: RunContext) -> str:
    if not ctx.user or ctx.user not in CARDS:
        raise AccessDeniedError("No Fjord Bank customer is signed in; ask the customer to log in to the app first.")
    return ctx.user


@tool
def card_status(ctx: RunContext) -> CardStatus:
    """The signed-in customer's card: its state (active or frozen) and recent payments."""
    return CARDS[_customer(ctx)]


@tool(requires_approval=True)
def freeze_card(ctx: RunContext, reason: str) -> str:
    """Freeze the signed-in customer's card: every new payment is refused until they unfreeze it in the app.

    Args:
        reason: Why, in the customer's words, e.g. 'card lost on the train'.
    """
    card = CARDS[_customer(ctx)]
    card.state = "frozen"
    return f"Card {card.card_id} is frozen ({reason}). The customer can unfreeze it in the Fjord app."


def own_card(ctx: RunContext, card_id: str) -> str:
    """A ticket's reference must be the customer's own card."""
    card = CARDS[_customer(ctx)]
    if card_id.strip().lower() != card.card_id:
        raise AccessDeniedError(f"{card_id} is not this customer's card; use {card.card_id} or no card id.")
    return card.card_id
