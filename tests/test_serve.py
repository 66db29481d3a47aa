"""``serve`` end to end over real sockets: the loopback simulator, the Binance adapter, the
operator API, a file journal; then a restart on the same journal.

Real time: the demo pace gets entries going within seconds; every wait is bounded.
"""

from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from scalper.serve import ServeOptions, VenueChoice, restart_reason_for, serve
from scalper.store.store import OpenMode, Store
from scalper.system import System

LIMIT_S = 45.0


async def _status(client: httpx.AsyncClient, url: str) -> dict:  # type: ignore[type-arg]
    answer = await client.get(f"{url}/status")
    assert answer.status_code == 200
    data: dict = answer.json()  # type: ignore[type-arg]
    return data


async def _run_until(var_dir: Path, predicate_name: str) -> tuple[str, list[str], dict]:  # type: ignore[type-arg]
    options = ServeOptions(var_dir=var_dir, http_port=0, console=False)
    said: list[str] = []
    async with trio.open_nursery() as nursery:
        system: System = await nursery.start(
            lambda task_status: serve(options, env={}, say=said.append, task_status=task_status)
        )
        url = said[0].split("operator API ")[1].split()[0]
        async with httpx.AsyncClient(timeout=5.0) as client:
            with trio.fail_after(LIMIT_S):
                while True:
                    doc = await _status(client, url)
                    if (
                        predicate_name == "entry_sent"
                        and any(o["lane"] == "entry" for o in doc["open_orders"])
                    ) or doc["counters"].get("fills", 0) > 0:
                        break
                    if predicate_name == "replayed" and doc["journal_entries"] > 0:
                        break
                    await trio.sleep(0.25)
            metrics = (await client.get(f"{url}/metrics")).text
            health = (await client.get(f"{url}/health")).json()
        system.stop("test_done")
    families = {f.name for f in text_string_to_metric_families(metrics)}
    assert "scalper_reconcile_runs" in families
    assert health["ok"] is True
    return system.stop_reason, said, doc


async def test_serve_trades_on_the_simulator_and_restarts_from_its_journal(tmp_path) -> None:
    reason, said, doc = await _run_until(tmp_path, "entry_sent")
    assert reason == "test_done"
    assert "(start, incarnation 1)" in said[0]
    assert doc["posture"]["mode"] in ("GREEN", "YELLOW")
    store = Store.open(str(tmp_path / "scalper.db"), mode=OpenMode.READ_ONLY)
    try:
        types = [e.type for e in store.entries()]
        assert restart_reason_for(store) == "restart"
    finally:
        store.close()
    assert types[0] == "system_started"
    assert types[-1] == "system_stopped"
    assert "startup_phase" in types
    assert "order_sending" in types
    assert (tmp_path / "operator.token").stat().st_mode & 0o077 == 0

    reason, said, doc = await _run_until(tmp_path, "replayed")
    assert "(restart, incarnation 2)" in said[0]
    assert doc["incarnation"] == 2


def test_options_refuse_contradictions() -> None:
    with pytest.raises(ValueError, match="both --rest-url and --ws-url"):
        ServeOptions(venue=VenueChoice.CUSTOM, rest_url="http://x")
    with pytest.raises(ValueError, match="custom venue"):
        ServeOptions(venue=VenueChoice.BINANCE, rest_url="http://x", ws_url="ws://x")
    with pytest.raises(ValueError, match="http-port"):
        ServeOptions(http_port=70000)
