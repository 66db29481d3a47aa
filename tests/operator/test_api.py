"""The operator API driven through its ASGI interface, in process, over the real System.

Every endpoint, every refusal on the way in (Host, route, token, content type, size,
JSON, fields), and the operator's real situations: halting before news, resuming too
early, submitting an exit while halted.
"""

import json

import pytest
import trio

from scalper.core.types import Side
from scalper.messages import InvalidInput, decode_event
from scalper.operator.api import (
    ApiRequest,
    OperatorApp,
    allowed_hosts_for,
    check_bind_host,
)
from scalper.system import System
from scalper.venues.sim.faults import FaultSpec
from tests.operator.kit import (
    BTC,
    HOST,
    PORT,
    D,
    asgi_call,
    journal_types,
    make_venue,
    ready_for_entries,
    running,
    until,
)
from tests.venues.sim.simkit import limit, market

TOKEN = "operator-test-token-0123456789abcdefghijklmnopq"


def app_for(system: System, **kwargs: object) -> OperatorApp:
    return OperatorApp(
        system,
        token=TOKEN,
        allowed_hosts=allowed_hosts_for(PORT),
        **kwargs,  # type: ignore[arg-type]
    )


def intent_body(intent_id: str, **fields: object) -> dict[str, object]:
    intent: dict[str, object] = {
        "intent_id": intent_id,
        "symbol": BTC,
        "side": "BUY",
        "quantity": "0.002",
    }
    intent.update(fields)
    return {"intent": intent, "reference_price": "60000"}


def invalid_inputs(system: System) -> list[InvalidInput]:
    out = []
    for e in system.journal.store.entries():
        if e.type == "invalid_input":
            event = decode_event(e.type, e.payload)
            assert isinstance(event, InvalidInput)
            out.append(event)
    return out


# ------------------------------------------------------------------------------ reads


async def test_health_status_and_metrics(autojump_clock) -> None:
    async with running(make_venue()) as system:
        app = app_for(system)
        health = await asgi_call(app, "GET", "/health")
        status = await asgi_call(app, "GET", "/status")
        metrics = await asgi_call(app, "GET", "/metrics")
        journal = system.journal.store.last_entry()
    assert health.status == 200
    assert health.json() == {"ok": True, "posture": "ORANGE", "halted": False}
    assert health.headers["content-type"] == "application/json"
    assert health.headers["cache-control"] == "no-store"
    assert status.status == 200
    doc = status.json()
    assert doc["posture"]["mode"] == "ORANGE"
    assert journal is not None
    assert doc["journal_entries"] == journal.seq
    assert metrics.status == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"scalper_posture_level 2.0" in metrics.body


async def test_health_is_503_once_the_system_stopped(autojump_clock) -> None:
    async with running(make_venue()) as system:
        app = app_for(system)
    assert system.stopped.is_set()
    health = await asgi_call(app, "GET", "/health")
    assert health.status == 503
    assert health.json()["ok"] is False
    assert health.json()["stop_reason"] == "embedding_closed"
    # And nothing can be commanded of a stopped system.
    refused = await asgi_call(app, "POST", "/halt", json_body={"reason": "x"}, token=TOKEN)
    assert refused.status == 503


# ------------------------------------------------------------------------------ the way in


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (HOST, 200),
        (f"localhost:{PORT}", 200),
        (f"LOCALHOST:{PORT}", 200),
        (f"[::1]:{PORT}", 200),
        ("evil.example:8765", 421),  # DNS rebinding: the attacker's name, our address
        (f"127.0.0.1:{PORT + 1}", 421),
        ("127.0.0.1", 421),
        (None, 400),
    ],
)
async def test_only_loopback_authorities_are_served(autojump_clock, host, status) -> None:
    async with running(make_venue()) as system:
        reply = await asgi_call(app_for(system), "GET", "/status", host=host)
    assert reply.status == status


async def test_a_repeated_host_header_is_refused(autojump_clock) -> None:
    async with running(make_venue()) as system:
        reply = await asgi_call(
            app_for(system), "GET", "/health", headers=(("host", "evil.example:8765"),)
        )
    assert reply.status == 400


async def test_wrong_host_is_refused_before_authentication_and_nothing_happens(
    autojump_clock,
) -> None:
    async with running(make_venue()) as system:
        app = app_for(system)
        reply = await asgi_call(
            app, "POST", "/halt", json_body={"reason": "x"}, token=TOKEN, host="evil.example:8765"
        )
        halted = system.journal.state.halted
    assert reply.status == 421
    assert not halted


