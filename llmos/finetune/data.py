"""Dialogues from a CSV or JSON-lines file, checked, hashed and split.

    data = read_dialogues("tickets.csv", question_column="instruction", answer_column="response")
    train, valid = data.split(0.1, max_validation=64, seed=0)

Two shapes are read, from either format:
- single-turn: one question column and one answer column (names configurable);
- multi-turn: a `messages` column (in a CSV, JSON text) holding a list of
  `{"role": "system" | "user" | "assistant", "content": "..."}`.

Every problem (no such file, an empty file, a missing column, a chat without an
assistant turn, an unknown role) is a DialogueDataError that names the file, the row
and what to write instead.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmos.errors import DialogueDataError

ROLES = ("system", "user", "assistant")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


class Turn(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Dialogues(BaseModel):
    """Chats in file order, each a list of turns with at least one assistant turn."""

    chats: list[list[Turn]]
    source: str = Field("", description="Where they came from (a path), for manifests and messages.")
    sha256: str = Field("", description="SHA-256 of the file's bytes: which data an adapter was trained on.")

    def __len__(self) -> int:
        return len(self.chats)

    def subset(self, indexes: list[int]) -> Dialogues:
        return Dialogues(chats=[self.chats[i] for i in indexes], source=self.source, sha256=self.sha256)

    def split(self, fraction: float, *, max_validation: int, seed: int = 0) -> tuple[Dialogues, Dialogues]:
        """(train, validation), drawn at random with `seed`: the same arguments give the same split."""
        if fraction <= 0 or max_validation <= 0:
            return self, self.subset([])
        if len(self) < 2:
            raise DialogueDataError(
                f"{self.source or 'The data'}: {len(self)} dialogue is too few to keep some for validation. "
                "Add dialogues, or train with --validation 0."
            )
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        n_valid = min(max_validation, max(1, round(len(self) * fraction)), len(self) - 1)
        return self.subset(sorted(order[n_valid:])), self.subset(sorted(order[:n_valid]))


def read_dialogues(
    path: str | Path,
    *,
    question_column: str = "question",
    answer_column: str = "answer",
    messages_column: str = "messages",
    system: str | None = None,
) -> Dialogues:
    """Read and check a dialogue file (.csv, or JSON lines: .jsonl, .ndjson, .json); `system` opens every chat."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DialogueDataError(f"No dialogue file at {path}.")
    raw = path.read_bytes()
    if not raw.strip():
        raise DialogueDataError(f"{path} is empty: write one dialogue per row (CSV) or per line (JSON lines).")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DialogueDataError(f"{path} is not UTF-8 text ({exc}). Save it as UTF-8.") from None
    if path.suffix.lower() == ".csv":
        records, columns = _csv_records(text)
    elif path.suffix.lower() in JSON_SUFFIXES:
        records, columns = _json_records(text, path)
    else:
        raise DialogueDataError(f"{path}: unknown format '{path.suffix}'. Give a .csv file or JSON lines (.jsonl).")
    if not records:
        raise DialogueDataError(f"{path} has no dialogues, only a header. Add rows.")
    if messages_column in columns:
        shape = "chat"
    elif question_column in columns and answer_column in columns:
        shape = "pair"
    else:
        missing = " or ".join(f"'{c}'" for c in (question_column, answer_column) if c not in columns)
        raise DialogueDataError(
            f"{path} has no '{messages_column}' column and no {missing} column; its columns are: "
            f"{', '.join(sorted(columns)) or '(none)'}. Name yours with --question-column and --answer-column "
            f"(single-turn) or --messages-column (multi-turn chats)."
        )
    chats = []
    for number, record in records:
        if shape == "chat":
            chat = _chat(record.get(messages_column), path, number)
        else:
            chat = _pair(record.get(question_column), record.get(answer_column), path, number, question_column, answer_column)
        if system and chat[0].role != "system":
            chat.insert(0, Turn(role="system", content=system))
        chats.append(chat)
    return Dialogues(chats=chats, source=str(path), sha256=hashlib.sha256(raw).hexdigest())


def _csv_records(text: str) -> tuple[list[tuple[int, dict[str, Any]]], set[str]]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    columns = set(reader.fieldnames or [])
    # Row numbers as a spreadsheet shows them (the header is row 1), whatever newlines the cells hold.
    return list(enumerate(reader, start=2)), columns


def _json_records(text: str, path: Path) -> tuple[list[tuple[int, dict[str, Any]]], set[str]]:
    records: list[tuple[int, dict[str, Any]]] = []
    stripped = text.lstrip()
    if stripped.startswith("["):  # a single JSON array of records is accepted too
        try:
            items = json.loads(stripped)
        except ValueError as exc:
            raise DialogueDataError(f"{path} is not valid JSON: {exc}.") from None
        records = list(enumerate(items, start=1))
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((number, json.loads(line)))
            except ValueError as exc:
                raise DialogueDataError(f"{path}, line {number} is not valid JSON: {exc}. Write one object per line.") from None
    for number, record in records:
        if not isinstance(record, dict):
            raise DialogueDataError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}.")
    columns = set().union(*(r.keys() for _, r in records)) if records else set()
    return records, columns


def _pair(question: Any, answer: Any, path: Path, number: int, q_column: str, a_column: str) -> list[Turn]:
    for value, column in ((question, q_column), (answer, a_column)):
        if not isinstance(value, str) or not value.strip():
            raise DialogueDataError(f"{path}, row {number}: the '{column}' column is empty. Fill it in or remove the row.")
    return [Turn(role="user", content=question), Turn(role="assistant", content=answer)]


def _chat(value: Any, path: Path, number: int) -> list[Turn]:
    where = f"{path}, row {number}"
    if isinstance(value, str):  # a CSV cell holds the list as JSON text
        try:
            value = json.loads(value)
        except ValueError:
            raise DialogueDataError(f"{where}: the messages are not valid JSON. Write a JSON list of {{role, content}}.") from None
    if not isinstance(value, list) or not value:
        raise DialogueDataError(f"{where}: the messages must be a non-empty list of {{\"role\", \"content\"}} objects.")
    turns = []
    for i, message in enumerate(value, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise DialogueDataError(
                f"{where}, message {i}: each message needs a role ({', '.join(ROLES)}) and a text content; got {message!r:.120}."
            )
        turns.append(Turn(role=message["role"], content=message["content"]))
    if not any(t.role == "assistant" and t.content.strip() for t in turns):
        raise DialogueDataError(f"{where}: the chat has no assistant turn, so there is nothing to learn. Add the answer.")
    return turns
