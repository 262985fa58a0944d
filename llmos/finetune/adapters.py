"""Saved LoRA adapters: where they live, their manifest, and the names that use them.

An adapter is a folder: PEFT's `adapter_config.json` and `adapter_model.safetensors`,
plus `llmos-adapter.json`, the manifest, written last (a folder without it never
counts as an adapter). Named adapters live under `<LLMOS_HOME>/adapters/<NAME>`.

A model name `BASE+ADAPTER` (for example `qwen2.5-coder-0.5b+support-lora`) means the
base model with that adapter applied; the manifest says which base it was trained on,
and loading it on another base is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from llmos.config import get_settings
from llmos.errors import AdapterError, ConfigError, ModelNotFoundError
from llmos.finetune.settings import FinetuneSettings

MANIFEST = "llmos-adapter.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_BLOCK = 8 * 1024 * 1024
log = logging.getLogger(__name__)


class AdapterManifest(BaseModel):
    """What an adapter was trained from, how, and how much it helped."""

    name: str
    base: str = Field(description="The base model: a catalog name, or the folder it was loaded from.")
    base_sha256: str = Field(description="SHA-256 of the base model's weights files, as trained on.")
    data: str = Field(description="The dialogue file it was trained on.")
    data_sha256: str
    settings: FinetuneSettings
    train_chats: int
    validation_chats: int
    dropped_chats: int = Field(0, description="Chats left out: no assistant token fit in max_length.")
    steps: int
    loss_before: float | None = Field(None, description="Mean validation loss per assistant token, base model.")
    loss_after: float | None = Field(None, description="The same, with the adapter.")
    perplexity_before: float | None = None
    perplexity_after: float | None = None
    train_minutes: float = Field(description="Time spent in training steps, over all sessions of the run.")
    total_minutes: float = Field(description="The whole run: loading, validation before and after, training.")
    train_tokens: int = Field(description="Tokens of the chats trained on (prompt and answer, no padding).")
    tokens_per_s: float = Field(description="train_tokens / training seconds.")
    resumed: int = Field(0, description="How many times the run resumed from a checkpoint.")
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def model_name(self) -> str:
        """The name that loads the base with this adapter."""
        return f"{self.base}+{self.name}"


def adapters_home() -> Path:
    return get_settings().home / "adapters"


def check_name(name: str) -> str:
    """An adapter name: letters, digits, '.', '_' and '-' (it becomes a folder and part of a model name)."""
    if not NAME.match(name):
        raise ConfigError(
            f"'{name}' cannot name an adapter: use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    return name


def read_manifest(folder: Path) -> AdapterManifest:
    """The manifest of an adapter folder; AdapterError when it is missing or unreadable."""
    path = Path(folder) / MANIFEST
    try:
        return AdapterManifest.model_validate_json(path.read_text())
    except OSError:
        raise AdapterError(
            f"No adapter at {folder} (no {MANIFEST}): an unfinished run leaves none. "
            "Train one with `llmos finetune DATA --name NAME`, or list them with `llmos models`."
        ) from None
    except ValidationError as exc:
        raise AdapterError(f"{path} is not a valid adapter manifest: {exc.errors()[0]['msg']}.") from None


def locate(adapter: str | Path) -> Path:
    """The folder of an adapter given by name (under LLMOS_HOME/adapters) or by path."""
    path = Path(adapter).expanduser()
    if path.is_dir():
        return path
    if NAME.match(str(adapter)):
        folder = adapters_home() / str(adapter)
        if (folder / MANIFEST).is_file():
            return folder
    known = ", ".join(m.name for m in list_adapters()) or "none yet"
    raise AdapterError(
        f"No adapter named '{adapter}' (looked in {adapters_home()}; known: {known}). "
        "Train it with `llmos finetune DATA --name NAME`, or give the adapter's folder."
    )


def list_adapters() -> list[AdapterManifest]:
    """Every finished adapter under LLMOS_HOME/adapters, by name."""
    home = adapters_home()
    found = []
    for folder in sorted(home.iterdir()) if home.is_dir() else []:
        if (folder / MANIFEST).is_file():
            try:
                found.append(read_manifest(folder))
            except AdapterError as exc:  # a broken folder must not hide the others
                log.warning("Skipping %s: %s", folder, exc)
    return found


def split_model_name(name: str) -> tuple[str, str] | None:
    """('BASE', 'ADAPTER') for a name 'BASE+ADAPTER', else None."""
    base, plus, adapter = name.rpartition("+")
    if not plus or not base or not adapter:
        return None
    return base, adapter


def resolve_base(base: str) -> tuple[str, Path]:
    """(how the manifest names it, the folder to load) for a catalog name or a transformers model folder."""
    from llmos.llm.local.catalog import CATALOG, prepare

    if base in CATALOG:
        return base, prepare(base)
    path = Path(base).expanduser()
    if (path / "config.json").is_file():
        return str(path.resolve()), path.resolve()
    raise ModelNotFoundError(
        f"Unknown base model '{base}'. Fine-tune one of {', '.join(CATALOG)} (see `llmos models`), "
        "or give the folder of a transformers model."
    )


def check_base(manifest: AdapterManifest, base: str, base_folder: Path | None = None) -> None:
    """Refuse an adapter trained on another base; warn when the base's weights changed since.

    `base` is named as `resolve_base` names it: a catalog name, or a folder's resolved path.
    """
    if manifest.base != base:
        raise AdapterError(
            f"Adapter '{manifest.name}' was trained on '{manifest.base}', not on '{base}': its weights only fit that "
            f"base. Use '{manifest.model_name}', or train an adapter for '{base}'."
        )
    if base_folder is not None:
        actual = weights_sha256(base_folder)
        if actual != manifest.base_sha256:
            # Same model, weights prepared again (another transformers version): usually harmless.
            log.warning(
                "The weights of '%s' changed since adapter '%s' was trained (SHA-256 %s, trained on %s).",
                base, manifest.name, actual[:12], manifest.base_sha256[:12],
            )


def weights_sha256(folder: Path) -> str:
    """SHA-256 of a model folder's weights (its *.safetensors files, by name), cached beside them.

    The cache is keyed by each file's size and modification time, so hashing a 1 GB
    model happens once, not at every load.
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise AdapterError(f"{folder} holds no *.safetensors weights to fine-tune or check adapters against.")
    stamp = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    cache = Path(folder) / ".llmos-weights-sha256.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("files") == stamp:
            return cached["sha256"]
    except (OSError, ValueError):
        pass
    digest = hashlib.sha256()
    for f in files:
        with f.open("rb") as source:
            while block := source.read(_BLOCK):
                digest.update(block)
    value = digest.hexdigest()
    try:
        cache.write_text(json.dumps({"files": stamp, "sha256": value}))
    except OSError:  # a read-only model folder: hash again next time
        pass
    return value
