"""Settings, read from the environment (`LLMOS_*`) or a `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOS_", env_file=".env", extra="ignore")

    model: str = Field("qwen2.5-coder-0.5b", description="Default model: a known name or a model folder.")
    home: Path = Field(Path.home() / ".cache" / "llmos", description="Where prepared models and data live.")
    threads: int | None = Field(None, description="CPU threads for the in-process model (default: all cores).")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