async def test_routes_and_methods(autojump_clock) -> None:
    async with running(make_venue()) as system:
        app = app_for(system)
        missing = await asgi_call(app, "GET", "/nope")
        wrong = await asgi_call(app, "GET", "/halt")
        also_wrong = await asgi_call(app, "POST", "/status", token=TOKEN, json_body={})
    assert missing.status == 404
    assert wrong.status == 405
    assert wrong.headers["allow"] == "POST"
    assert also_wrong.status == 405


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x"],
)
async def test_mutations_need_the_token_and_unauthenticated_requests_leave_no_trace(
    autojump_clock, authorization
) -> None:
    async with running(make_venue()) as system:
        app = app_for(system)
        headers = () if authorization is None else (("authorization", authorization),)
        before = len(journal_types(system))
        halt = await asgi_call(app, "POST", "/halt", json_body={"reason": "x"}, headers=headers)
        garbage = await asgi_call(app, "POST", "/intents", body=b"{not json", headers=headers)
        state = system.journal.state
        halted = state.halted
        added = journal_types(system)[before:]
    assert halt.status == 401
    assert halt.headers["www-authenticate"].startswith("Bearer")
    assert garbage.status == 401
    assert not halted
    assert "invalid_input" not in added
    assert "halt_changed" not in added


async def test_two_authorization_headers_are_refused(autojump_clock) -> None:
    async with running(make_venue()) as system:
        reply = await asgi_call(
            app_for(system),
            "POST",
            "/halt",
            json_body={"reason": "x"},
            token=TOKEN,
            headers=(("authorization", "Bearer other"),),
        )
    assert reply.status == 401


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error", "field"),
    [
        (b"{not json", "application/json", 400, "bad_json", None),
        (b"[1, 2]", "application/json", 400, "bad_json", None),
        (b'{"reason": NaN}', "application/json", 400, "bad_json", None),
        (b'{"reason": "a", "reason": "b"}', "application/json", 400, "bad_json", None),
        (b"\xff\xfe", "application/json", 400, "bad_json", None),
        (b'{"reason": "x"}', "text/plain", 415, "unsupported_media_type", None),
        (b"{}", "application/json", 400, "invalid_field", "reason"),
        (b'{"reason": ""}', "application/json", 400, "invalid_field", "reason"),
        (b'{"reason": 5}', "application/json", 400, "invalid_field", "reason"),
        (b'{"reason": "x", "force": true}', "application/json", 400, "invalid_field", "force"),
        (b'{"reason": "line\\u001bbreak"}', "application/json", 400, "invalid_field", "reason"),
    ],
)
async def test_bad_halt_bodies_are_400_and_journaled(
    autojump_clock, body, content_type, status, error, field
) -> None:
    async with running(make_venue()) as system:
        reply = await asgi_call(
            app_for(system), "POST", "/halt", body=body, content_type=content_type, token=TOKEN
        )
        halted = system.journal.state.halted
        journaled = invalid_inputs(system)
    assert reply.status == status
    answer = reply.json()
    assert answer["error"] == error
    if field is not None:
        assert answer["field"] == field
        assert field in answer["detail"]
    assert not halted
    [bad] = journaled
    assert bad.source == "operator_api"
    assert bad.error.startswith("POST /halt: ")
    assert bad.raw == body.decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"quantity": "-1"}, "intent.quantity", "positive"),
        ({"quantity": 0.002}, "intent.quantity", "decimal string"),  # a float lost precision
        ({"side": "BUYX"}, "intent.side", "BUYX"),
        ({"bogus": 1}, "intent.bogus", "unknown field"),
        ({"order_type": "LIMIT"}, "intent.price", "required"),
        ({"kind": "EXIT"}, "intent.kind", "reduce-only"),
        ({"symbol": "btc/usdt"}, "intent.symbol", "upper-case"),
        ({"reduce_only": "yes"}, "intent.reduce_only", "true or false"),
    ],
)
async def test_bad_intent_fields_are_named(autojump_clock, fields, field, words) -> None:
    async with running(make_venue()) as system:
        body = intent_body("bad1", **fields)
        reply = await asgi_call(app_for(system), "POST", "/intents", json_body=body, token=TOKEN)
        journaled = invalid_inputs(system)
        known = "bad1" in system.journal.state.intents
    assert reply.status == 400
    answer = reply.json()
    assert answer["field"] == field
    assert words in answer["detail"]
    assert not known  # never reached the Router
    [bad] = journaled
    assert bad.intent_id == "bad1"  # linked to the intent it meant to be
    assert field in bad.error


