"""Settings, read from the environment (`LLMOS_*`) or a `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOS_", env_file=".env", extra="ignore")

    model: str = Field("qwen2.5-coder-0.5b", description="Default model: a known name or a model folder.")
    home: Path = Field(Path.home() / ".cache" / "llmos", description="Where prepared models and data live.")
    threads: int | None = Field(None, description="CPU threads for the in-process model (default: all cores).")
    local_engine: Literal["transformers", "llamacpp"] = Field(
        "llamacpp",
        description="Engine of the in-process model: llamacpp (the quantised GGUF weights as shipped, batched, "
        "with prefix reuse; `pip install 'llmos[llamacpp]'`) or transformers (needed for fine-tuning and adapters).",
    )
    local_parallel: int = Field(
        4, ge=1, le=64, description="Requests the llama.cpp engine decodes together, in one batch."
    )

    # An OpenAI-compatible server (vLLM, or any other). When base_url is set, models are served from it.
    base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8011/v1.")
    api_key: SecretStr | None = Field(None, description="API key sent as a Bearer token to base_url.")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to wait for a connection to the server.")
    read_timeout: float = Field(120.0, gt=0, description="Seconds to wait for the next piece of an answer.")
    max_retries: int = Field(3, ge=0, description="Retries on 429, 5xx and connection errors.")
    retry_budget: float = Field(
        180.0, gt=0, description="Seconds that one request may take over all its attempts, waits included."
    )

    # Trained classifiers (llmos.classifiers) the analysis specialist uses: a name under home/classifiers, or a folder.
    sentiment_classifier: str | None = Field(None, description="Sentiment classifier instead of the shipped model.")
    topic_classifier: str | None = Field(None, description="Topic classifier instead of the shipped topic descriptions.")

    # Sessions (llmos.memory): SQLite under `home` by default; a PostgreSQL URL when processes share them.
    memory_url: str | None = Field(
        None, description="Session database, e.g. postgresql+psycopg://user@host/db (default: sqlite file in home)."
    )
    memory_on_busy: Literal["wait", "refuse"] = Field(
        "wait", description="A message for a session whose turn is running: wait for it, or refuse at once."
    )
    memory_lock_timeout: float = Field(30.0, gt=0, description="Seconds a message waits for its session's lock.")
    memory_max_connections: int = Field(
        100, ge=2, description="PostgreSQL: most connections one process opens; each running turn holds one (its lock)."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
