"""A hostile folder (dozens of kinds of bad files beside good ones) goes through a real knowledge base.

One bad file is reported for that file alone: no run aborts or hangs, and every good file
is stored and found again by a search for its content. The big files are shrunk (scale)
so that the test takes seconds; `python -m bench.hostile_folder` runs them full size.
"""

from __future__ import annotations

import pytest

from bench.hostile_folder import run_hostile_folder


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """The default embedder, its exported query encoder kept out of the user's LLMOS_HOME."""
    from llmos.config import get_settings
    from llmos.knowledge import SentenceTransformerEmbedder

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLMOS_HOME", str(tmp_path_factory.mktemp("home")))
        get_settings.cache_clear()
        embedder = SentenceTransformerEmbedder()
        embedder.embed_query("warm up")
        yield embedder
    get_settings.cache_clear()


def test_a_hostile_folder_loses_no_good_file_and_aborts_no_run(minilm):
    result = run_hostile_folder(scale=0.02, embedder=minilm, timeout=120)

    assert result["kinds"] >= 30
    assert result["aborted_runs"] == 0, result["errors"]
    assert result["good_files_ingested"] == result["good_files"] == 10
    assert result["good_files_found"] == 10, result["good_files_not_found"]
    assert result["unexpected"] == [], {k: result["per_kind"][k] for k in result["unexpected"]}
    kinds = result["per_kind"]
    # What llmos promises for the worst of them, with the reason a person can act on.
    assert "not a regular file" in kinds["FIFO named .md"]["reason"]
    assert "outside the root" in kinds["symlink out of the folder"]["reason"]
    assert "zip bomb" in kinds["DOCX zip bomb"]["reason"]
    assert "LLMOS_KB_MAX_FILE_CHUNKS" in kinds["300,000 tiny sections"]["reason"]
    assert kinds["UTF-16 with BOM"]["outcome"] == "stored"
    assert result["unchanged_on_second_run"] >= result["stored"] - 1  # all but the file rewritten meanwhile
