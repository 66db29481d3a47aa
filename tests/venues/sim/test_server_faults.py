"""Fault kinds at the wire: what a Binance client sees over the loopback server.

Complements ``test_server.py`` / ``test_server_rules.py``, which cover the other kinds. Each
test checks the bytes on the wire (HTTP status and body, WebSocket frames and their order
and timing) against the engine's history, which is the ground truth: an "unknown" answer
must leave exactly the engine state the fault kind promises (I7), and a misbehaving stream
must never lose a fill that REST can still show (I10).

The server runs on trio's clock, so frame arrival times measured with
``trio.current_time`` are on the same clock as the fault windows and holds.
"""

import re
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from scalper.core.errors import Operation
from scalper.core.model import VenueOrderStatus
from scalper.core.types import Side
from scalper.venues.binance import wire
from scalper.venues.sim.faults import FaultKind, FaultSpec
from tests.venues.sim.test_server import (
    BTC,
    ONE_WAY,
    Client,
    error_code,
    market,
    server_config,
    start,
    ws_handshake,
)

UNKNOWN_MSG = "Unknown error, please check your request or try again later."
BUS_MSG = "An unexpected response was received from the message bus. Execution status unknown."
BACKEND_MSG = (
    "Timeout waiting for response from backend server. "
    "Send status unknown; execution status unknown."
)

# A frame reduced to what identifies it: ("ACCOUNT_UPDATE",) or
# ("ORDER_TRADE_UPDATE", execution type, order id).
Tag = tuple[str, ...]


def tag(message: str | bytes) -> Tag:
    event = wire.parse_user_message(message)
    if isinstance(event, wire.OrderTradeUpdate):
        return ("ORDER_TRADE_UPDATE", event.execution_type.value, event.order.order_id)
    assert isinstance(event, wire.AccountUpdate), event
    return ("ACCOUNT_UPDATE",)


async def receive(ws: WebSocketConnection, count: int, limit_s: float = 2.0) -> list[str]:
    with trio.fail_after(limit_s):
        return [str(await ws.get_message()) for _ in range(count)]


async def silent_for(ws: WebSocketConnection, seconds: float) -> bool:
    """True if no frame arrives within ``seconds``."""
    with trio.move_on_after(seconds) as quiet:
        await ws.get_message()
    return quiet.cancelled_caught


async def place_market(c: Client, coid: str) -> str:
    placed = wire.parse_order(
        await c.ok(wire.new_order(market(Side.BUY, coid), position_mode=ONE_WAY))
    )
    return placed.order_id


async def sleep_past(c: Client, server_time: float) -> None:
    """Sleep until the server clock (trio's clock, no admin jumps here) passes ``server_time``."""
    await trio.sleep(max(0.0, server_time - c.handle.app.now()) + 0.01)
    assert c.handle.app.now() >= server_time


async def schedule_now(c: Client, spec: FaultSpec) -> dict[str, Any]:
    """Install ``spec`` with its window relative to the server's now; return the answer."""
    answer = await c.admin("PUT", "/faults", {"schedule": [spec.to_dict()], "relative": True})
    assert answer.status_code == 200, answer.text
    described: dict[str, Any] = answer.json()
    return described


def expected_order_tags(order_id: str) -> list[Tag]:
    """The engine's own order of a filled market order's frames."""
    return [
        ("ORDER_TRADE_UPDATE", "NEW", order_id),
        ("ORDER_TRADE_UPDATE", "TRADE", order_id),
        ("ACCOUNT_UPDATE",),
    ]


# --------------------------------------------------------------------------- request faults


async def test_unknown_503_not_placed_answers_unknown_and_executes_nothing(nursery: trio.Nursery):
    spec = FaultSpec(0, 1e9, FaultKind.UNKNOWN_503_NOT_PLACED, operations={"create"})
    c = await start(nursery, server_config(faults=(spec,)))

    answer = await c.send(wire.new_order(market(Side.BUY, "not-placed"), position_mode=ONE_WAY))

    assert answer.status_code == 503
    assert wire.loads(answer.content) == {"code": -1000, "msg": UNKNOWN_MSG}
    info = wire.map_error(answer.status_code, answer.content, operation=Operation.CREATE)
    assert info.verdict.error_class.value == "AMBIGUOUS"  # the client cannot tell: I7
    # Same answer as UNKNOWN_503_PLACED, but here the engine never saw the order.
    assert c.handle.engine.history.accepted() == ()
    assert c.handle.engine.position_qty(BTC) == 0
    lookup = await c.send(wire.query_order(BTC, client_order_id="not-placed"))
    assert error_code(lookup) == -2013
    assert [e.kind for e in c.handle.app.faults.injected] == [FaultKind.UNKNOWN_503_NOT_PLACED]