async def test_bad_submission_fields_outside_the_intent(autojump_clock) -> None:
    async with running(make_venue()) as system:
        app = app_for(system)
        missing = await asgi_call(app, "POST", "/intents", json_body={}, token=TOKEN)
        conf = await asgi_call(
            app, "POST", "/intents", json_body={**intent_body("c"), "confidence": 1.5}, token=TOKEN
        )
        price = await asgi_call(
            app,
            "POST",
            "/intents",
            json_body={**intent_body("p"), "reference_price": "0"},
            token=TOKEN,
        )
        wrong_kind = await asgi_call(
            app, "POST", "/intents", json_body={"intent": "e1"}, token=TOKEN
        )
    assert (missing.status, missing.json()["field"]) == (400, "intent")
    assert "required" in missing.json()["detail"]
    assert (conf.status, conf.json()["field"]) == (400, "confidence")
    assert (price.status, price.json()["field"]) == (400, "reference_price")
    assert (wrong_kind.status, wrong_kind.json()["field"]) == (400, "intent")


async def test_bodies_over_the_limit_are_refused_while_reading(autojump_clock) -> None:
    async with running(make_venue()) as system:
        app = app_for(system, max_body_bytes=1024)
        big = json.dumps({"reason": "x" * 2000}).encode()
        # No Content-Length: the limit is enforced on the chunks as they arrive.
        chunked = await asgi_call(app, "POST", "/halt", body=big, token=TOKEN, chunk_size=256)
        declared = await asgi_call(
            app,
            "POST",
            "/halt",
            body=b"{}",
            token=TOKEN,
            headers=(("content-length", "999999"),),
        )
        # Without the token an oversized body is 401 like any other, and leaves no trace.
        anonymous = await asgi_call(app, "POST", "/halt", body=big, chunk_size=256)
        halted = system.journal.state.halted
        journaled = invalid_inputs(system)
    assert chunked.status == 413
    assert declared.status == 413
    assert anonymous.status == 401
    assert not halted
    assert len(journaled) == 2
    assert all("1024-byte limit" in j.error for j in journaled)
    assert all(j.raw == "" for j in journaled)  # an oversized body is never buffered


async def test_deeply_nested_json_is_a_400_not_a_crash(autojump_clock) -> None:
    async with running(make_venue()) as system:
        app = app_for(system)
        deep = b"[" * 30_000 + b"]" * 30_000  # within the 64 KiB limit
        reply = await asgi_call(app, "POST", "/intents", body=deep, token=TOKEN)
        health = await asgi_call(app, "GET", "/health")
    assert reply.status == 400
    assert reply.json()["error"] == "bad_json"
    assert health.status == 200


# ------------------------------------------------------------------------------ commands


async def test_halt_then_resume_refused_then_accepted(autojump_clock) -> None:
    # Someone trades BTC by hand on the exchange while the user stream drops events: the
    # journal does not know the position, reconcile finds an orphan, the posture escalates.
    # The operator halts; a resume is refused with the reasons until the belief is repaired.
    venue = make_venue(FaultSpec(start=20.0, end=60.0, kind="STREAM_DROP"))
    async with running(venue) as system:
        app = app_for(system)
        await trio.sleep(30.0)
        halt = await asgi_call(
            app, "POST", "/halt", json_body={"reason": "manual trade on the venue"}, token=TOKEN
        )
        venue.engine.create_order(market(Side.BUY, "0.003", "manual-1"), trio.current_time())
        state = system.journal.state
        await until(lambda: state.last_reconcile is not None and not state.last_reconcile.clean)
        refused = await asgi_call(app, "POST", "/resume", json_body={"reason": "ok"}, token=TOKEN)
        halted_after_refusal = state.halted
        accepted = None
        with trio.fail_after(900):
            while accepted is None:
                await trio.sleep(5.0)
                reply = await asgi_call(
                    app, "POST", "/resume", json_body={"reason": "reconciled"}, token=TOKEN
                )
                if reply.status == 200:
                    accepted = reply
                else:
                    assert reply.status == 409, reply.json()
                    assert reply.json()["blocking"], "a refusal names what blocks it"
        halts = dict(state.halts)
        resumes = [
            json.loads(e.payload)
            for e in system.journal.store.entries()
            if e.type == "halt_changed" and not json.loads(e.payload)["halted"]
        ]
    assert halt.status == 200
    assert halt.json()["halts"]["operator"] == "manual trade on the venue"
    assert refused.status == 409
    assert refused.json()["resumed"] is False
    assert "reconcile_not_clean" in refused.json()["blocking"]
    assert halted_after_refusal
    assert accepted.json() == {"blocking": [], "halted": False, "halts": {}, "resumed": True}
    assert halts == {}
    # The operator's reason is what the journal records for lifting the operator halt.
    assert {"halted": False, "reason": "reconciled", "source": "operator"} in resumes


