"""The operator API over a real socket: hypercorn's trio worker on an ephemeral loopback port.

Real time (no MockClock): the System runs on the in-process exchange, the API is reached
with httpx over TCP, as ``curl`` or a script would.
"""

import functools
import os
from pathlib import Path

import httpx
import pytest
import trio

from scalper.operator.api import OperatorApiHandle, serve_operator_api
from scalper.operator.auth import TokenFileError
from scalper.system import System
from tests.operator.kit import make_venue, running

LIMIT_S = 15.0


async def start_api(nursery: trio.Nursery, system: System, token_path: Path) -> OperatorApiHandle:
    serve = functools.partial(serve_operator_api, system, token_path=token_path, port=0)
    handle: OperatorApiHandle = await nursery.start(serve)
    return handle


async def test_the_api_over_tcp(tmp_path: Path) -> None:
    token_path = tmp_path / "operator.token"
    with trio.fail_after(LIMIT_S):
        async with running(make_venue()) as system, trio.open_nursery() as nursery:
            handle = await start_api(nursery, system, token_path)
            token = token_path.read_text().strip()
            auth = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=handle.url, timeout=5.0) as http:
                health = await http.get("/health")
                status = await http.get("/status")
                metrics = await http.get("/metrics")
                rebinding = await http.get(
                    "/status", headers={"Host": f"evil.example:{handle.port}"}
                )
                unauthenticated = await http.post("/halt", json={"reason": "x"})
                halt = await http.post("/halt", json={"reason": "over tcp"}, headers=auth)
                bad = await http.post(
                    "/intents", content=b"{", headers={**auth, "Content-Type": "application/json"}
                )
            halts = dict(system.journal.state.halts)
            handle.stop()
    assert handle.port > 0
    assert handle.url == f"http://127.0.0.1:{handle.port}"
    assert os.stat(token_path).st_mode & 0o077 == 0
    assert health.status_code == 200
    assert health.json()["ok"] is True
    assert status.status_code == 200
    assert status.json()["posture"]["mode"] in ("GREEN", "YELLOW", "ORANGE", "RED")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"scalper_reconcile_runs_total" in metrics.content
    assert rebinding.status_code == 421
    assert unauthenticated.status_code == 401
    assert halt.status_code == 200
    assert halts["operator"] == "over tcp"
    assert bad.status_code == 400
    assert "server" not in health.headers  # no banner


async def test_a_non_loopback_bind_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    token_path = tmp_path / "operator.token"
    with trio.fail_after(LIMIT_S):
        async with running(make_venue()) as system:
            with pytest.raises(ValueError, match="loopback"):
                await serve_operator_api(system, token_path=token_path, host="0.0.0.0")
    assert not token_path.exists()


async def test_a_leaked_token_file_stops_the_api_from_starting(tmp_path: Path) -> None:
    token_path = tmp_path / "operator.token"
    token_path.write_text("A" * 43 + "\n")
    token_path.chmod(0o644)
    with trio.fail_after(LIMIT_S):
        async with running(make_venue()) as system:
            with pytest.raises(TokenFileError, match="group or others"):
                await serve_operator_api(system, token_path=token_path, port=0)
