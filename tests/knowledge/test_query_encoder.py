"""Query embeddings through onnxruntime: the model's own vectors, and torch whenever the export cannot be trusted."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from llmos.knowledge import SentenceTransformerEmbedder
from llmos.knowledge.query_encoder import OnnxQueryEncoder, cache_path

TEXTS = ["where is my parcel?", "Refunds are issued within 14 days of the return arriving at our warehouse.", "ok"]


def test_default_model_embeds_queries_with_onnx_and_same_vectors(minilm):
    assert isinstance(minilm._query_encoder(), OnnxQueryEncoder)
    for text in TEXTS:
        fast, torch_vector = minilm.embed_query(text), minilm._embed_query_torch(text)
        assert fast.dtype == np.float32 and fast.shape == (384,)
        assert float(fast @ torch_vector) > 0.9999


def test_a_damaged_cached_graph_is_exported_again(minilm):
    path = cache_path(minilm.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an onnx graph")
    encoder = OnnxQueryEncoder.load(minilm.model, minilm.name, minilm._embed_query_torch)
    assert encoder is not None
    assert path.stat().st_size > 1_000_000  # the fresh export replaced the damaged file
    assert float(encoder.encode(TEXTS[0]) @ minilm._embed_query_torch(TEXTS[0])) > 0.9999


def test_a_pooling_the_export_does_not_cover_keeps_torch(minilm):
    from sentence_transformers.models import Pooling

    max_pooled = [minilm.model[0], Pooling(384, pooling_mode="max")]
    assert OnnxQueryEncoder.load(max_pooled, "max-pooled", minilm._embed_query_torch) is None


def test_without_the_onnx_package_queries_still_embed_on_torch(minilm, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails, as when it is not installed
    embedder = SentenceTransformerEmbedder()
    embedder._model = minilm.model  # the same weights, without loading them again
    assert embedder._query_encoder() is None
    assert not cache_path(embedder.name).exists()
    vector = embedder.embed_query(TEXTS[0])
    assert float(vector @ minilm.embed_query(TEXTS[0])) > 0.9999
