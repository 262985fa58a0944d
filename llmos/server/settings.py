"""Server settings, read from the environment (`LLMOS_SERVER_*`) or a `.env` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOS_SERVER_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on. Anything but loopback needs API keys.")
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, description="Worker processes (uvicorn).")
    serve: str = Field(
        "", description="What to serve: an assistant file, or a team factory as module:function (`llmos serve` sets it)."
    )
    model: str | None = Field(None, description="The model behind the served team (default: LLMOS_MODEL).")
    keys_url: str | None = Field(
        None, description="SQLAlchemy URL of the API keys database (default: SQLite at LLMOS_HOME/server/keys.db)."
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body accepted (413 above).")
    rate_limit_per_minute: float = Field(60.0, ge=0, description="Requests per minute per key; 0 turns limits off.")
    rate_limit_burst: int = Field(10, ge=1, description="Requests a key may send at once before the rate applies.")
    cors_origins: list[str] = Field(
        default_factory=list, description='Browser origins allowed to call the API, e.g. ["https://shop.example"].'
    )
    grace_seconds: float = Field(30.0, ge=0, description="On shutdown, how long runs in flight may take to finish.")
    run_seconds: float = Field(600.0, gt=0, description="Wall-time budget of one chat completion.")
    # Sessions (llmos.server.sessions_api, llmos.server.handoff); the database is LLMOS_MEMORY_URL's.
    approval_seconds: float = Field(
        300.0, gt=0, description="How long a tool call that needs approval waits for the customer's answer (then denied)."
    )
    replay_seconds: float = Field(
        600.0, ge=0, description="How long a finished turn's events are kept for clients that reconnect (Last-Event-ID)."
    )
    handoff_tools: list[str] = Field(
        default_factory=lambda: ["escalate_to_human"],
        description="Tools whose successful call hands the session to a person (mode 'human').",
    )
    remember_facts: bool = Field(True, description="Learn facts about each user from their sessions (llmos.memory).")
    open_tenant: str = Field("local", description="The tenant of requests when no API key exists (loopback only).")
    knowledge_path: Path | None = Field(
        None, description="Where tenants' uploaded documents and their index live (default: LLMOS_HOME/server/knowledge)."
    )
    upload_max_bytes: int = Field(10_000_000, ge=1, description="Largest file accepted by a knowledge upload (413 above).")
    upload_types: list[str] = Field(
        default_factory=lambda: [".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".json", ".jsonl"],
        description="File extensions a knowledge upload accepts (415 for others).",
    )


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")
