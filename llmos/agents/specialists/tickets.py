"""llmos's own ticket store: support tickets per tenant and customer, and the tools that write them.

    store = TicketStore()                      # the session database (LLMOS_MEMORY_URL), else LLMOS_HOME/tickets.sqlite
    store = TicketStore("postgresql+psycopg://llmos@db/llmos")   # or any SQLAlchemy URL, or a SQLite file's path
    desk = TicketDesk(store)
    tools = desk.tools()                       # create_ticket, update_ticket, escalate_to_human

A ticket belongs to the run's tenant (`ctx.tenant`, or "default") and customer (`ctx.user`):
the model never names either, and a ticket of another customer or tenant answers like a
missing one. `reference` is what the ticket is about (an order, a card, an account), checked
by the company's own `check_reference` when it gives one (e.g. "is this order theirs?").

Tickets keep their own table (`tickets`), created when a store first opens a database, rather than
a migration of the session schema: the ticket tools are synchronous (they run on the sync driver of
the same database, which the session store reaches through its async one), a ticket database needs
none of the memory extra when it is a SQLite file, and the session schema's versions stay about
sessions. A ticket database may be the session database or any other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Boolean, DateTime, Integer, String, Text, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from llmos.agents.specialists.sql import engine_for, shown, sync_url
from llmos.errors import AccessDeniedError, ConfigError, NotFoundError
from llmos.tools import RunContext, Tool, tool

DEFAULT_TENANT = "default"
NOT_SIGNED_IN = (
    "No customer is signed in to this conversation, so no account, order or ticket can be opened. "
    "Answer from the policies, and ask the customer to sign in for anything about their orders."
)


class _Base(DeclarativeBase):
    pass


class TicketRow(_Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str] = mapped_column(String(200), index=True)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open, pending, resolved, escalated
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    handoff: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when a human agent must take over; `summary` then says what they need to know."""
    summary: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Ticket(BaseModel):
    id: int
    user: str
    reference: str | None
    subject: str
    status: str
    priority: str
    handoff: bool
    summary: str
    notes: str
    created_at: datetime
    updated_at: datetime


class TicketStore:
    """Tickets in one SQL table (SQLAlchemy): every tenant, each query scoped to one tenant and customer.

    url: a SQLAlchemy URL (SQLite or PostgreSQL; an async driver gets its sync twin) or a SQLite file's path.
        Default: the session database when LLMOS_MEMORY_URL names one, else LLMOS_HOME/tickets.sqlite.
    """

    def __init__(self, url: str | URL | Path | None = None) -> None:
        setting = ""
        if url is None:
            from llmos.config import get_settings

            settings = get_settings()
            url = settings.memory_url or settings.home / "tickets.sqlite"
            setting = " (LLMOS_MEMORY_URL)" if settings.memory_url else ""
        if isinstance(url, Path) or (isinstance(url, str) and "://" not in url and not setting):  # a setting is a URL
            path = Path(url).expanduser().resolve()
            url = URL.create("sqlite", database=str(path))
        try:
            self.url = sync_url(url)
        except ConfigError as exc:
            raise ConfigError(f"The ticket database URL{setting}: {exc}") from None
        self.database = shown(self.url)
        if self.url.get_backend_name() == "sqlite":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = engine_for(self.url)
        self._create_table()

    def __repr__(self) -> str:
        return f"TicketStore({self.database!r})"

    def _create_table(self) -> None:
        """Create the tickets table unless the database has it; processes opening a fresh database at once create it once."""
        try:
            with self.engine.begin() as connection:
                if self.engine.dialect.name == "postgresql":
                    # Held to the end of this transaction: a second process waits, then finds the table.
                    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('llmos.tickets'))"))
                _Base.metadata.create_all(connection)
        except DBAPIError as exc:
            if "already exists" in str(exc.orig):  # SQLite: another process created it between the check and ours
                return
            reason = " ".join(str(exc.orig if exc.orig is not None else exc).split())[:300]
            if self.url.password:
                reason = reason.replace(str(self.url.password), "***")
            raise ConfigError(f"The ticket database {self.database} cannot be opened ({reason}). "
                              "Check that it is running and the URL is right.") from None

    def session(self) -> Session:
        # expire_on_commit=False: tools return values read after the commit.
        return Session(self.engine, expire_on_commit=False)

    def get(self, tenant: str, user: str, ticket_id: int) -> Ticket | None:
        with self.session() as db:
            row = db.get(TicketRow, ticket_id)
            return _ticket(row) if row is not None and (row.tenant, row.user) == (tenant, user) else None

    def open_count(self, tenant: str, user: str) -> int:
        """The customer's tickets that are not resolved."""
        with self.session() as db:
            query = select(func.count()).select_from(TicketRow).where(
                TicketRow.tenant == tenant, TicketRow.user == user, TicketRow.status != "resolved"
            )
            return db.scalar(query) or 0

    def of(self, tenant: str, user: str) -> list[Ticket]:
        with self.session() as db:
            rows = db.scalars(select(TicketRow).where(TicketRow.tenant == tenant, TicketRow.user == user).order_by(TicketRow.id))
            return [_ticket(r) for r in rows]


