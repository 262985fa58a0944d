"""The in-process backend: a small open model run with transformers on this machine.

`LocalModel` is the ChatModel; `catalog` knows the models llmos can run by name
and turns their shipped weights into a folder transformers loads in seconds.
"""

from llmos.llm.local.backend import LocalModel
from llmos.llm.local.catalog import CATALOG, CatalogEntry, is_prepared, model_dir, prepare

__all__ = ["CATALOG", "CatalogEntry", "LocalModel", "is_prepared", "model_dir", "prepare"]