async def test_intents_accepted_refused_and_exits_pass_a_halt(autojump_clock) -> None:
    async with running(make_venue()) as system:
        app = app_for(system)
        # Posture boots ORANGE: an entry is refused by the system's state.
        early = await asgi_call(app, "POST", "/intents", json_body=intent_body("op0"), token=TOKEN)
        await ready_for_entries(system)
        accepted = await asgi_call(
            app, "POST", "/intents", json_body=intent_body("op1"), token=TOKEN
        )
        duplicate = await asgi_call(
            app, "POST", "/intents", json_body=intent_body("op1"), token=TOKEN
        )
        no_price = await asgi_call(
            app,
            "POST",
            "/intents",
            json_body={"intent": intent_body("op2")["intent"]},
            token=TOKEN,
        )
        await until(lambda: system.journal.state.position(BTC) == D("0.002"))
        await asgi_call(app, "POST", "/halt", json_body={"reason": "flatten"}, token=TOKEN)
        entry_halted = await asgi_call(
            app, "POST", "/intents", json_body=intent_body("op3"), token=TOKEN
        )
        exit_body = intent_body("op4", side="SELL", kind="EXIT", reduce_only=True)
        exit_ = await asgi_call(app, "POST", "/intents", json_body=exit_body, token=TOKEN)
        await until(lambda: system.journal.state.position(BTC) == 0)
        record = system.journal.state.intents["op1"]
        sources = [
            json.loads(e.payload)["source"]
            for e in system.journal.store.entries()
            if e.type == "intent_accepted" and e.intent_id in ("op1", "op4")
        ]
    assert (early.status, early.json()["reason"]) == (409, "posture_blocks_entries")
    assert accepted.status == 202
    assert accepted.json() == {"intent_id": "op1", "accepted": True, "reason": "", "detail": ""}
    assert (duplicate.status, duplicate.json()["reason"]) == (409, "duplicate_intent")
    assert (no_price.status, no_price.json()["reason"]) == (422, "no_reference_price")
    assert (entry_halted.status, entry_halted.json()["reason"]) == (409, "halted")
    # Exits are never gated (I1): the operator can flatten while halted.
    assert exit_.status == 202, exit_.json()
    assert record.intent is not None
    assert record.intent.quantity == D("0.002")
    assert sources == ["operator", "operator"]


# ------------------------------------------------------------------------------ set-up


def test_bind_host_must_be_loopback_unless_allowed() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2", "[::1]"):
        check_bind_host(host)
    for host in ("0.0.0.0", "192.168.1.10", "example.com", "::"):
        with pytest.raises(ValueError, match="host"):
            check_bind_host(host)
        check_bind_host(host, allow_non_loopback=True)
    with pytest.raises(ValueError, match="host"):
        check_bind_host("")


def test_allowed_hosts() -> None:
    assert allowed_hosts_for(9000) == {"127.0.0.1:9000", "localhost:9000", "[::1]:9000"}
    wide = allowed_hosts_for(9000, "0.0.0.0", ("Ops.Example:9000",))
    assert "ops.example:9000" in wide
    assert "0.0.0.0:9000" not in wide


async def test_the_app_refuses_everything_until_its_hosts_are_set(autojump_clock) -> None:
    async with running(make_venue()) as system:
        app = OperatorApp(system, token=TOKEN)
        before = await app.handle(ApiRequest("GET", "/health", (("host", HOST),)))
        app.set_allowed_hosts(allowed_hosts_for(PORT))
        after = await app.handle(ApiRequest("GET", "/health", (("host", HOST),)))
    assert before.status == 421
    assert after.status == 200


# ------------------------------------------------------------------------------ unfreeze, cancel


def _resting_entry_body(intent_id: str) -> dict[str, object]:
    """A limit buy far below the market: it rests until cancelled."""
    return intent_body(intent_id, order_type="LIMIT", price="50000")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/unfreeze", {"symbol": BTC, "reason": "x"}),
        ("/cancel", {"intent_id": "op1", "reason": "x"}),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Bearer {TOKEN}x"])
