"""Long-term memory per user: facts the assistant learns in one conversation and recalls in later ones.

    facts = UserMemory(store)                       # the session store's database, the default embedder
    await facts.learn("C001", "I only read German, and my Kindle broke.", tenant="acme")
    await facts.recall("C001", "Which language should the manual be in?", tenant="acme")

After a turn, `learn` shows the model the user's message and the known facts closest to it,
and asks (structured output) for changes: add a fact, update one the message contradicts,
delete one that is no longer true. A new fact that says what a known one says is not added
twice (its embedding is too close). Facts are kept per tenant and user with their embedding;
a fact is embedded as the user would say it ("The user owns a Nikon" as "I own a Nikon"), since
what recalls it is the user's own words ("Which lens fits my camera?"). `recall` ranks the user's facts by cosine similarity to a text (numpy over the user's facts:
a user has tens of facts, not millions). Deleting the user (SessionStore.delete_user) deletes
their facts with their sessions.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from typing import Literal

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel, Field

from llmos.errors import ConfigError, UnknownFactError
from llmos.knowledge.embeddings import Embedder
from llmos.llm.messages import SystemMessage, UserMessage
from llmos.llm.model import ChatModel, ChatRequest, OutputSchema
from llmos.memory import prompts
from llmos.memory.models import DEFAULT_TENANT
from llmos.memory.schema import user_facts as facts_t
from llmos.memory.sql import SQLSessionStore

FactKind = Literal["preference", "possession", "language", "problem", "personal", "other"]


class Fact(BaseModel):
    """One thing remembered about a user."""

    id: int
    tenant: str
    user: str
    kind: FactKind = "other"
    text: str
    session: str | None = Field(None, description="The session it was learnt in, when learnt from one.")
    created_at: datetime
    updated_at: datetime


class Recalled(Fact):
    score: float = Field(description="Cosine similarity to the text it was recalled for.")


class FactChange(BaseModel):
    """One change the model asks for."""

    # Required fields, text first: a grammar-constrained small model skips whatever it may skip.
    action: Literal["add", "update", "delete"]
    text: str = Field(description="The fact, one short sentence about the user (for delete: the fact removed).")
    kind: FactKind = "other"
    fact: int | None = Field(None, description="For update and delete: the number of the known fact.")


class FactChanges(BaseModel):
    # Required: with a default, a grammar-constrained small model takes the shortest way out, `{}`.
    changes: list[FactChange] = Field(max_length=8)


CHANGES = OutputSchema.of(FactChanges)


class UserMemory:
    """Facts per tenant and user, with embeddings, in the session store's database.

    embedder: default the packaged all-MiniLM-L6-v2 (llmos.knowledge.embeddings).
    recall_k: facts recalled into a conversation; min_score: below it a fact is not relevant.
    duplicate_score: a new fact this close to a known one is the same fact, not added again.
    """

    def __init__(
        self,
        store: SQLSessionStore,
        *,
        embedder: Embedder | None = None,
        recall_k: int = 5,
        min_score: float = 0.2,
        duplicate_score: float = 0.9,
    ) -> None:
        self.store = store
        self._embedder = embedder
        self.recall_k = recall_k
        self.min_score = min_score
        self.duplicate_score = duplicate_score

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from llmos.knowledge.embeddings import SentenceTransformerEmbedder

            self._embedder = SentenceTransformerEmbedder()
        return self._embedder

    # --- reading -------------------------------------------------------------------------

    async def list(self, user: str, *, tenant: str = DEFAULT_TENANT) -> list[Fact]:
        """The user's facts, oldest first (an unknown user has none)."""
        return [fact for fact, _ in await self._rows(user, tenant)]

    async def recall(self, user: str, text: str, *, tenant: str = DEFAULT_TENANT, k: int | None = None) -> list[Recalled]:
        """The user's facts closest to `text`, best first: at most k, none under min_score."""
        rows = await self._rows(user, tenant)
        if not rows or not text.strip():
            return []
        scores = np.stack([v for _, v in rows]) @ (await self._embed_query(text))
        best = np.argsort(-scores, kind="stable")[: k or self.recall_k]
        return [
            Recalled(**rows[i][0].model_dump(), score=round(float(scores[i]), 4))
            for i in best
            if scores[i] >= self.min_score
        ]

    # --- writing -------------------------------------------------------------------------

    async def add(
        self, user: str, text: str, *, tenant: str = DEFAULT_TENANT, kind: FactKind = "other", session: str | None = None
    ) -> Fact:
        """Remember a fact; when a known fact says the same, that one is returned and nothing is added."""
        text = _clean(text)
        (vector,) = await self._embed_facts([text])
        for fact, known in await self._rows(user, tenant):
            if fact.text.casefold() == text.casefold() or float(known @ vector) >= self.duplicate_score:
                return fact
        now = _now()
        async with self.store.transaction() as connection:
            await self.store.ensure_user(connection, tenant, user)
            fact_id = (
                await connection.execute(
                    facts_t.insert()
                    .values(
                        tenant_id=tenant, user_id=user, kind=kind, text=text, embedding=vector.tobytes(),
                        embedder=self.vectors, session_id=session, created_at=now, updated_at=now,
                    )
                    .returning(facts_t.c.id)
                )
            ).scalar_one()
        return Fact(id=fact_id, tenant=tenant, user=user, kind=kind, text=text, session=session, created_at=now, updated_at=now)

    async def correct(
        self, fact_id: int, text: str, *, user: str, tenant: str = DEFAULT_TENANT, kind: FactKind | None = None
    ) -> Fact:
        """Replace a fact's text (and kind); UnknownFactError when the user has no such fact."""
        text = _clean(text)
        (vector,) = await self._embed_facts([text])
        changes = {"text": text, "embedding": vector.tobytes(), "embedder": self.vectors, "updated_at": _now()}
        if kind is not None:
            changes["kind"] = kind
        async with self.store.transaction() as connection:
            done = await connection.execute(facts_t.update().where(*self._owned(fact_id, user, tenant)).values(**changes))
            if done.rowcount == 0:
                raise self._unknown(fact_id, user, tenant)
        return next(f for f in await self.list(user, tenant=tenant) if f.id == fact_id)

    async def forget(self, fact_id: int, *, user: str, tenant: str = DEFAULT_TENANT) -> None:
        """Delete one fact; UnknownFactError when the user has no such fact."""
        async with self.store.transaction() as connection:
            done = await connection.execute(facts_t.delete().where(*self._owned(fact_id, user, tenant)))
            if done.rowcount == 0:
                raise self._unknown(fact_id, user, tenant)

    async def forget_all(self, user: str, *, tenant: str = DEFAULT_TENANT) -> int:
        """Delete every fact of the user (their sessions stay); returns how many went."""
        async with self.store.transaction() as connection:
            done = await connection.execute(
                facts_t.delete().where(facts_t.c.tenant_id == tenant, facts_t.c.user_id == user)
            )
            return done.rowcount

    # --- learning from a conversation --------------------------------------------------------

    async def learn(
        self, user: str, message: str, model: ChatModel, *, tenant: str = DEFAULT_TENANT, session: str | None = None
    ) -> list[FactChange]:
        """Ask the model what the user's message changes in what is known about them, and apply it.

        Returns the changes applied (a change naming an unknown fact number is skipped).
        """
        known = await self.recall(user, message, tenant=tenant, k=10) if message.strip() else []
        listing = "\n".join(f"{i}. [{f.kind}] {f.text}" for i, f in enumerate(known, 1)) or prompts.NO_FACTS_YET
        request = ChatRequest(
            messages=[
                SystemMessage(content=prompts.FACTS_SYSTEM),
                UserMessage(content=prompts.FACTS_ASK.format(known=listing, message=message)),
            ],
            output_schema=CHANGES,
            max_tokens=400,
        )
        changes: FactChanges = (await model.chat(request)).output
        applied = []
        for change in changes.changes:
            target = known[change.fact - 1] if change.fact is not None and 1 <= change.fact <= len(known) else None
            if change.action == "add" and change.text.strip():
                await self.add(user, change.text, tenant=tenant, kind=change.kind, session=session)
            elif change.action == "update" and target is not None and change.text.strip():
                await self.correct(target.id, change.text, user=user, tenant=tenant, kind=change.kind)
            elif change.action == "delete" and target is not None:
                await self.forget(target.id, user=user, tenant=tenant)
            else:
                continue
            applied.append(change)
        return applied

    # --- plumbing ----------------------------------------------------------------------------

    async def _rows(self, user: str, tenant: str) -> list[tuple[Fact, np.ndarray]]:
        """The user's facts with their vectors; vectors of another embedder are computed again."""
        async with self.store.transaction() as connection:
            rows = list(
                await connection.execute(
                    sa.select(facts_t)
                    .where(facts_t.c.tenant_id == tenant, facts_t.c.user_id == user)
                    .order_by(facts_t.c.id)
                )
            )
        if not rows:
            return []
        stale = [r.text for r in rows if r.embedder != self.vectors]
        fresh = iter(await self._embed_facts(stale)) if stale else iter(())
        return [
            (
                Fact(
                    id=r.id, tenant=r.tenant_id, user=r.user_id, kind=r.kind, text=r.text, session=r.session_id,
                    created_at=_utc(r.created_at), updated_at=_utc(r.updated_at),
                ),
                np.frombuffer(r.embedding, dtype=np.float32) if r.embedder == self.vectors else next(fresh),
            )
            for r in rows
        ]

    @property
    def vectors(self) -> str:
        """What a stored vector was made with; rows made another way are embedded again when read."""
        return f"{self.embedder.name}/{FACT_FORM}"

    async def _embed_facts(self, texts: list[str]) -> np.ndarray:
        # The embedder is synchronous (torch): off the event loop.
        return await asyncio.to_thread(self.embedder.embed_documents, [as_the_user_says_it(t) for t in texts])

    async def _embed_query(self, text: str) -> np.ndarray:
        return await asyncio.to_thread(self.embedder.embed_query, text)

    @staticmethod
    def _owned(fact_id: int, user: str, tenant: str) -> tuple[sa.ColumnElement[bool], ...]:
        return facts_t.c.id == fact_id, facts_t.c.tenant_id == tenant, facts_t.c.user_id == user

    def _unknown(self, fact_id: int, user: str, tenant: str) -> UnknownFactError:
        return UnknownFactError(
            f"User '{user}' of tenant '{tenant}' has no fact {fact_id} in {self.store.database}. "
            f"List their facts with `llmos memory list --user {user}` (or UserMemory.list)."
        )


