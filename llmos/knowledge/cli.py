"""Knowledge commands: `llmos ingest`, `llmos search`, `llmos kb stats`, `llmos eval retrieval`.

`register(app)` adds them to the main `llmos` app. Heavy imports happen inside the
commands, so that `llmos --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from llmos.commands import run_command

console = Console(highlight=False, soft_wrap=True)
kb_app = typer.Typer(help="Inspect the knowledge base.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure quality on evaluation data.", no_args_is_help=True)

Tenant = Annotated[str, typer.Option(help="Tenant whose documents to use.")]
KbPath = Annotated[Optional[Path], typer.Option("--kb", help="Knowledge base folder (default: LLMOS_HOME/knowledge).")]
Url = Annotated[Optional[str], typer.Option(help="Chroma server URL instead of the embedded store.")]


def _open(kb_path: Path | None, tenant: str, url: str | None, **kwargs):
    import os

    # Before torch loads: spinning OpenMP threads starve Chroma's threads on small machines (see bench/knowledge.py).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from llmos.knowledge import KnowledgeBase

    return KnowledgeBase(kb_path, tenant=tenant, url=url, **kwargs)


def _guard(fn):
    return run_command(fn, console, interrupted="Interrupted: the next `llmos ingest` finishes the job without duplicates.")


def ingest(
    path: Annotated[Path, typer.Argument(help="A file or a folder to sync into the knowledge base.")],
    tenant: Tenant = "default",
    tag: Annotated[Optional[list[str]], typer.Option(help="Tag the chunks (repeatable); filter with search --tag.")] = None,
    kb: KbPath = None,
    url: Url = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Sync documents: add new files, re-embed changed ones, remove deleted ones."""

    def run() -> None:
        base = _open(kb, tenant, url)
        summary = base.ingest(path, tags=tag, progress=not as_json)
        if as_json:
            print(summary.model_dump_json(indent=2))
            return
        console.print(
            f"[green]Tenant {summary.tenant}:[/] {len(summary.added)} added, {len(summary.updated)} updated, "
            f"{len(summary.removed)} removed, {summary.unchanged} unchanged; "
            f"chunks +{summary.chunks_added} -{summary.chunks_removed} in {summary.seconds:.1f} s."
        )
        if summary.repaired:
            console.print(f"Repaired {len(summary.repaired)} file(s) left half-written by an interrupted run.")
        for skipped in summary.skipped:
            console.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}")

    _guard(run)


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many hits.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25.")] = "hybrid",
    tenant: Tenant = "default",
    source: Annotated[Optional[list[str]], typer.Option(help="Only chunks of this file (repeatable).")] = None,
    tag: Annotated[Optional[list[str]], typer.Option(help="Only chunks with this tag (repeatable).")] = None,
    kb: KbPath = None,
    url: Url = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Search the knowledge base; each hit shows its source and location."""

    def run() -> None:
        base = _open(kb, tenant, url)
        sources = [str(Path(s).expanduser().resolve()) for s in source] if source else None
        hits = base.search(query, k, mode=mode, sources=sources, tags=tag)  # type: ignore[arg-type]
        if as_json:
            print(json.dumps([h.model_dump() for h in hits], indent=2))
            return
        if not hits:
            console.print("[yellow]No hits.[/] Is anything ingested for this tenant? See `llmos kb stats`.")
        for n, hit in enumerate(hits, 1):
            console.print(f"[bold]\\[{n}][/] {hit.citation()}  [dim]score {hit.score:.3f}  id {hit.id}[/]", soft_wrap=True)
            text = hit.text if len(hit.text) <= 400 else hit.text[:400] + "..."
            console.print(f"    {text}\n", soft_wrap=True)

    _guard(run)


@kb_app.command("stats")
def stats(tenant: Tenant = "default", kb: KbPath = None, url: Url = None) -> None:
    """Files and chunks stored for a tenant."""

    def run() -> None:
        info = _open(kb, tenant, url).stats()
        table = Table("tenant", "files", "chunks", "embedding model", "store")
        table.add_row(info.tenant, str(info.files), str(info.chunks), info.embedding_model, info.path)
        console.print(table)

    _guard(run)


@eval_app.command("retrieval")
def eval_retrieval(
    data: Annotated[Path, typer.Option(help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.")],
    reranker: Annotated[Optional[str], typer.Option(help="A CrossEncoder model folder: adds a 'rerank' method.")] = None,
    k: Annotated[Optional[list[int]], typer.Option("--k", help="Report recall@k at this cut-off (repeatable; default 10 and 100).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the scores as JSON to this file.")] = None,
) -> None:
    """nDCG@10, recall@k and MRR@10 of bm25, dense and hybrid retrieval, side by side."""

    def run() -> None:
        from rich.progress import Progress

        from llmos.config import get_settings
        from llmos.knowledge.evaluation import RECALL_AT, check_recall_at, evaluate_retrieval, metric_names
        from llmos.knowledge.retrieval import cross_encoder

        recall_at = check_recall_at(tuple(k or RECALL_AT))
        with Progress(console=console, transient=True) as bar:
            embedding = bar.add_task(f"Embedding {data.name} (cached after the first run)", total=None)
            queries = None

            def step(done: int, total: int) -> None:
                nonlocal queries
                if queries is None:
                    bar.remove_task(embedding)
                    queries = bar.add_task("Queries", total=total)
                bar.update(queries, completed=done)

            report = evaluate_retrieval(
                data, reranker=cross_encoder(reranker) if reranker else None,
                cache_dir=get_settings().home / "knowledge" / "eval-cache", recall_at=recall_at, progress=step,
            )
        metrics = metric_names(recall_at)
        table = Table("method", *metrics, title=f"{report.dataset}: {report.queries} queries, {report.corpus} documents")
        for method, scores in report.methods.items():
            table.add_row(method, *(f"{scores[m]:.3f}" for m in metrics))
        console.print(table)
        if out is None:
            console.print("[dim]--out FILE writes these scores as JSON.[/]")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {**report.methods, "_meta": report.model_dump(exclude={"methods"})}
        out.write_text(json.dumps(payload, indent=2) + "\n")
        console.print(f"Wrote {out}")

    _guard(run)


def register(app: typer.Typer) -> None:
    """Add the knowledge commands to the `llmos` app."""
    app.command("ingest")(ingest)
    app.command("search")(search)
    app.add_typer(kb_app, name="kb")
    app.add_typer(eval_app, name="eval")