async def test_unfreeze_and_cancel_need_the_token(
    autojump_clock, path, body, authorization
) -> None:
    async with running(make_venue()) as system:
        app = app_for(system)
        headers = () if authorization is None else (("authorization", authorization),)
        before = len(journal_types(system))
        reply = await asgi_call(app, "POST", path, json_body=body, headers=headers)
        added = journal_types(system)[before:]
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    for kind in ("invalid_input", "symbol_frozen", "cancel_requested"):
        assert kind not in added


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        ("/unfreeze", {"reason": "x"}, "symbol", "required"),
        ("/unfreeze", {"symbol": BTC}, "reason", "required"),
        ("/unfreeze", {"symbol": "btcusdt", "reason": "x"}, "symbol", "upper-case"),
        ("/unfreeze", {"symbol": "", "reason": "x"}, "symbol", "upper-case"),
        ("/unfreeze", {"symbol": "B" * 33, "reason": "x"}, "symbol", "upper-case"),
        ("/unfreeze", {"symbol": 5, "reason": "x"}, "symbol", ""),
        ("/unfreeze", {"symbol": BTC, "reason": " "}, "reason", "empty"),
        ("/unfreeze", {"symbol": BTC, "reason": "x", "force": True}, "force", "unknown"),
        ("/cancel", {"reason": "x"}, "intent_id", "required"),
        ("/cancel", {"intent_id": "op1"}, "reason", "required"),
        ("/cancel", {"intent_id": "", "reason": "x"}, "intent_id", "empty"),
        ("/cancel", {"intent_id": "a\u0000b", "reason": "x"}, "intent_id", "control"),
        ("/cancel", {"intent_id": "i" * 129, "reason": "x"}, "intent_id", "128"),
        ("/cancel", {"intent_id": ["op1"], "reason": "x"}, "intent_id", ""),
        ("/cancel", {"intent_id": "op1", "reason": "x", "all": True}, "all", "unknown"),
        # A lone surrogate survives JSON decoding but no journal column can store it.
        ("/cancel", {"intent_id": "\ud800", "reason": "x"}, "intent_id", "surrogate"),
        ("/unfreeze", {"symbol": BTC, "reason": "\ud800"}, "reason", "surrogate"),
    ],
)
async def test_bad_unfreeze_and_cancel_bodies_name_the_field(
    autojump_clock, path, body, field, words
) -> None:
    async with running(make_venue()) as system:
        before = len(journal_types(system))
        reply = await asgi_call(app_for(system), "POST", path, json_body=body, token=TOKEN)
        added = journal_types(system)[before:]
        journaled = invalid_inputs(system)
    answer = reply.json()
    assert reply.status == 400
    assert (answer["error"], answer["field"]) == ("invalid_field", field)
    assert words in answer["detail"]
    # Refused before reaching the System: the refusal is journaled, nothing is done.
    assert added.count("invalid_input") == 1
    assert "symbol_frozen" not in added
    assert "cancel_requested" not in added
    [bad] = journaled
    assert bad.error.startswith(f"POST {path}: ")
    intent_id = body.get("intent_id")
    # An id with control characters is not copied into the journal (it is the bad input).
    usable = isinstance(intent_id, str) and intent_id.isprintable()
    assert bad.intent_id == (intent_id[:128] if usable else "")


