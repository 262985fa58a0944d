"""One query at a time through onnxruntime: the same vectors as sentence-transformers, in a third of the time.

A search embeds one short query. In torch that is some hundred tiny operations, each
with Python and dispatch overhead; onnxruntime runs the same graph as one call. On
2 cores, all-MiniLM-L6-v2: about 11 ms per query in torch, 3.5 ms here (see
bench/knowledge.py). Documents are still embedded in batches by sentence-transformers,
where the overhead is spread over many texts.

The graph (transformer, pooling, normalisation) is exported from the loaded model once
and cached under LLMOS_HOME/embeddings/. Every time it is loaded, it must give the
torch model's vectors for a few probe texts, or it is not used. Models whose
architecture the export does not cover (anything beyond transformer, mean or CLS
pooling and normalisation) keep the torch path.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PROBES = ["how do I get a refund?", "Order 1042 arrived damaged; the box was crushed.", "x"]
AGREEMENT = 0.9999  # cosine between this encoder's and torch's vector of each probe


def cache_path(model_name: str) -> Path:
    from llmos.config import get_settings

    return get_settings().home / "embeddings" / f"{model_name}.onnx"


class OnnxQueryEncoder:
    """Embeds one text with an exported copy of a sentence-transformers model."""

    def __init__(self, model, graph: bytes, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Busy-waiting threads between queries would take the CPU from Chroma and BM25 on a small machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._model = model
        self._lock = threading.Lock()  # the tokenizer is not safe to share between threads

    def encode(self, text: str) -> np.ndarray:
        with self._lock:
            features = self._model.tokenizer(
                [text], truncation=True, max_length=self._model.max_seq_length, return_tensors="np"
            )
        inputs = {name: features[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
        return self._session.run(None, inputs)[0][0].astype(np.float32, copy=False)

    @classmethod
    def load(cls, model, model_name: str, reference, threads: int = 2) -> OnnxQueryEncoder | None:
        """The encoder for `model`, or None when it cannot be built or disagrees with `reference` (text -> vector).

        A cached graph that fails (damaged, or from another version of the model) is exported again.
        """
        path = cache_path(model_name)
        # The cached graph first, if there is one; then (None) a fresh export.
        for cached in ([path] if path.is_file() else []) + [None]:
            try:
                pooling = _pooling_mode(model)
                if pooling is None:
                    return None
                graph = cached.read_bytes() if cached else _export(model, pooling)
                encoder = cls(model, graph, max(1, min(threads, os.cpu_count() or 1)))
                agreement = min(float(encoder.encode(t) @ reference(t)) for t in PROBES)
            except Exception as exc:  # onnx not installed, an export the model does not support, a damaged file
                log.info("Query embeddings stay on torch for now: %s", exc)
                continue
            if agreement >= AGREEMENT:
                if cached is None:
                    _save(path, graph)
                return encoder
            log.warning("The exported query encoder disagrees with the model (cosine %.5f).", agreement)
        return None


def _pooling_mode(model) -> str | None:
    """'mean' or 'cls' for a plain transformer + pooling (+ normalise) model; None for anything else."""
    kinds = [type(m).__name__ for m in model]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    config = model[1].get_config_dict()
    if "pooling_mode" in config:  # sentence-transformers 6
        mode = config["pooling_mode"]
    else:
        modes = [k for k, on in config.items() if k.startswith("pooling_mode_") and on is True]
        mode = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(modes[0]) if len(modes) == 1 else None
    return mode if mode in ("mean", "cls") and config.get("include_prompt", True) else None


def _export(model, pooling: str) -> bytes:
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = model[0].auto_model

        def forward(self, input_ids, attention_mask):
            tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if pooling == "cls":
                vector = tokens[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
                vector = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(vector, dim=-1)

    example = model.tokenizer(PROBES[:1], return_tensors="pt")
    buffer = io.BytesIO()
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on tracing are about its internals, not this model
        torch.onnx.export(
            Graph().eval(),
            (example["input_ids"], example["attention_mask"]),
            buffer,
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, and fast for a small BERT
        )
    return buffer.getvalue()


def _save(path: Path, graph: bytes) -> None:
    """Write atomically; a cache that cannot be written only costs the export next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(graph)
        os.replace(tmp, path)
    except OSError as exc:
        log.info("Cannot cache the query encoder at %s: %s", path, exc)
