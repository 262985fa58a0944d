"""The in-process backend: a small open model run on this machine, by one of two engines.

`LocalModel` runs it with transformers (dequantised, the engine for fine-tuning and
adapters); `LlamaCppModel` runs the shipped GGUF file with llama.cpp (quantised,
batched, with prefix reuse). LLMOS_LOCAL_ENGINE picks one for catalog names. `catalog`
knows the models llmos can run by name and turns their shipped weights into what
each engine loads.
"""

from llmos.llm.local.backend import LocalModel
from llmos.llm.local.catalog import (
    CATALOG,
    CatalogEntry,
    gguf_path,
    is_gguf_prepared,
    is_prepared,
    model_dir,
    prepare,
    prepare_gguf,
)
from llmos.llm.local.llama_backend import LlamaCppModel

__all__ = [
    "CATALOG",
    "CatalogEntry",
    "LlamaCppModel",
    "LocalModel",
    "gguf_path",
    "is_gguf_prepared",
    "is_prepared",
    "model_dir",
    "prepare",
    "prepare_gguf",
]
