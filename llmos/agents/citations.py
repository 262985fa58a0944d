"""Citations across subtasks: one numbered list of sources for a team's answer.

A specialist that searches the knowledge base sees passages numbered [1], [2]... with
their source (see llmos.knowledge.tool.format_hits) and cites those numbers in its
answer. Two specialists both cite "[1]" for different documents, so the team renumbers
every subtask's markers into one list. The list is built from the tool results the
specialists saw, not from what a model wrote, so the sources of an answer never depend
on a small model remembering them.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

_PASSAGE = re.compile(r"^\[(\d+)\] (.+)$", re.MULTILINE)  # "[1] policies/returns.md, Damaged items"
_MARKER = re.compile(r"( ?)\[(\d+(?:\s*,\s*\d+)*)\]")  # [1] or [1, 3], with the space before it
_HEADING = re.compile(r"^\W*(sources|references|citations)\W*$", re.IGNORECASE)
_ENTRY = re.compile(r"^\s*(?:[-*]\s*)?\[(\d+)\]\s*(.+?)\s*$")


class Source(BaseModel):
    """One entry of a team answer's source list."""

    number: int
    citation: str
    subtasks: list[str]


def passages(tool_output: str) -> dict[int, str]:
    """The numbered sources in a knowledge tool's output: {1: 'policies/returns.md, Damaged items'}."""
    return {int(n): " ".join(citation.split()) for n, citation in _PASSAGE.findall(tool_output)}


def split_sources(text: str) -> tuple[str, dict[int, str]]:
    """Split a trailing 'Sources:' list (lines like '[1] file.md') off an answer: (body, {number: citation})."""
    lines = text.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if _HEADING.match(lines[i]):
            entries = [_ENTRY.match(line) for line in lines[i + 1:] if line.strip()]
            if entries and all(entries):
                body = "\n".join(lines[:i]).rstrip()
                return body, {int(m.group(1)): " ".join(m.group(2).split()) for m in entries if m}
            break
    return text.strip(), {}


def cited(text: str) -> list[int]:
    """Marker numbers in order of first use."""
    seen: list[int] = []
    for _, group in _MARKER.findall(text):
        for n in (int(x) for x in group.split(",")):
            if n not in seen:
                seen.append(n)
    return seen


def renumber(text: str, mapping: dict[int, int]) -> str:
    """Rewrite markers through `mapping`; a number it lacks is dropped (it would point to no listed source)."""

    def sub(match: re.Match[str]) -> str:
        kept = [mapping[n] for n in (int(x) for x in match.group(2).split(",")) if n in mapping]
        # A dropped marker takes the space before it along: "late [9]." becomes "late."
        return match.group(1) + "".join(f"[{n}]" for n in kept) if kept else ""

    return _MARKER.sub(sub, text)


class Citations:
    """The sources of a team run, numbered in the order subtasks add them."""

    def __init__(self) -> None:
        self.sources: list[Source] = []

    def add(self, subtask: str, text: str, retrieved: dict[int, str]) -> tuple[str, list[int]]:
        """Take one subtask's answer and the passages its tools returned.

        Returns the answer without its own source list, its markers renumbered to this run's
        list, and the numbers of its sources: the cited ones, or, when it cites none, every
        passage it retrieved (what the answer was grounded on). Numbers the tools returned
        win over a list the model wrote; that list only fills numbers the tools lack.
        """
        body, written = split_sources(text)
        known = {**written, **retrieved}
        used = [n for n in cited(body) if n in known] or sorted(retrieved)
        mapping = {n: self._number(known[n], subtask) for n in used}
        return renumber(body, mapping), sorted(set(mapping.values()))

    def clean(self, text: str) -> str:
        """Drop markers that name no source of this run (a model can invent [7])."""
        return renumber(text, {s.number: s.number for s in self.sources})

    def render(self) -> str:
        return "\n".join(f"[{s.number}] {s.citation}" for s in self.sources)

    def _number(self, citation: str, subtask: str) -> int:
        for s in self.sources:
            if s.citation == citation:
                if subtask not in s.subtasks:
                    s.subtasks.append(subtask)
                return s.number
        self.sources.append(Source(number=len(self.sources) + 1, citation=citation, subtasks=[subtask]))
        return len(self.sources)
