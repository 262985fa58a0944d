"""Who is calling: the API key (a tenant and a role), and the end user the run acts for.

Two modes, fixed when the server starts:
- keys: some API key exists. Every /v1 request needs `Authorization: Bearer llmos_...`.
- open: no key exists. The server only listens on loopback (`llmos serve` refuses other
  addresses) and answers only loopback clients; requests act for `open_tenant`. Once a key is
  created, the server asks for keys from the next request on; it never goes back to open.

The end user (RunContext.user) comes from the key (`--user`), or from the `X-LLMOS-User`
header when the key is a backend key (`--sets-user`) or the server is open. Any other key
that sends the header is refused: a customer's browser cannot claim to be someone else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import Request

from llmos.errors import ConfigError
from llmos.server.errors import APIError
from llmos.server.keys import ApiKey, KeyStore, Role, check_name
from llmos.server.ratelimit import RateLimiter, retry_after_header
from llmos.server.settings import is_loopback

USER_HEADER = "X-LLMOS-User"
log = logging.getLogger("llmos.server")


@dataclass(frozen=True)
class Identity:
    """The authenticated caller. key_id is None on an open server."""

    tenant: str
    role: Role
    user: str | None = None
    key_id: str | None = None


class Authenticator:
    def __init__(self, keys: KeyStore, limiter: RateLimiter, *, open_tenant: str) -> None:
        self.keys = keys
        self.limiter = limiter
        self.open_tenant = open_tenant
        self.keys_required = False

    async def start(self) -> None:
        self.keys_required = await self.keys.count_active() > 0
        if self.keys_required:
            log.info("API keys are required on every /v1 request")
        else:
            log.warning(
                "No API key exists: the server answers loopback clients only, as tenant %r. "
                "Create keys with `llmos keys create --tenant NAME` to serve other machines.",
                self.open_tenant,
            )

    async def __call__(self, request: Request) -> Identity:
        """The caller of this request, or an APIError (401, 403, 429)."""
        identity = await self._identify(request)
        wait = self.limiter.take(identity.key_id or f"open:{_client_host(request)}")
        if wait > 0:
            raise APIError(
                429,
                f"Rate limit reached for this key: {self.limiter.per_minute:g} requests per minute. "
                f"Retry in {wait:.1f} s.",
                code="rate_limit_exceeded",
                headers={"Retry-After": retry_after_header(wait)},
            )
        request.state.identity = identity
        return identity

    async def _identify(self, request: Request) -> Identity:
        header = request.headers.get("authorization", "")
        if not self.keys_required and not header:
            # A key made while we run turns keys on from the next request.
            self.keys_required = await self.keys.count_active() > 0
        if not self.keys_required:
            if not is_loopback(_client_host(request)):
                raise APIError(
                    403,
                    "This server has no API keys and answers only local clients. "
                    "Create one with `llmos keys create --tenant NAME` and restart the server.",
                    code="no_keys_configured",
                )
            return Identity(tenant=self.open_tenant, role="customer", user=_user_header(request))
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise APIError(
                401,
                "Missing API key: send `Authorization: Bearer llmos_...` (a key from `llmos keys create`).",
                code="missing_api_key",
            )
        key = await self.keys.find(secret.strip())
        if key is None:
            raise APIError(401, "Invalid or revoked API key.", code="invalid_api_key")
        self.keys_required = True
        return Identity(tenant=key.tenant, role=key.role, user=_user_for(key, request), key_id=key.id)


def _user_for(key: ApiKey, request: Request) -> str | None:
    named = _user_header(request)
    if named is not None and not key.sets_user:
        raise APIError(
            403,
            f"This key may not name the user ({USER_HEADER}). Only a backend key "
            "(`llmos keys create --tenant T --sets-user`) may; a key made with --user acts for its user.",
            code="user_header_not_allowed",
            param=USER_HEADER,
        )
    return named if key.sets_user else key.user


def _user_header(request: Request) -> str | None:
    value = request.headers.get(USER_HEADER)
    if value is None:
        return None
    try:
        return check_name(value, USER_HEADER)
    except ConfigError as exc:
        raise APIError(400, str(exc), param=USER_HEADER) from None


def _client_host(request: Request) -> str:
    return request.client.host if request.client else ""


def require_role(identity: Identity, role: Role) -> None:
    if identity.role != role:
        hint = {
            "customer": "Operator keys are for the tenant's staff; chat with a customer key.",
            "operator": "This needs an operator key (`llmos keys create --tenant T --operator`).",
        }[role]
        raise APIError(403, f"A {identity.role} key cannot do this. {hint}", code="wrong_key_role")