class TicketDesk:
    """The ticket tools for the customer signed in to the run.

    check_reference(ctx, reference) -> reference as stored: the company's check that what a
        ticket is about is the customer's own (raise NotFoundError / AccessDeniedError), or None.
    user_key: how a signed-in user id is stored (e.g. upper-cased ids).
    """

    def __init__(
        self,
        store: TicketStore,
        *,
        check_reference: Callable[[RunContext, str], str] | None = None,
        user_key: Callable[[str], str] = str.strip,
    ) -> None:
        self.store = store
        self.check_reference = check_reference
        self.user_key = user_key

    def tools(self) -> list[Tool]:
        """create_ticket, update_ticket, escalate_to_human, in this order."""
        return [tool(self.create_ticket), tool(self.update_ticket), tool(self.escalate_to_human)]

    def create_ticket(
        self,
        ctx: RunContext,
        subject: str,
        description: str,
        reference: str | None = None,
        priority: Literal["low", "normal", "high"] = "normal",
    ) -> Ticket:
        """Open a support ticket for the customer's problem.

        Args:
            subject: A few words saying what the problem is.
            description: What happened and what the customer wants.
            reference: The id of what the ticket is about (an order, a card, an account), if any.
            priority: 'high' for damage, safety or money at risk.
        """
        tenant, user = self._who(ctx)
        reference = self._reference(ctx, reference)
        now = datetime.now()
        with self.store.session() as db, db.begin():
            row = TicketRow(tenant=tenant, user=user, reference=reference, subject=subject, description=description,
                            status="open", priority=priority, created_at=now, updated_at=now)
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
        tenant, user = self._who(ctx)
        with self.store.session() as db, db.begin():
            row = self._own(db, tenant, user, ticket_id)
            if row is None:
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
        reference: str | None = None,
        ticket_id: int | None = None,
    ) -> Ticket:
        """Hand the case to a human agent: marks a ticket for handoff with a summary of the conversation.

        Args:
            reason: Why, e.g. 'customer asked for a person', or the rule that requires a human.
            summary: Who the customer is, what happened, what they want, what was already done.
            reference: The id of what the case is about (an order, a card, an account), if any.
            ticket_id: An existing ticket to escalate; without it a new ticket is opened.
        """
        # A handoff never fails on a wrong id: the case reaches a person, who sorts it out. A reference or
        # ticket that is not the customer's is left out (and said so in the notes), never attached.
        tenant, user = self._who(ctx)
        left_out = []
        try:
            reference = self._reference(ctx, reference)
        except (NotFoundError, AccessDeniedError) as exc:
            left_out.append(f"Reference '{reference}' left out: {exc}")
            reference = None
        now = datetime.now()
        with self.store.session() as db, db.begin():
            row = self._own(db, tenant, user, ticket_id) if ticket_id is not None else None
            if ticket_id is not None and row is None:
                left_out.append(f"No ticket {ticket_id} for this customer: a new ticket was opened.")
            if row is None:
                row = TicketRow(tenant=tenant, user=user, reference=reference, subject=f"Escalation: {reason}"[:200],
                                description=summary, created_at=now)
                db.add(row)
            row.status, row.priority, row.handoff, row.summary, row.updated_at = "escalated", "high", True, summary, now
            row.reference = row.reference or reference
            row.notes = "\n".join([row.notes or "", f"Escalated to a human: {reason}", *left_out]).strip()
            db.flush()
            return _ticket(row)

    # --- helpers ---

    def _who(self, ctx: RunContext) -> tuple[str, str]:
        """The tenant and customer of the run: set by the caller, never written by the model."""
        if not ctx.user or not ctx.user.strip():
            raise AccessDeniedError(NOT_SIGNED_IN)
        return (ctx.tenant or DEFAULT_TENANT), self.user_key(ctx.user)

    def _reference(self, ctx: RunContext, reference: str | None) -> str | None:
        if not reference:
            return None
        return self.check_reference(ctx, reference) if self.check_reference else reference.strip()

    @staticmethod
    def _own(db: Session, tenant: str, user: str, ticket_id: int) -> TicketRow | None:
        # Another customer's (or tenant's) ticket answers like a missing one: its existence is not theirs to learn.
        row = db.get(TicketRow, ticket_id)
        return row if row is not None and (row.tenant, row.user) == (tenant, user) else None


def _ticket(row: TicketRow) -> Ticket:
    return Ticket(id=row.id, user=row.user, reference=row.reference, subject=row.subject, status=row.status,
                  priority=row.priority, handoff=row.handoff, summary=row.summary or "", notes=row.notes or "",
                  created_at=row.created_at, updated_at=row.updated_at)
