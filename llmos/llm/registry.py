"""Turning a model name or path into a ChatModel."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from llmos.config import get_settings
from llmos.errors import ModelNotFoundError
from llmos.llm.model import ChatModel


class ModelInfo(BaseModel):
    name: str
    backend: str
    description: str
    prepared: bool


def known_models() -> list[ModelInfo]:
    """Every model llmos can run by name, and whether it is ready to load."""
    from llmos.llm.local.catalog import CATALOG, is_prepared

    return [
        ModelInfo(name=e.name, backend="local", description=e.description, prepared=is_prepared(e.name))
        for e in CATALOG.values()
    ]


def get_model(name: str | None = None) -> ChatModel:
    """A model by catalog name, or a local transformers model folder by path. Default: settings.model."""
    name = name or get_settings().model
    from llmos.llm.local.catalog import CATALOG

    if name in CATALOG:
        from llmos.llm.local.backend import LocalModel

        return LocalModel.from_catalog(name)
    path = Path(name).expanduser()
    if path.is_dir():
        from llmos.llm.local.backend import LocalModel

        return LocalModel(path)
    raise ModelNotFoundError(
        f"Unknown model '{name}'. Known names: {', '.join(CATALOG)}; "
        "or give the path of a local transformers model folder (run `llmos models` to list them)."
    )