@pytest.mark.parametrize(
    ("kind", "status", "code", "message"),
    [
        (FaultKind.ERROR_1006, 503, -1006, BUS_MSG),
        (FaultKind.ERROR_1007, 408, -1007, BACKEND_MSG),
    ],
)
@pytest.mark.parametrize("executed", [True, False])
async def test_execution_status_unknown_errors_execute_iff_asked(
    nursery: trio.Nursery,
    kind: FaultKind,
    status: int,
    code: int,
    message: str,
    executed: bool,
):
    spec = FaultSpec(0, 1e9, kind, params={"executed": executed}, operations={"create"})
    c = await start(nursery, server_config(faults=(spec,)))

    answer = await c.send(wire.new_order(market(Side.BUY, "unknown-1"), position_mode=ONE_WAY))

    assert answer.status_code == status
    assert wire.loads(answer.content) == {"code": code, "msg": message}
    assert error_code(answer) == code
    info = wire.map_error(answer.status_code, answer.content, operation=Operation.CREATE)
    assert info.verdict.error_class.value == "AMBIGUOUS"
    accepted = [r.client_order_id for r in c.handle.engine.history.accepted()]
    assert accepted == (["unknown-1"] if executed else [])
    # Querying by client id resolves the ambiguity either way (the fault is on create only).
    lookup = await c.send(wire.query_order(BTC, client_order_id="unknown-1"))
    if executed:
        assert wire.parse_order(wire.loads(lookup.content)).status is VenueOrderStatus.FILLED
        assert c.handle.engine.position_qty(BTC) > 0
    else:
        assert error_code(lookup) == -2013
        assert c.handle.engine.position_qty(BTC) == 0


# --------------------------------------------------------------------------- stream faults


async def test_stream_duplicate_delivers_each_frame_twice_in_a_row(nursery: trio.Nursery):
    spec = FaultSpec(0, 1e9, FaultKind.STREAM_DUPLICATE, params={"copies": 1})
    c = await start(nursery, server_config(faults=(spec,)))
    key = wire.parse_listen_key(await c.ok(wire.create_listen_key()))
    async with open_websocket_url(wire.user_stream_url(c.handle.ws_url, key)) as ws:
        order_id = await place_market(c, "dup-1")
        frames = await receive(ws, 6)
        assert await silent_for(ws, 0.15)  # exactly one extra copy each, no more

    assert frames[0::2] == frames[1::2]  # byte-identical copies, back to back
    assert [tag(f) for f in frames[0::2]] == expected_order_tags(order_id)
    trades = [wire.parse_user_message(f) for f in frames[2:4]]
    fills = [t.fill for t in trades if isinstance(t, wire.OrderTradeUpdate)]
    # The same fill twice (same trade id): a consumer must dedupe by key, not count (I10).
    assert fills == [*c.handle.engine.history.fills(BTC)] * 2
    assert len(c.handle.engine.history.fills(BTC)) == 1


_HELD = re.compile(
    r"^held event \d+ (?:ORDER_TRADE_UPDATE (\w+) order (\S+)|ACCOUNT_UPDATE).* for ([\d.]+)s$"
)


async def test_stream_reorder_delivers_frames_by_release_time_not_engine_order(
    nursery: trio.Nursery,
):
    spec = FaultSpec(0, 1e9, FaultKind.STREAM_REORDER, params={"max_delay_s": 0.3})
    # seed=1 draws holds whose order differs from the engine's (asserted below, not assumed).
    c = await start(nursery, server_config(faults=(spec,), seed=1))
    key = wire.parse_listen_key(await c.ok(wire.create_listen_key()))
    async with open_websocket_url(wire.user_stream_url(c.handle.ws_url, key)) as ws:
        order_id = await place_market(c, "shuffled")
        received = [tag(f) for f in await receive(ws, 3)]
        assert await silent_for(ws, 0.1)

    # The injection log, in engine order, says how long each event was held.
    holds: list[tuple[Tag, float]] = []
    for entry in c.handle.app.faults.injected:
        assert entry.kind is FaultKind.STREAM_REORDER
        match = _HELD.match(entry.detail)
        assert match is not None, entry.detail
        execution, oid, hold = match.groups()
        event_tag = (
            ("ACCOUNT_UPDATE",) if execution is None else ("ORDER_TRADE_UPDATE", execution, oid)
        )
        holds.append((event_tag, float(hold)))
    engine_order = [t for t, _ in holds]
    assert engine_order == expected_order_tags(order_id)
    assert all(0.0 <= h < 0.3 for _, h in holds)
    assert received == [t for t, _ in sorted(holds, key=lambda th: th[1])]
    assert received != engine_order  # really out of order: e.g. the TRADE before its NEW
    assert sorted(received) == sorted(engine_order)  # nothing lost, nothing invented


