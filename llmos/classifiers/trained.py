"""A trained classifier: a sentence-transformers encoder and a linear head, saved as a folder.

    classifier = load_classifier("intents")             # the latest version under LLMOS_HOME/classifiers/intents/
    classifier = load_classifier("intents@v2")          # one version
    classifier = load_classifier("path/to/folder")      # any saved folder
    predict(classifier, ["my card never arrived"])      # [Prediction(label='card_arrival', confidence=0.93, ...)]

A folder holds manifest.json (what was trained on what, how, and how well), head.npz (the
head's weights: plain arrays, loaded without pickle, so a folder from elsewhere cannot run
code), and encoder/ when the encoder itself was tuned (setfit, finetune). A frozen-encoder classifier names
its encoder by path and SHA-256 instead of copying 90 MB; loading checks the hash, so a
changed encoder is an error rather than silently wrong predictions.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from llmos.errors import ClassifierError, ClassifierNotFoundError

MANIFEST = "manifest.json"
HEAD = "head.npz"
BUNDLED = "encoder"  # the folder of a fine-tuned encoder, inside the classifier's folder
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class EncoderInfo(BaseModel):
    name: str = Field(description="The encoder's folder name, e.g. all-MiniLM-L6-v2.")
    source: str = Field(description="'default' (llmos's packaged model), 'mpnet' (a carried encoder: llmos.classifiers.carried), "
                                    "'bundled' (encoder/ in this folder), or a folder path.")
    sha256: str = Field(description="SHA-256 of the encoder's weights file.")


class DataInfo(BaseModel):
    source: str
    sha256: str
    licence: str = Field("", description="The data's licence, where it is known (a shipped classifier says it).")
    rows: int
    train_rows: int
    validation_rows: int
    counts: dict[str, int] = Field(description="Rows per label in the whole file.")


class Manifest(BaseModel):
    format: int = 1
    name: str
    version: int | None = None
    method: Literal["frozen", "setfit", "finetune"]
    encoder: EncoderInfo
    data: DataInfo
    labels: list[str]
    settings: dict
    metrics: dict = Field(default_factory=dict, description="Validation scores: accuracy, macro_f1 (empty without a validation split).")
    train_seconds: float
    created: datetime
    tuning: dict = Field(default_factory=dict, description="What the tuning did: steps run, whether --max-minutes stopped it.")


class LinearHead(BaseModel):
    """Logistic-regression weights: softmax over labels, or a sigmoid for two (as scikit-learn stores them)."""

    model_config = {"arbitrary_types_allowed": True}

    coef: np.ndarray  # (1 or labels, dim)
    intercept: np.ndarray  # (1 or labels,)

    @classmethod
    def from_sklearn(cls, model) -> LinearHead:
        return cls(coef=np.asarray(model.coef_, dtype=np.float32), intercept=np.asarray(model.intercept_, dtype=np.float32))

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        scores = vectors @ self.coef.T + self.intercept
        if scores.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)


class TrainedClassifier:
    """Encoder -> normalised sentence vector -> linear head. Satisfies the Classifier protocol."""

    def __init__(
        self,
        encoder,
        head: LinearHead,
        manifest: Manifest,
        path: Path | None = None,
        batch_size: int = 64,
        *,
        encoder_path: Path | None = None,
    ) -> None:
        self._encoder = encoder
        self.encoder_path = encoder_path  # where the encoder loads from on first use, when `encoder` is None
        self.head = head
        self.manifest = manifest
        self.path = path
        self.batch_size = batch_size

    @property
    def encoder(self):
        if self._encoder is None and self.encoder_path is not None:
            self._encoder = load_encoder(self.encoder_path)
        return self._encoder

    def frozen_on(self, encoder_path: Path) -> bool:
        """True when this classifier's vectors are the untouched encoder at `encoder_path`'s: a caller that
        has them already (a knowledge base's embedder) can give them to `proba` instead of embedding again."""
        return self.manifest.method == "frozen" and self.encoder_path is not None and self.encoder_path == encoder_path

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        """Label probabilities from sentence vectors already made by this classifier's encoder."""
        return self.head.proba(vectors)

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    @property
    def name(self) -> str:
        return self.manifest.name + (f"@v{self.manifest.version}" if self.manifest.version else "")

    def embed(self, texts: list[str]) -> np.ndarray:
        return embed(self.encoder, texts, self.batch_size)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.head.proba(self.embed(texts))

    def save(self, folder: str | Path) -> Path:
        """Write the classifier to `folder` (created; must be empty or absent)."""
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise ClassifierError(f"{folder} is not empty; save a classifier to a new folder.")
        folder.mkdir(parents=True, exist_ok=True)
        if self.manifest.encoder.source == "bundled":
            self.encoder.save(str(folder / BUNDLED))
        np.savez(folder / HEAD, coef=self.head.coef, intercept=self.head.intercept)
        (folder / MANIFEST).write_text(self.manifest.model_dump_json(indent=2) + "\n")
        self.path = folder
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TrainedClassifier:
        folder = Path(folder)
        try:
            manifest = Manifest.model_validate_json((folder / MANIFEST).read_text())
        except OSError:
            raise ClassifierNotFoundError(f"{folder} has no {MANIFEST}: it is not a saved classifier.") from None
        except ValueError as exc:
            raise ClassifierError(f"{folder / MANIFEST} cannot be read ({exc}); train the classifier again.") from None
        try:
            with np.load(folder / HEAD, allow_pickle=False) as arrays:
                head = LinearHead(coef=arrays["coef"], intercept=arrays["intercept"])
        except (OSError, KeyError, ValueError) as exc:
            raise ClassifierError(f"{folder / HEAD} is missing or damaged ({exc}); train the classifier again.") from None
        rows = head.coef.shape[0]
        if rows != len(manifest.labels) and not (rows == 1 and len(manifest.labels) == 2):
            raise ClassifierError(f"{folder}: the head has {rows} rows for {len(manifest.labels)} labels; train it again.")
        encoder_path = folder / BUNDLED if manifest.encoder.source == "bundled" else encoder_folder(manifest.encoder.source)
        if manifest.encoder.source != "bundled":
            found = weights_sha256(encoder_path)
            if found != manifest.encoder.sha256:
                raise ClassifierError(
                    f"{folder}: the encoder at {encoder_path} has changed since training (SHA-256 {found[:12]}, "
                    f"trained with {manifest.encoder.sha256[:12]}); train the classifier again with this encoder."
                )
        # Loaded on first use: a caller holding the same frozen encoder's vectors never needs a second copy.
        return cls(None, head, manifest, folder, encoder_path=encoder_path)


# --- encoders -----------------------------------------------------------------------------------

_encoders: dict[str, object] = {}
_encoders_lock = threading.Lock()


def encoder_folder(source: str) -> Path:
    """'default' -> the packaged MiniLM folder; 'mpnet' -> all-mpnet-base-v2, joined from its carrier
    packages on first use (llmos.classifiers.carried); anything else is a folder path."""
    if source == "default":
        from llmos.knowledge.embeddings import default_model_path

        return default_model_path()
    from llmos.classifiers.carried import CARRIED, prepare_encoder

    if source in CARRIED:
        return prepare_encoder(source)
    path = Path(source).expanduser()
    if not path.is_dir():
        raise ClassifierError(f"Encoder folder {path} does not exist; give a sentence-transformers model folder.")
    return path


def load_encoder(path: Path, *, shared: bool = True):
    """A SentenceTransformer from a local folder, never from a hub. `shared`: one copy per folder and process
    (frozen encoders are read-only); training asks for a fresh copy of its own."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    key = str(Path(path).resolve())
    with _encoders_lock:
        if shared and key in _encoders:
            return _encoders[key]
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            model = SentenceTransformer(key, device="cpu")
        except Exception as exc:
            raise ClassifierError(f"Cannot load the encoder from {path}: {exc}") from exc
        if shared:
            _encoders[key] = model
        return model


def embed(encoder, texts: list[str], batch_size: int = 64) -> np.ndarray:
    vectors = encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def weights_sha256(folder: Path) -> str:
    """SHA-256 of a model folder's weights file (model.safetensors, or pytorch_model.bin)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        file = folder / name
        if file.is_file():
            digest = hashlib.sha256()
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()
    raise ClassifierError(f"{folder} has no model.safetensors or pytorch_model.bin; give a sentence-transformers model folder.")


# --- names and versions -------------------------------------------------------------------------


def classifiers_home(home: str | Path | None = None) -> Path:
    from llmos.config import get_settings

    return (Path(home).expanduser() if home is not None else get_settings().home) / "classifiers"


def versions(name: str, home: str | Path | None = None) -> list[int]:
    folder = classifiers_home(home) / name
    found = [int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit() and (p / MANIFEST).is_file()] if folder.is_dir() else []
    return sorted(found)


def next_version_folder(name: str, home: str | Path | None = None) -> tuple[int, Path]:
    if not NAME.match(name):
        raise ClassifierError(f"{name!r} cannot name a classifier; use letters, digits, '.', '_' or '-' (at most 64).")
    version = (versions(name, home) or [0])[-1] + 1
    return version, classifiers_home(home) / name / f"v{version}"


def locate(ref: str | Path, home: str | Path | None = None, base: Path | None = None) -> Path:
    """The folder of a saved classifier: a folder path (relative to `base` if given), or NAME / NAME@vN under
    LLMOS_HOME/classifiers (NAME alone: the latest version)."""
    ref = str(ref)
    for candidate in ([base / ref] if base is not None else []) + [Path(ref).expanduser()]:
        if (candidate / MANIFEST).is_file():
            return candidate
        if candidate.is_dir() and any((p / MANIFEST).is_file() for p in candidate.glob("v*")):
            latest = max(int(p.name[1:]) for p in candidate.glob("v*") if p.name[1:].isdigit() and (p / MANIFEST).is_file())
            return candidate / f"v{latest}"
    name, _, version = ref.partition("@")
    if NAME.match(name):
        known = versions(name, home)
        wanted = int(version.lstrip("v")) if version.lstrip("v").isdigit() else None
        if known and (wanted is None or wanted in known):
            return classifiers_home(home) / name / f"v{wanted or known[-1]}"
    saved = sorted(p.name for p in classifiers_home(home).glob("*") if p.is_dir())
    raise ClassifierNotFoundError(
        f"No classifier {ref!r}: not a saved classifier folder, nor a name under {classifiers_home(home)} "
        f"(saved: {', '.join(saved) or 'none'}). Train one with `llmos train classifier DATA.csv --name NAME`."
    )


def load_classifier(ref: str | Path, home: str | Path | None = None, base: Path | None = None) -> TrainedClassifier:
    return TrainedClassifier.load(locate(ref, home, base))


