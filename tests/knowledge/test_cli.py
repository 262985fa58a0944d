"""The knowledge commands through the real `llmos` app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from llmos.cli import app

from .test_evaluation import write_beir

runner = CliRunner()


def test_ingest_search_stats(tmp_path, minilm):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nUnused products can be returned within 14 days.")
    (docs / "empty.txt").write_text("")
    kb = str(tmp_path / "kb")

    result = runner.invoke(app, ["ingest", str(docs), "--kb", kb, "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "skipped" in result.output and "empty" in result.output

    result = runner.invoke(app, ["ingest", str(docs), "--kb", kb, "--tenant", "acme", "--json"])
    assert json.loads(result.output)["unchanged"] == 1

    result = runner.invoke(app, ["search", "return a product", "--kb", kb, "--tenant", "acme"])
    assert result.exit_code == 0 and "[1]" in result.output and "refunds.md, Refunds" in result.output

    result = runner.invoke(app, ["search", "return a product", "--kb", kb, "--tenant", "acme", "--json", "-k", "1"])
    assert json.loads(result.output)[0]["location"]["heading"] == "Refunds"

    result = runner.invoke(app, ["search", "return a product", "--kb", kb, "--tenant", "other"])
    assert result.exit_code == 0 and "No hits" in result.output

    result = runner.invoke(app, ["kb", "stats", "--kb", kb, "--tenant", "acme"])
    assert result.exit_code == 0 and "acme" in result.output

    result = runner.invoke(app, ["ingest", str(tmp_path / "missing"), "--kb", kb])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_eval_retrieval(tmp_path, minilm):
    write_beir(tmp_path / "tiny")
    out = tmp_path / "retrieval_tiny.json"
    result = runner.invoke(app, ["eval", "retrieval", "--data", str(tmp_path / "tiny"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    for method in ("bm25", "dense", "hybrid", "rrf"):
        assert set(data[method]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    assert data["hybrid"]["recall@100"] == 1.0 and data["dense"]["mrr@10"] == 1.0
    assert data["_meta"]["queries"] == 2
    # The corpus embeddings were cached under LLMOS_HOME.
    assert list((tmp_path / "home" / "knowledge" / "eval-cache").glob("*.npy"))


def test_eval_retrieval_reports_recall_at_the_cut_offs_asked_and_writes_only_where_told(tmp_path, minilm, monkeypatch):
    write_beir(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "retrieval", "--data", str(tmp_path / "tiny"), "--k", "1", "--k", "5"])
    assert result.exit_code == 0, result.output
    assert "recall@1" in result.output and "recall@5" in result.output and "recall@100" not in result.output
    assert not list(tmp_path.rglob("retrieval_*.json"))  # no --out: nothing written
    bad = runner.invoke(app, ["eval", "retrieval", "--data", str(tmp_path / "tiny"), "--k", "0"])
    assert bad.exit_code == 1 and "between 1 and 100" in bad.output


def test_errors_are_printed_unwrapped_whatever_the_path_length(tmp_path):
    """Logs and scripts read error messages: a long path must not be broken across lines."""
    missing = tmp_path / ("a" * 70) / ("b" * 70) / "missing"
    result = runner.invoke(app, ["ingest", str(missing), "--kb", str(tmp_path / "kb")])
    assert result.exit_code == 1
    assert f"{missing} does not exist" in result.output, result.output