def recall_block(facts: list[Recalled]) -> str:
    """The short block of recalled facts that goes before the user's new message."""
    return prompts.RECALL_HEADER + "\n".join(f"- {f.text}" for f in facts)


FACT_FORM = "first-person-1"  # change it when as_the_user_says_it changes: stored vectors are then recomputed

_THIRD_PERSON = re.compile(r"\b(?:the user's|the user)\b", re.IGNORECASE)
_FIRST_VERB = re.compile(r"\bI (is|has|does|\w+?[^s\W]s)\b")
_IRREGULAR = {"is": "am", "has": "have", "does": "do"}


def as_the_user_says_it(fact: str) -> str:
    """A fact in the first person, the form of the questions that should recall it.

    "The user's phone is an iPhone" -> "My phone is an iPhone"; "The user prefers email" -> "I prefer email".
    """

    def pronoun(match: re.Match[str]) -> str:
        own = match.group(0).lower().endswith("'s")
        start = match.start() == 0 or fact[: match.start()].rstrip().endswith((".", "!", "?"))
        word = "my" if own else ("I" if start else "me")
        return word.capitalize() if start and word == "my" else word

    text = _THIRD_PERSON.sub(pronoun, fact)
    return _FIRST_VERB.sub(lambda m: "I " + _IRREGULAR.get(m.group(1), m.group(1)[:-1]), text)


def _clean(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise ConfigError("A fact cannot be empty: say what to remember about the user.")
    return text


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