async def test_cancel_rests_nothing_twice_and_unknown_intents_are_404(autojump_clock) -> None:
    venue = make_venue()
    async with running(venue) as system:
        app = app_for(system)
        state = system.journal.state
        await ready_for_entries(system)
        submitted = await asgi_call(
            app, "POST", "/intents", json_body=_resting_entry_body("rest1"), token=TOKEN
        )
        await until(
            lambda: (
                bool(state.orders_for_intent("rest1"))
                and state.orders_for_intent("rest1")[0].venue_order_id is not None
            )
        )
        coid = state.orders_for_intent("rest1")[0].client_order_id
        resting = coid in {o.client_order_id for o in venue.engine.open_orders(BTC)}
        first = await asgi_call(
            app, "POST", "/cancel", json_body={"intent_id": "rest1", "reason": "news"}, token=TOKEN
        )
        await until(lambda: state.orders[coid].is_terminal)
        second = await asgi_call(
            app, "POST", "/cancel", json_body={"intent_id": "rest1", "reason": "again"}, token=TOKEN
        )
        unknown = await asgi_call(
            app, "POST", "/cancel", json_body={"intent_id": "nope", "reason": "x"}, token=TOKEN
        )
        await trio.sleep(10)
        cancels = [
            json.loads(e.payload)
            for e in system.journal.store.entries()
            if e.type == "cancel_requested"
        ]
        still_open = coid in {o.client_order_id for o in venue.engine.open_orders(BTC)}
    assert submitted.status == 202
    assert resting
    assert first.status == 200
    assert first.json() == {
        "cancel_requested": [coid],
        "closed": [],
        "create_unresolved": [],
        "intent_id": "rest1",
        "known": True,
        "reason": "cancel_requested",
        "status": "open",
    }
    assert not still_open
    assert [c["reason"] for c in cancels if c["intent_id"] == "rest1"] == ["news"]
    # Idempotent: the closed order is left alone, and the answer says so.
    assert second.status == 200
    assert (second.json()["reason"], second.json()["closed"]) == ("nothing_open", [coid])
    assert second.json()["cancel_requested"] == []
    assert (unknown.status, unknown.json()["error"]) == (404, "unknown_intent")
    assert unknown.json()["intent_id"] == "nope"


async def test_unfreeze_refused_while_the_cause_holds_then_accepted(autojump_clock) -> None:
    # Someone leaves a limit order on our account by hand: reconcile freezes BTC. The
    # operator's unfreeze is refused until the order is gone and a reconcile came back clean.
    venue = make_venue()
    async with running(venue) as system:
        app = app_for(system)
        state = system.journal.state
        await ready_for_entries(system)
        venue.engine.create_order(
            limit(Side.SELL, "0.002", "75000", "manual-1"), trio.current_time()
        )
        await until(lambda: BTC in state.frozen_symbols)
        await until(lambda: state.last_reconcile is not None and not state.last_reconcile.clean)
        body = {"symbol": BTC, "reason": "checked the venue"}
        refused = await asgi_call(app, "POST", "/unfreeze", json_body=body, token=TOKEN)
        other = await asgi_call(
            app, "POST", "/unfreeze", json_body={"symbol": "ETHUSDT", "reason": "x"}, token=TOKEN
        )
        venue.engine.cancel_order(BTC, client_order_id="manual-1", now=trio.current_time())
        await until(lambda: state.last_reconcile is not None and state.last_reconcile.clean)
        accepted = await asgi_call(app, "POST", "/unfreeze", json_body=body, token=TOKEN)
        lifts = [
            json.loads(e.payload)
            for e in system.journal.store.entries()
            if e.type == "symbol_frozen" and not json.loads(e.payload)["frozen"]
        ]
    assert refused.status == 409
    assert refused.json()["unfrozen"] is False
    assert refused.json()["reason"] == "reconcile_not_clean"
    assert BTC in refused.json()["frozen_symbols"]
    assert (other.status, other.json()["reason"]) == (409, "not_frozen")
    assert accepted.status == 200
    assert accepted.json() == {
        "frozen_symbols": {},
        "reason": "unfrozen",
        "symbol": BTC,
        "unfrozen": True,
    }
    assert lifts == [{"frozen": False, "reason": "checked the venue", "symbol": BTC}]


@pytest.mark.parametrize(
    ("intent_id", "field", "words", "link"),
    [
        ("a\u0000b", "intent.intent_id", "control", ""),
        ("\ud800", "intent.intent_id", "surrogate", ""),
        ("i" * 129, "intent.intent_id", "128", "i" * 128),  # truncated, still a usable link
    ],
)
async def test_an_intent_id_the_journal_cannot_store_is_refused_at_the_door(
    autojump_clock, intent_id, field, words, link
) -> None:
    # Core's Intent accepts any non-empty id; such an id used to reach the Router, fail its
    # journal append after acceptance and leave the request waiting for a receipt forever.
    async with running(make_venue()) as system:
        app = app_for(system)
        await ready_for_entries(system)
        with trio.fail_after(30):
            reply = await asgi_call(
                app, "POST", "/intents", json_body=intent_body(intent_id), token=TOKEN
            )
        await trio.sleep(5)
        restarts = dict(system.supervisor.restart_counts)
        [bad] = invalid_inputs(system)
    assert reply.status == 400
    assert (reply.json()["field"], words in reply.json()["detail"]) == (field, True)
    assert set(restarts.values()) == {0}
    assert bad.intent_id == link
