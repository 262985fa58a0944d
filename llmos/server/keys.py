"""API keys: a small SQLAlchemy table of hashed secrets, each mapping to a tenant.

A key is `llmos_` followed by 32 random bytes (url-safe base64). Only its SHA-256 is stored:
the secret is shown once, at creation. A lookup hashes the presented secret and finds the row
by that hash; a secret with 256 random bits needs no slow hash (nothing to brute-force).

Roles: a `customer` key calls the assistant for its tenant's customers; an `operator` key is
for the tenant's staff (metrics now; the operator queue later) and cannot chat as a customer.
Who the end user is (RunContext.user) comes from the key, never from the model:
- a key created with `user` acts for that one user;
- a key created with `sets_user` belongs to the tenant's own backend, which signs its users in
  and names them in the `X-LLMOS-User` header; other keys may not send that header.

The table lives in its own database for now (SQLite under LLMOS_HOME by default); its code is
kept here, self-contained, so that it can move into the session database.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, DateTime, String, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from llmos.errors import ConfigError

SECRET_PREFIX = "llmos_"
Role = Literal["customer", "operator"]
_NAME = re.compile(r"^[A-Za-z0-9._@:+-]{1,128}$")


class _Base(DeclarativeBase):
    pass


class ApiKeyRow(_Base):
    __tablename__ = "llmos_api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))
    user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sets_user: Mapped[bool] = mapped_column(Boolean, default=False)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKey(BaseModel):
    """A key as the server and `llmos keys list` see it: never the secret."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: str
    tenant: str
    role: Role
    user: str | None = None
    sets_user: bool = False
    label: str = ""
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class CreatedKey(BaseModel):
    key: ApiKey
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(value: str, what: str) -> str:
    """Tenant and user names: 1-128 letters, digits and . _ @ : + -."""
    if not _NAME.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a valid name: use 1-128 letters, digits and the characters . _ @ : + -"
        )
    return value


def default_url() -> str:
    from llmos.config import get_settings

    path = Path(get_settings().home).expanduser() / "server" / "keys.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


class KeyStore:
    """Create, find, list and revoke API keys. `url`: an async SQLAlchemy URL (default: SQLite under LLMOS_HOME)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        try:
            self.engine: AsyncEngine = create_async_engine(self.url)
        except Exception as exc:  # noqa: BLE001 - a bad URL or a missing driver: say which
            raise ConfigError(
                f"Cannot open the API keys database {self.url!r}: {exc}. "
                "Use an async SQLAlchemy URL such as sqlite+aiosqlite:///path/keys.db."
            ) from None
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._ready = False

    async def _tables(self) -> None:
        if not self._ready:
            async with self.engine.begin() as conn:
                await conn.run_sync(_Base.metadata.create_all)
            self._ready = True

    async def create(
        self, tenant: str, *, role: Role = "customer", user: str | None = None, sets_user: bool = False, label: str = ""
    ) -> CreatedKey:
        """A new key; the returned secret is not stored and cannot be shown again."""
        check_name(tenant, "Tenant")
        if user is not None:
            check_name(user, "User")
        if role == "operator" and (user is not None or sets_user):
            raise ConfigError("An operator key acts for the tenant's staff: it takes neither a user nor sets_user.")
        if user is not None and sets_user:
            raise ConfigError("A key either acts for one user or lets a backend name users (sets_user), not both.")
        await self._tables()
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id="key_" + secrets.token_hex(6),
            secret_sha256=hash_secret(secret),
            tenant=tenant,
            role=role,
            user=user,
            sets_user=sets_user,
            label=label,
            created_at=datetime.now(UTC),
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return CreatedKey(key=ApiKey.model_validate(row), secret=secret)

    async def find(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None (unknown or revoked)."""
        if not secret.startswith(SECRET_PREFIX):
            return None
        await self._tables()
        async with self._sessions() as session:
            row = await session.scalar(
                select(ApiKeyRow).where(ApiKeyRow.secret_sha256 == hash_secret(secret), ApiKeyRow.revoked_at.is_(None))
            )
        return None if row is None else ApiKey.model_validate(row)

    async def list_keys(self, *, tenant: str | None = None) -> list[ApiKey]:
        await self._tables()
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
        if tenant is not None:
            query = query.where(ApiKeyRow.tenant == tenant)
        async with self._sessions() as session:
            return [ApiKey.model_validate(r) for r in await session.scalars(query)]

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by its id; requests with it fail from then on. Unknown ids are a ConfigError."""
        await self._tables()
        async with self._sessions.begin() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is None:
                raise ConfigError(f"No API key has the id {key_id!r}. `llmos keys list` shows the ids.")
            if row.revoked_at is None:
                await session.execute(
                    update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(revoked_at=datetime.now(UTC))
                )
        async with self._sessions() as session:
            return ApiKey.model_validate(await session.get(ApiKeyRow, key_id))

    async def count_active(self) -> int:
        await self._tables()
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))) or 0)

    async def aclose(self) -> None:
        await self.engine.dispose()
