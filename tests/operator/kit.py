"""Shared helpers for the operator-surface tests: a running System and an in-process ASGI client.

The System is the real one (actors, journal, supervisor) on the in-process simulated
exchange under trio's MockClock, as in ``tests/test_system.py``: posture boots ORANGE and
earns entries back through clean reconciles in a couple of virtual minutes.
"""

import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio

from scalper.clock import simulated_clock
from scalper.core.intents import Intent
from scalper.core.types import Side
from scalper.operator.api import OperatorApp
from scalper.store.store import Store
from scalper.system import System, SystemConfig, open_system
from scalper.venues.sim.faults import FaultInjector, FaultSpec
from scalper.venues.sim.inproc import InProcessVenue
from tests.venues.sim.simkit import BTC, make_engine

D = Decimal
REF = D("60000")
PORT = 8765
HOST = f"127.0.0.1:{PORT}"

__all__ = ["BTC", "HOST", "PORT", "REF", "D"]


def make_venue(*faults: FaultSpec, seed: int = 3) -> InProcessVenue:
    engine = make_engine(seed=seed)
    injector = FaultInjector(faults, random.Random(seed)) if faults else None
    return InProcessVenue(engine, injector, clock=trio.current_time)


@asynccontextmanager
async def running(venue: InProcessVenue, store: Store | None = None) -> AsyncIterator[System]:
    async with open_system(
        SystemConfig(symbols=(BTC,), seed=1),
        venue,
        store or Store.open(":memory:"),
        clock=simulated_clock(),
    ) as system:
        yield system


def pin_unprotected(
    monkeypatch: pytest.MonkeyPatch, system: System, values: dict[str, float]
) -> None:
    """Pin ``system.unprotected_seconds()`` to known values.

    The ProtectionManager owns the real clock of a protection gap; these tests check how
    the operator surface *shows* it, so they fix what it reports.
    """
    pinned = dict(values)
    monkeypatch.setattr(system, "unprotected_seconds", lambda: dict(pinned))


async def until(
    predicate: Callable[[], object], *, limit_s: float = 600.0, step: float = 0.5
) -> None:
    """Poll on virtual time (the state has no change notification)."""
    with trio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling virtual time is the point
            await trio.sleep(step)


async def ready_for_entries(system: System) -> None:
    await until(lambda: system.knobs.allow_entries)


def entry(intent_id: str, qty: str = "0.002", side: Side = Side.BUY) -> Intent:
    return Intent(intent_id=intent_id, symbol=BTC, side=side, quantity=D(qty))


def journal_types(system: System) -> list[str]:
    return [e.type for e in system.journal.store.entries()]


# ------------------------------------------------------------------------------ ASGI


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def asgi_call(
    app: OperatorApp,
    method: str,
    path: str,
    *,
    json_body: object = None,
    body: bytes | None = None,
    token: str | None = None,
    host: str | None = HOST,
    headers: tuple[tuple[str, str], ...] = (),
    content_type: str | None = "application/json",
    chunk_size: int | None = None,
) -> Reply:
    """One request through the app's ASGI interface, in process (no socket)."""
    if body is None:
        body = b"" if json_body is None else json.dumps(json_body).encode()
    raw_headers: list[tuple[bytes, bytes]] = []
    if host is not None:
        raw_headers.append((b"host", host.encode()))
    if token is not None:
        raw_headers.append((b"authorization", f"Bearer {token}".encode()))
    if content_type is not None and method == "POST":
        raw_headers.append((b"content-type", content_type.encode()))
    raw_headers.extend((k.encode(), v.encode()) for k, v in headers)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", PORT),
    }
    size = chunk_size or max(1, len(body))
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await trio.lowlevel.checkpoint()
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Reply(
        status=start["status"],
        headers={k.decode(): v.decode() for k, v in start["headers"]},
        body=payload,
    )
