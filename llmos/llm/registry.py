"""Turning a model name, path or server address into a ChatModel.

Names are read in this order:
- `openai:<model>`: `<model>` on the OpenAI-compatible server at LLMOS_BASE_URL.
- `<base_url>#<model>`, e.g. `http://127.0.0.1:8011/v1#qwen2.5-coder-0.5b`: that model on that server.
- `local:<name or folder>`: the in-process model, even when LLMOS_BASE_URL is set.
- any other name while LLMOS_BASE_URL is set: a model on that server (vLLM's --served-model-name).
- otherwise a catalog name, a local transformers model folder, or a GGUF file.
- `<base>+<adapter>`, e.g. `qwen2.5-coder-0.5b+support-lora`: the base model with a LoRA adapter
  trained by `llmos finetune` (in process, on transformers); with LLMOS_BASE_URL set, the
  adapter as the server serves it (`llmos serve-model --adapter NAME=PATH`), asked for by its name.

Catalog names run on the engine LLMOS_LOCAL_ENGINE names: llamacpp (the default), which
runs the shipped GGUF weights as they are, or transformers.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from llmos.config import get_settings
from llmos.errors import ConfigError, ModelNotFoundError
from llmos.finetune.adapters import split_model_name
from llmos.llm.model import ChatModel


class ModelInfo(BaseModel):
    name: str
    backend: str
    engine: str
    quantization: str
    description: str
    prepared: bool


def known_models() -> list[ModelInfo]:
    """Every model llmos can run by name, on the configured engine, and whether it is ready to load."""
    from llmos.llm.local.catalog import CATALOG, is_gguf_prepared, is_prepared

    from llmos.finetune.adapters import list_adapters

    engine = get_settings().local_engine
    infos = []
    for e in CATALOG.values():
        if engine == "llamacpp":
            quantization, prepared = f"{e.quantization} (GGUF as shipped)", is_gguf_prepared(e.name)
        else:
            quantization, prepared = f"none: {_transformers_dtype()} (from {e.quantization})", is_prepared(e.name)
        infos.append(
            ModelInfo(
                name=e.name, backend="local", engine=engine, quantization=quantization,
                description=e.description, prepared=prepared,
            )
        )
    for a in list_adapters():
        after = f"{a.perplexity_before:.2f} -> {a.perplexity_after:.2f}" if a.perplexity_after is not None else "not measured"
        infos.append(
            ModelInfo(
                name=a.model_name, backend="local", engine="transformers",
                quantization=f"LoRA adapter, rank {a.settings.rank}",
                description=f"'{a.name}' fine-tuned on {Path(a.data).name} ({a.steps} steps, "
                f"{min(a.steps * a.settings.chats_per_step, a.train_chats)} of {a.train_chats} chats seen); "
                f"validation perplexity {after}.",
                prepared=a.base not in CATALOG or is_prepared(a.base),
            )
        )
    return infos


def _transformers_dtype() -> str:
    """The dtype the transformers engine computes in here (see engine.pick_dtype), without importing torch."""
    import os

    from llmos.llm.local.engine import cpu_has_native_bf16

    return os.environ.get("LLMOS_LOCAL_DTYPE") or ("bfloat16" if cpu_has_native_bf16() else "float32")


def get_model(name: str | None = None) -> ChatModel:
    """A model by name, folder or server address (see the module docstring). Default: settings.model."""
    settings = get_settings()
    name = name or settings.model
    if name.startswith("openai:"):
        if not settings.base_url:
            raise ConfigError(
                f"'{name}' names a model on an OpenAI-compatible server, but LLMOS_BASE_URL is not set. "
                f"Set it (e.g. LLMOS_BASE_URL=http://127.0.0.1:8011/v1) or write 'http://HOST:PORT/v1#{name[7:]}'."
            )
        return _openai(name[len("openai:"):], settings.base_url)
    if name.startswith(("http://", "https://")):
        base_url, _, model = name.partition("#")
        if not model:
            raise ConfigError(f"'{name}' gives a server but no model: write it as '{base_url}#MODEL_NAME'.")
        return _openai(model, base_url)
    if name.startswith("local:"):
        return _local(name[len("local:"):])
    if settings.base_url:
        return _openai(_served_adapter(name), settings.base_url)
    return _local(name)


def _served_adapter(name: str) -> str:
    """On a server, `BASE+ADAPTER` is the adapter's served name (vLLM's --lora-modules NAME=PATH)."""
    parts = split_model_name(name)
    return parts[1] if parts else name


def _openai(model: str, base_url: str) -> ChatModel:
    import httpx

    from llmos.llm.openai import OpenAIModel

    settings = get_settings()
    return OpenAIModel(
        model,
        base_url,
        settings.api_key.get_secret_value() if settings.api_key else None,
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        max_retries=settings.max_retries,
        retry_budget_s=settings.retry_budget,
    )


def _local(name: str) -> ChatModel:
    from llmos.llm.local.catalog import CATALOG

    llamacpp = get_settings().local_engine == "llamacpp"
    if name in CATALOG:
        if llamacpp:
            from llmos.llm.local.llama_backend import LlamaCppModel

            return LlamaCppModel.from_catalog(name)
        from llmos.llm.local.backend import LocalModel

        return LocalModel.from_catalog(name)
    path = Path(name).expanduser()
    if not path.exists() and (parts := split_model_name(name)) is not None:
        base, adapter = parts
        # Adapters run on the transformers engine, whichever engine serves plain catalog names.
        from llmos.llm.local.backend import LocalModel

        if base in CATALOG:
            return LocalModel.from_catalog(base, adapter=adapter)
        if Path(base).expanduser().is_dir():
            return LocalModel(base, adapter=adapter)
        raise ModelNotFoundError(f"Unknown base model '{base}' in '{name}'. Known names: {', '.join(CATALOG)}.")
    if path.is_file() and path.suffix == ".gguf":
        from llmos.llm.local.llama_backend import LlamaCppModel

        return LlamaCppModel(path)
    if path.is_dir():
        from llmos.llm.local.backend import LocalModel

        return LocalModel(path)
    raise ModelNotFoundError(
        f"Unknown model '{name}'. Known names: {', '.join(CATALOG)}; "
        "or give the path of a local transformers model folder or GGUF file (run `llmos models` to list them), "
        "or set LLMOS_BASE_URL to use a model on an OpenAI-compatible server such as vLLM."
    )