async def test_stream_delay_holds_frames_for_the_delay_and_later_events_overtake(
    nursery: trio.Nursery,
):
    c = await start(nursery, server_config())
    key = wire.parse_listen_key(await c.ok(wire.create_listen_key()))
    async with open_websocket_url(wire.user_stream_url(c.handle.ws_url, key)) as ws:
        delay = 0.6
        spec = FaultSpec(0, 0.4, FaultKind.STREAM_DELAY, params={"delay_s": delay})
        window_end = (await schedule_now(c, spec))["schedule"][0]["end"]
        sent_at = trio.current_time()
        held_id = await place_market(c, "held")  # inside the window: held for `delay`
        assert await silent_for(ws, 0.2)  # nothing arrives before the delay is up
        await sleep_past(c, window_end)
        fresh_id = await place_market(c, "fresh")  # after the window: not held

        first = await receive(ws, 3)
        fresh_arrived = trio.current_time()
        second = await receive(ws, 3)
        held_arrived = trio.current_time()

    assert [tag(f) for f in first] == expected_order_tags(fresh_id)  # overtook the held ones
    assert [tag(f) for f in second] == expected_order_tags(held_id)
    assert fresh_arrived - sent_at < delay
    assert held_arrived - sent_at >= delay  # released only once the hold is over
    assert [e.kind for e in c.handle.app.faults.injected] == [FaultKind.STREAM_DELAY] * 3


@pytest.mark.parametrize("replace_with", ["PUT", "DELETE"])
async def test_replacing_the_schedule_keeps_held_frames_in_flight_and_loses_none(
    nursery: trio.Nursery, replace_with: str
):
    c = await start(nursery, server_config())
    key = wire.parse_listen_key(await c.ok(wire.create_listen_key()))
    async with open_websocket_url(wire.user_stream_url(c.handle.ws_url, key)) as ws:
        delay = 0.6
        await schedule_now(c, FaultSpec(0, 60, FaultKind.STREAM_DELAY, params={"delay_s": delay}))
        held_id = await place_market(c, "held")  # its three frames are now in flight
        assert await silent_for(ws, 0.15)

        # A new schedule mid-flight: a later, unrelated fault, or none at all.
        if replace_with == "PUT":
            later = FaultSpec(30, 60, FaultKind.STREAM_DROP)
            assert (await schedule_now(c, later))["schedule"][0]["kind"] == "STREAM_DROP"
        else:
            cleared = await c.admin("DELETE", "/faults")
            assert cleared.status_code == 200, cleared.text
            assert cleared.json()["schedule"] == []
        fresh_id = await place_market(c, "fresh")  # under the new schedule: not held

        first = [tag(f) for f in await receive(ws, 3)]
        second = [tag(f) for f in await receive(ws, 3)]
        held_arrived = c.handle.app.now()
        assert await silent_for(ws, 0.3)  # nothing twice, nothing invented

    # The holds already decided stand: the fresh frames overtake, the held ones arrive once,
    # in engine order, no earlier than the injection log said they would.
    assert first == expected_order_tags(fresh_id)
    assert second == expected_order_tags(held_id)
    log = c.handle.app.faults.injected
    assert [e.kind for e in log] == [FaultKind.STREAM_DELAY] * 3
    assert all(e.detail.startswith("held event ") for e in log)
    assert held_arrived >= max(e.at for e in log) + delay
    # Every event the engine produced reached the client, and only once (I10).
    assert len(c.handle.engine.events_since(0)) == len(first + second) == 6


async def test_stream_disconnect_closes_loses_window_events_and_rest_keeps_the_fill(
    nursery: trio.Nursery,
):
    c = await start(nursery, server_config())
    key = wire.parse_listen_key(await c.ok(wire.create_listen_key()))
    url = wire.user_stream_url(c.handle.ws_url, key)
    async with open_websocket_url(url) as ws:
        before_id = await place_market(c, "before")
        assert [tag(f) for f in await receive(ws, 3)] == expected_order_tags(before_id)

        spec = FaultSpec(0, 0.5, FaultKind.STREAM_DISCONNECT)
        window_end = (await schedule_now(c, spec))["schedule"][0]["end"]
        await place_market(c, "in-window")  # its events fall into the outage
        # The server closes the socket; none of the window's frames comes first.
        with trio.fail_after(1), pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
        # trio-websocket's client never closes its socket after a server-initiated close.
        await ws._stream.aclose()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1000
    assert c.handle.app.stream_count == 0

    # Reconnects are refused while the window lasts.
    assert c.handle.app.now() < window_end
    status, _body = await ws_handshake(c, f"/ws/{key}")
    assert status == 503

    # The fill the stream never delivered is on REST (the backfill path, I10).
    trades = wire.parse_user_trades(await c.ok(wire.user_trades(BTC)))
    assert [t.key for t in trades] == [f.key for f in c.handle.engine.history.fills(BTC)]
    assert len(trades) == 2
    in_window = next(o for o in c.handle.engine.orders(BTC) if o.client_order_id == "in-window")
    assert in_window.order_id in {t.order_id for t in trades}

    # After the window a new connection works and starts from now: no replay of the lost ones.
    await sleep_past(c, window_end)
    async with open_websocket_url(url) as ws:
        after_id = await place_market(c, "after")
        assert [tag(f) for f in await receive(ws, 3)] == expected_order_tags(after_id)
        assert await silent_for(ws, 0.1)
    log = c.handle.app.faults.injected
    assert [e.kind for e in log] == [FaultKind.STREAM_DISCONNECT]
    assert log[0].at < window_end
