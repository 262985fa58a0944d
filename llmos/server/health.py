"""Readiness: whether the models behind the served teams answer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmos.errors import ModelConnectionError


async def model_ready(served: Iterable[Any]) -> None:
    """Raise ModelConnectionError when a served team's model cannot answer now.

    A model on a server (vLLM...) must answer `GET /models`; an in-process model must be loaded
    (`llmos serve` loads it at start). Other models (e.g. test doubles) are taken as ready.
    """
    for item in served:
        model = getattr(item, "model", None)
        if model is None:
            continue
        client, base_url = getattr(model, "client", None), getattr(model, "base_url", None)
        if client is not None and base_url is not None:
            try:
                response = await client.get(f"{base_url}/models", headers=getattr(model, "_headers", {}), timeout=3.0)
            except Exception as exc:  # noqa: BLE001 - any transport failure means not ready
                raise ModelConnectionError(f"The model server {base_url} does not answer: {type(exc).__name__}.") from None
            if response.status_code != 200:
                raise ModelConnectionError(f"The model server {base_url} answered {response.status_code} to GET /models.")
        elif getattr(model, "loaded", True) is False:
            raise ModelConnectionError(f"The model {getattr(model, 'name', '?')} is still loading.")
