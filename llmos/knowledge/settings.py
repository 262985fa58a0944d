"""Knowledge base settings, read from the environment (`LLMOS_KB_*`) or a `.env` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KnowledgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMOS_KB_", env_file=".env", extra="ignore")

    path: Path | None = Field(None, description="Knowledge base folder (default: LLMOS_HOME/knowledge).")
    chroma_url: str | None = Field(None, description="A Chroma server (`chroma run`), e.g. http://127.0.0.1:8000.")
    embedding_model: str | None = Field(
        None, description="A sentence-transformers model folder (default: the packaged all-MiniLM-L6-v2)."
    )
    chunk_tokens: int = Field(200, ge=16, description="Most tokens in one chunk (the embedder reads at most 256).")
    chunk_overlap: int = Field(30, ge=0, description="Tokens repeated between neighbouring chunks.")
    max_file_mb: float = Field(50.0, gt=0, description="Larger files are skipped.")
    max_file_chunks: int = Field(
        100_000, ge=1, description="Files that give more chunks are skipped (300,000 one-line sections would embed for hours)."
    )
    batch_size: int = Field(256, ge=1, description="Chunks embedded together during ingestion.")


def default_path() -> Path:
    from llmos.config import get_settings

    return KnowledgeSettings().path or get_settings().home / "knowledge"
