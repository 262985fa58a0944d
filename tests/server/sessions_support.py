"""What the session tests share: a session memory in a temporary database, keys, and an SSE reader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from llmos.memory import Memory, SQLSessionStore


def memory_at(tmp_path, on_busy: str = "refuse") -> Memory:
    """Sessions in a SQLite file of the test; no facts learnt (they would call the scripted model)."""
    return Memory(SQLSessionStore(f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}", on_busy=on_busy), remember=False)


def bearer(secret: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **headers}


@dataclass
class Event:
    id: str | None
    data: dict

    @property
    def type(self) -> str:
        return self.data["type"]


def read_events(response: httpx.Response) -> Iterator[Event]:
    """The SSE events of a streamed response, as they arrive (keep-alive comments skipped)."""
    event_id, data = None, []
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            yield Event(event_id, json.loads("\n".join(data)))
            event_id, data = None, []


def all_events(client: httpx.Client, method: str, url: str, **kwargs) -> list[Event]:
    with client.stream(method, url, **kwargs) as r:
        assert r.status_code == 200, r.read()
        return list(read_events(r))


def create_session(client: httpx.Client, base: str, headers: dict[str, str], id: str | None = None) -> str:
    r = client.post(base + "/v1/sessions", json={"id": id} if id else {}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]
