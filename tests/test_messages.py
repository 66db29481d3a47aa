"""Actor messages and their journal encoding: every event round-trips, canonically, strictly.

The journal is replayed to rebuild state (I5), so ``decode(encode(e)) == e`` must hold for
every event class, the same event must always give the same bytes, and a corrupted or
hand-edited payload must fail loudly with the field named instead of becoming a wrong number.
"""

import json
import re
import string
import typing
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from scalper import messages
from scalper.core.ids import Role, client_order_id
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill, OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.posture import PostureConfig, PostureMode, knobs_for
from scalper.core.reconcile import RepairAction, RepairKind, RepairTarget
from scalper.core.types import OrderType, PositionSide, Side, TimeInForce
from scalper.messages import (
    EVENT_TYPES,
    ActorCrashed,
    ActorRestarted,
    BackfillCompleted,
    CancelFailed,
    CancelIntent,
    CancelRequested,
    CancelResolved,
    DayStartEquity,
    DeadmanChanged,
    DeadmanFailed,
    Event,
    FillApplied,
    Halt,
    HaltChanged,
    IntentAccepted,
    IntentRejected,
    InvalidInput,
    Lane,
    MessageError,
    OrderAcked,
    OrderAdopted,
    OrderMissing,
    OrderObserved,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderResolved,
    OrderSending,
    PositionSynced,
    PostureChanged,
    PressureRaised,
    ProtectionRepair,
    ProtectionRepairDone,
    ReconcileCompleted,
    RepairDeferred,
    RepairRequest,
    ReplaceAdmitted,
    ReplaceFinished,
    ReplaceStepped,
    Resolution,
    Resume,
    RetryScheduled,
    StartupPhase,
    StreamDown,
    StreamGapObserved,
    SubmitIntent,
    SupervisorEscalated,
    SymbolFrozen,
    SystemStarted,
    SystemStopped,
    canonical_json,
    converter,
    decode_event,
    encode_event,
    event_type,
    intent_of,
    structure,
)
from scalper.store.records import JournalRecord

# --------------------------------------------------------------------------- strategies

ids = st.text(string.ascii_letters + string.digits + "-_:", min_size=1, max_size=24)
# Free text as operators and venues produce it: any Unicode that UTF-8 can store.
texts = st.text(st.characters(codec="utf-8"), max_size=40)
tags = st.text(string.ascii_lowercase + "_", min_size=1, max_size=24)
symbols = st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT", "1000PEPEUSDT"])
wall_ms = st.integers(0, 4_102_444_800_000)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
sides = st.sampled_from(Side)
position_sides = st.sampled_from(PositionSide)

# Quantities and prices as the venue quotes them: fixed places, plus exponent forms such as
# Decimal("1E+3") whose text must survive the round trip unchanged.
positive_decimals = st.one_of(
    st.decimals(
        min_value=Decimal("0.00000001"),
        max_value=Decimal("10000000"),
        allow_nan=False,
        allow_infinity=False,
        places=8,
    ),
    st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(1, 10**6), st.integers(-8, 3)),
)
non_negative_decimals = st.one_of(st.just(Decimal("0")), positive_decimals)
signed_decimals = st.one_of(non_negative_decimals, positive_decimals.map(lambda d: -d))


@st.composite
def intents(draw: st.DrawFn) -> Intent:
    """Every shape of valid intent: market/limit/stop entries, exits, stops, take-profits."""
    shape = draw(
        st.sampled_from(
            [
                "market_entry",
                "limit_entry",
                "stop_entry",
                "market_exit",
                "limit_exit",
                "protect_stop",
                "protect_close",
                "take_profit_close",
            ]
        )
    )
    kw: dict[str, Any] = {
        "intent_id": draw(ids),
        "symbol": draw(symbols),
        "side": draw(sides),
        "quantity": draw(positive_decimals),
        "position_side": draw(position_sides),
        "correlation_id": draw(st.one_of(st.just(""), ids)),
    }
    if shape == "limit_entry" or shape == "limit_exit":
        kw["order_type"] = OrderType.LIMIT
        kw["price"] = draw(positive_decimals)
        kw["time_in_force"] = draw(st.one_of(st.none(), st.sampled_from(TimeInForce)))
    elif shape == "stop_entry":
        kw["order_type"] = OrderType.STOP_MARKET
        kw["stop_price"] = draw(positive_decimals)
    elif shape == "protect_stop":
        kw.update(order_type=OrderType.STOP_MARKET, stop_price=draw(positive_decimals))
    elif shape in ("protect_close", "take_profit_close"):
        kw.update(
            order_type=(
                OrderType.STOP_MARKET if shape == "protect_close" else OrderType.TAKE_PROFIT_MARKET
            ),
            stop_price=draw(positive_decimals),
            quantity=None,
            close_position=True,
        )
    if shape in ("market_exit", "limit_exit"):
        kw.update(kind=IntentKind.EXIT, reduce_only=True)
    elif shape == "protect_stop":
        kw.update(kind=IntentKind.PROTECT, reduce_only=True)
    elif shape == "protect_close":
        kw["kind"] = IntentKind.PROTECT
    elif shape == "take_profit_close":
        kw["kind"] = IntentKind.TAKE_PROFIT
    return Intent(**kw)


@st.composite
def order_requests(draw: st.DrawFn) -> OrderRequest:
    intent = draw(intents())
    coid = client_order_id("sc", intent.intent_id, intent.role, draw(st.integers(0, 9999)))
    return intent.to_order_request(coid)


@st.composite
def venue_orders(draw: st.DrawFn) -> VenueOrder:
    """A venue report whose executed quantity fits its status."""
    status = draw(st.sampled_from(VenueOrderStatus))
    quantity = draw(positive_decimals)
    if status is VenueOrderStatus.FILLED:
        filled = quantity
    elif status in (VenueOrderStatus.NEW, VenueOrderStatus.REJECTED):
        filled = Decimal("0")
    else:
        filled = draw(non_negative_decimals.filter(lambda d: d <= quantity))
    order_type = draw(st.sampled_from(OrderType))
    return VenueOrder(
        symbol=draw(symbols),
        order_id=draw(st.integers(1, 10**12).map(str)),
        client_order_id=draw(ids),
        side=draw(sides),
        order_type=order_type,
        status=status,
        quantity=quantity,
        filled_qty=filled,
        price=draw(st.one_of(st.none(), positive_decimals)),
        stop_price=draw(st.one_of(st.none(), positive_decimals)),
        avg_price=draw(st.one_of(st.none(), positive_decimals)),
        time_in_force=draw(st.one_of(st.none(), st.sampled_from(TimeInForce))),
        reduce_only=draw(st.booleans()),
        close_position=draw(st.booleans()),
        position_side=draw(position_sides),
        venue_time_ms=draw(wall_ms),
    )


fills = st.builds(
    Fill,
    symbol=symbols,
    trade_id=st.integers(1, 10**12).map(str),
    order_id=st.integers(1, 10**12).map(str),
    client_order_id=ids,
    side=sides,
    quantity=positive_decimals,
    price=positive_decimals,
    fee=non_negative_decimals,
    fee_asset=st.sampled_from(["USDT", "BNB", "USDC"]),
    realized_pnl=signed_decimals,
    position_side=position_sides,
    maker=st.booleans(),
    venue_time_ms=wall_ms,
)

guard_knobs = st.builds(
    knobs_for,
    st.floats(0.0, 1.0),
    st.sampled_from(PostureMode),
    st.just(PostureConfig()),
)

tag_tuples = st.lists(tags, max_size=4).map(tuple)
error_codes = st.one_of(st.none(), st.integers(-5000, -1000))

#: One strategy per journal type. Keyed by type, so an event class added to EVENT_TYPES
#: without a strategy fails ``test_every_event_type_has_a_strategy`` and its round trip.
EVENT_STRATEGIES: dict[str, SearchStrategy[Any]] = {
    "system_started": st.builds(
        SystemStarted,
        incarnation=st.integers(0, 10**6),
        version=texts,
        venue=st.sampled_from(["binance_usdm", "sim"]),
        restart_reason=texts,
        seed=st.one_of(st.none(), st.integers(0, 2**64)),
    ),
    "system_stopped": st.builds(SystemStopped, reason=texts, clean=st.booleans()),
    "intent_accepted": intents().flatmap(
        lambda i: st.builds(
            IntentAccepted,
            intent=st.just(i),
            lane=st.just(Lane.EXIT if i.is_exit else Lane.ENTRY),
            source=st.sampled_from(["strategy", "operator", "protection"]),
            intent_id=st.just(i.intent_id),
            correlation_id=st.just(i.correlation_id),
            reference_price=st.one_of(st.none(), positive_decimals),
        )
    ),
    "intent_rejected": st.builds(
        IntentRejected, intent_id=ids, correlation_id=ids, reason=tags, detail=texts
    ),
    "order_sending": st.builds(
        OrderSending,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        generation=st.integers(0, 9999),
        request=order_requests(),
        risk_increasing=st.booleans(),
        recv_window_ms=st.integers(1, 60_000),
        sent_wall_ms=wall_ms,
    ),
    "order_acked": st.builds(
        OrderAcked, intent_id=ids, correlation_id=ids, client_order_id=ids, order=venue_orders()
    ),
    "order_rejected": st.builds(
        OrderRejected,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        error_class=tags,
        code=error_codes,
        reason=texts,
    ),
    "order_outcome_unknown": st.builds(
        OrderOutcomeUnknown,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        error_class=tags,
        code=error_codes,
        reason=texts,
    ),
    "retry_scheduled": st.builds(
        RetryScheduled,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        operation=st.sampled_from(["create", "cancel", "query"]),
        attempt=st.integers(1, 20),
        delay_s=st.floats(0.0, 120.0),
        error_class=tags,
        reason=texts,
    ),
    "order_resolved": st.builds(
        OrderResolved,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        resolution=st.sampled_from(Resolution),
        evidence=st.sampled_from(
            ["query", "stream", "duplicate_client_id", "not_found_after_recv_window"]
        ),
        order=st.one_of(st.none(), venue_orders()),
    ),
    "cancel_requested": st.builds(
        CancelRequested, intent_id=ids, correlation_id=ids, client_order_id=ids, reason=tags
    ),
    "cancel_resolved": st.builds(
        CancelResolved,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        evidence=tags,
        order=st.one_of(st.none(), venue_orders()),
    ),
    "cancel_failed": st.builds(
        CancelFailed,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        reason=texts,
        still_open=st.booleans(),
    ),
    "order_observed": st.builds(
        OrderObserved,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        order=venue_orders(),
        source=st.sampled_from(["stream", "query", "snapshot"]),
        observed_wall_ms=wall_ms,
    ),
    "fill_applied": st.builds(
        FillApplied,
        intent_id=st.one_of(st.just(""), ids),
        correlation_id=st.one_of(st.just(""), ids),
        fill=fills,
        source=st.sampled_from(["stream", "backfill", "query"]),
    ),
    "position_synced": st.builds(
        PositionSynced,
        symbol=symbols,
        position_side=position_sides,
        quantity=signed_decimals,
        previous=signed_decimals,
        reason=tags,
        correlation_id=ids,
    ),
    "stream_down": st.builds(
        StreamDown, since=finite_floats, detected_at=finite_floats, reason=texts
    ),
    "stream_gap_observed": st.builds(
        StreamGapObserved, started_at=finite_floats, ended_at=finite_floats, reason=texts
    ),
    "backfill_completed": st.builds(
        BackfillCompleted,
        symbol=symbols,
        from_trade_id=st.one_of(st.none(), st.integers(0, 10**12).map(str)),
        fetched=st.integers(0, 1000),
        new_fills=st.integers(0, 1000),
        correlation_id=ids,
        cursor=st.one_of(st.none(), st.integers(0, 10**12).map(str)),
    ),
    "order_missing": st.builds(
        OrderMissing,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        observed_wall_ms=wall_ms,
    ),
    "order_adopted": st.builds(
        OrderAdopted,
        intent_id=ids,
        correlation_id=ids,
        client_order_id=ids,
        order=venue_orders(),
        reason=tags,
    ),
    "symbol_frozen": st.builds(SymbolFrozen, symbol=symbols, frozen=st.booleans(), reason=texts),
    "repair_deferred": st.builds(
        RepairDeferred,
        kind=st.sampled_from(RepairKind).map(str),
        symbol=symbols,
        reason=texts,
        correlation_id=ids,
    ),
    "reconcile_completed": st.builds(
        ReconcileCompleted,
        summary=texts,
        clean=st.booleans(),
        streak=st.integers(0, 10_000),
        mismatches=tag_tuples,
        repairs=tag_tuples,
        skipped=tag_tuples,
        correlation_id=ids,
    ),
    "posture_changed": st.builds(
        PostureChanged,
        mode=st.sampled_from(PostureMode).map(str),
        previous=st.sampled_from(PostureMode).map(str),
        score=st.floats(0.0, 1.0),
        causes=tag_tuples,
        unlock=tag_tuples,
        knobs=guard_knobs,
    ),
    "halt_changed": st.builds(
        HaltChanged,
        halted=st.booleans(),
        reason=texts,
        source=st.sampled_from(["operator", "kill_switch", "supervisor"]),
    ),
    "actor_crashed": st.builds(
        ActorCrashed,
        actor=tags,
        error_type=st.sampled_from(["ValueError", "KeyError", "StoreWriteError"]),
        error=texts,
        restart_in_s=st.floats(0.0, 60.0),
    ),
    "actor_restarted": st.builds(ActorRestarted, actor=tags, restart_count=st.integers(0, 100)),
    "supervisor_escalated": st.builds(SupervisorEscalated, supervisor=tags, reason=texts),
    "invalid_input": st.builds(
        InvalidInput,
        source=tags,
        error=texts,
        raw=texts,
        intent_id=st.one_of(st.just(""), ids),
        correlation_id=st.one_of(st.just(""), ids),
    ),
    "protection_repair": st.builds(
        ProtectionRepair,
        symbol=symbols,
        position_side=position_sides,
        reason=tags,
        trigger=tags,
        status=tags,
        position_qty=signed_decimals,
        covered_qty=non_negative_decimals,
        actions=tag_tuples,
        correlation_id=ids,
    ),
    "protection_repair_done": st.builds(
        ProtectionRepairDone,
        symbol=symbols,
        position_side=position_sides,
        outcome=st.sampled_from(["covered", "failed", "superseded"]),
        detail=texts,
        correlation_id=ids,
    ),
    "pressure_raised": st.builds(
        PressureRaised,
        source=tags,
        symbol=symbols,
        cause=tags,
        severity=st.floats(0, 1),
        reason=texts,
        hold_s=st.floats(0, 3600),
        correlation_id=ids,
    ),
    "replace_admitted": st.builds(
        ReplaceAdmitted,
        intent_id=ids,
        correlation_id=ids,
        replace_id=ids,
        symbol=symbols,
        new_intent_id=ids,
        decision=st.sampled_from(["replace", "degrade_cancel_reconcile_create", "give_up"]),
        reason=tags,
        worst_case_notional=non_negative_decimals,
    ),
    "replace_stepped": st.builds(
        ReplaceStepped,
        intent_id=ids,
        correlation_id=ids,
        replace_id=ids,
        state=tags,
        actions=tag_tuples,
        reason=tags,
        fill_qty=non_negative_decimals,
    ),
    "replace_finished": st.builds(
        ReplaceFinished,
        intent_id=ids,
        correlation_id=ids,
        replace_id=ids,
        outcome=tags,
        reason=tags,
        new_intent_id=ids,
    ),
    "deadman_changed": st.builds(
        DeadmanChanged,
        symbol=symbols,
        armed=st.booleans(),
        countdown_ms=st.integers(0, 10**7),
        reason=tags,
    ),
    "deadman_failed": st.builds(
        DeadmanFailed, symbol=symbols, error=texts, consecutive=st.integers(1, 100)
    ),
    "startup_phase": st.builds(StartupPhase, phase=tags, detail=texts),
    "day_start_equity": st.builds(
        DayStartEquity,
        utc_day=st.integers(0, 10**6),
        date=texts,
        equity=signed_decimals,
        peak_equity=non_negative_decimals,
    ),
}

EVENT_CLASSES: tuple[type[Any], ...] = typing.get_args(Event)


def camel(type_: str) -> str:
    return "".join(part.capitalize() for part in type_.split("_"))


def sorted_keys_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys), f"keys not sorted: {keys}"
    assert len(set(keys)) == len(keys), f"duplicate keys: {keys}"
    return dict(pairs)


# --------------------------------------------------------------------------- the type table


def test_every_event_type_has_a_strategy():
    assert set(EVENT_STRATEGIES) == set(EVENT_TYPES)


def test_event_types_are_unique_snake_case_and_journalable():
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES)
    for type_ in EVENT_TYPES:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", type_), type_
        # The store's own check on record types accepts every one of them.
        JournalRecord(type=type_, wall_ms=0, payload="{}")


def test_event_types_name_exactly_the_event_union():
    # Derived independently of messages' own table: snake_case <-> class name.
    assert sorted(camel(t) for t in EVENT_TYPES) == sorted(c.__name__ for c in EVENT_CLASSES)
    for cls in EVENT_CLASSES:
        assert cls.__name__ in messages.__all__
        assert attrs.has(cls)


def test_commands_have_no_journal_type():
    halt = Halt("operator says stop")
    with pytest.raises(KeyError):
        event_type(halt)  # type: ignore[arg-type]
    assert "halt" not in EVENT_TYPES


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("type_", EVENT_TYPES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_event_round_trips_canonically(type_: str, data: st.DataObject) -> None:
    event = data.draw(EVENT_STRATEGIES[type_])
    assert type(event) in EVENT_CLASSES
    assert event_type(event) == type_
    # Frozen: an event mutated after it was journaled would make the journal lie.
    first = attrs.fields(type(event))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(event, first, getattr(event, first))
    payload = encode_event(event)

    decoded = decode_event(type_, payload)
    assert decoded == event
    assert type(decoded) is type(event)
    # Same event, same bytes: re-encoding the decoded event and encoding twice agree, so two
    # runs with one seed write byte-identical journals (Decimal text included).
    assert encode_event(decoded) == payload
    assert encode_event(event) == payload

    # Canonical: sorted keys at every level, no whitespace between tokens, strict JSON.
    parsed = json.loads(payload, object_pairs_hook=sorted_keys_hook)
    assert canonical_json(parsed) == payload
    assert payload == json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    JournalRecord(type=type_, wall_ms=0, payload=payload)


@settings(max_examples=50, deadline=None)
@given(event=EVENT_STRATEGIES["intent_accepted"])
def test_enums_decode_as_enums_not_plain_strings(event: IntentAccepted) -> None:
    decoded = decode_event("intent_accepted", encode_event(event))
    assert isinstance(decoded, IntentAccepted)
    assert decoded.lane is event.lane
    assert decoded.intent.side is event.intent.side
    assert decoded.intent.kind is event.intent.kind
    assert decoded.intent.order_type is event.intent.order_type
    assert decoded.intent.is_exit == event.intent.is_exit


@settings(max_examples=50, deadline=None)
@given(fill=fills)
def test_decimals_travel_as_strings_with_their_exact_text(fill: Fill) -> None:
    event = FillApplied("i-1", "c-1", fill, "stream")
    doc = json.loads(encode_event(event))
    assert doc["fill"]["quantity"] == str(fill.quantity)
    assert doc["fill"]["price"] == str(fill.price)
    decoded = decode_event("fill_applied", encode_event(event))
    assert isinstance(decoded, FillApplied)
    assert str(decoded.fill.quantity) == str(fill.quantity)


def test_intent_of_names_the_story_an_event_belongs_to():
    assert intent_of(CancelRequested("i-7", "c-7", "sc-E-0000000000000000-0", "operator")) == (
        "i-7",
        "c-7",
    )
    assert intent_of(HaltChanged(True, "maintenance", "operator")) == ("", "")
    assert intent_of(
        PositionSynced("BTCUSDT", PositionSide.BOTH, Decimal(1), Decimal(0), "drift", "c-9")
    ) == ("", "c-9")


def test_encoding_refuses_non_finite_floats():
    # A NaN in the journal would make it unreplayable; the encoder refuses it outright.
    with pytest.raises(ValueError, match="Out of range float"):
        encode_event(RetryScheduled("i", "c", "x", "create", 1, float("nan"), "AMBIGUOUS", "t"))


# --------------------------------------------------------------------------- commands


SUBMIT = {
    "intent": {
        "intent_id": "op-0001",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.010",
        "order_type": "LIMIT",
        "price": "64000.5",
    },
    "confidence": 0.8,
    "reference_price": "64010",
    "source": "operator",
}


def submit(**changes: Any) -> dict[str, Any]:
    """SUBMIT with changes; ``intent={...}`` changes intent fields; ``...`` deletes a key."""
    doc = json.loads(json.dumps(SUBMIT))
    intent_changes = changes.pop("intent", {})
    if intent_changes is ...:
        del doc["intent"]
    else:
        doc["intent"].update(intent_changes)
        doc["intent"] = {k: v for k, v in doc["intent"].items() if v is not ...}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


def test_operator_submit_intent_is_structured_and_validated():
    cmd = structure(SUBMIT, SubmitIntent)
    assert cmd.intent.quantity == Decimal("0.010")
    assert cmd.intent.price == Decimal("64000.5")
    assert cmd.intent.side is Side.BUY
    assert cmd.intent.order_type is OrderType.LIMIT
    assert cmd.intent.time_in_force is TimeInForce.GTC  # Intent's default for limits
    assert cmd.intent.correlation_id == "op-0001"
    assert cmd.confidence == 0.8
    assert cmd.reference_price == Decimal("64010")
    assert cmd.source == "operator"


def test_operator_submit_intent_minimal_and_close_position():
    minimal = structure(
        {"intent": {"intent_id": "op-2", "symbol": "ETHUSDT", "side": "SELL", "quantity": 1}},
        SubmitIntent,
    )
    assert minimal.intent.quantity == Decimal(1)  # an integer is an exact decimal
    assert minimal.confidence == 1.0
    assert minimal.source == "strategy"
    stop = structure(
        {
            "intent": {
                "intent_id": "op-3",
                "symbol": "BTCUSDT",
                "side": "SELL",
                "quantity": None,
                "kind": "PROTECT",
                "order_type": "STOP_MARKET",
                "stop_price": "61000",
                "close_position": True,
            },
            "confidence": 1,
        },
        SubmitIntent,
    )
    assert stop.intent.is_exit
    assert stop.intent.quantity is None
    assert stop.confidence == 1.0


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        (submit(intent={"quantity": 0.01}), ["quantity", "0.01"]),
        (submit(intent={"quantity": "-0.01"}), ["quantity", "positive"]),
        (submit(intent={"quantity": "NaN"}), ["quantity", "NaN"]),
        (submit(intent={"price": "Infinity"}), ["price", "Infinity"]),
        (submit(intent={"side": "LONG"}), ["side", "LONG"]),
        (submit(intent={"leverage": 20}), ["leverage"]),
        (submit(intent={"side": ...}), ["side"]),
        (submit(intent={"order_type": "MARKET"}), ["price", "MARKET"]),
        (submit(intent={"reduce_only": "false"}), ["reduce_only", "false"]),
        (submit(intent={"close_position": True}), ["close_position", "LIMIT"]),
        (submit(confidence="0.9"), ["confidence", "0.9"]),
        (submit(confidence=float("nan")), ["confidence", "nan"]),
        (submit(reference_price=64010.5), ["reference_price"]),
        (submit(source=7), ["source", "7"]),
        (submit(urgent=True), ["urgent"]),
        (submit(intent=...), ["intent"]),
    ],
)
def test_operator_submit_intent_refuses_bad_input_naming_it(
    doc: dict[str, Any], names: list[str]
) -> None:
    with pytest.raises(MessageError) as exc:
        structure(doc, SubmitIntent)
    text = str(exc.value)
    assert text.startswith("invalid SubmitIntent")
    for name in names:
        assert name in text, (name, text)


def test_commands_round_trip_through_json():
    action = RepairAction(
        kind=RepairKind.SYNC_POSITION,
        symbol="BTCUSDT",
        targets=(RepairTarget(PositionSide.BOTH, quantity=Decimal("-0.004")),),
        reasons=("position_drift",),
        severity=0.6,
    )
    for cmd in (
        structure(SUBMIT, SubmitIntent),
        CancelIntent("i-1", "operator"),
        RepairRequest(action, "c-repair-1"),
        Halt("maintenance window"),
        Resume(),
    ):
        wire = canonical_json(converter.unstructure(cmd))
        assert structure(json.loads(wire), type(cmd)) == cmd


# --------------------------------------------------------------------------- strict decoding


def good_sending() -> OrderSending:
    intent = Intent(
        intent_id="i-42",
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("0.010"),
        order_type=OrderType.LIMIT,
        price=Decimal("64000"),
    )
    coid = client_order_id("sc", "i-42", Role.ENTRY, 0)
    return OrderSending(
        intent_id="i-42",
        correlation_id="c-42",
        client_order_id=coid,
        generation=0,
        request=intent.to_order_request(coid),
        risk_increasing=True,
        recv_window_ms=5000,
        sent_wall_ms=1_700_000_000_000,
    )


def good_accepted() -> IntentAccepted:
    intent = Intent(intent_id="i-43", symbol="ETHUSDT", side=Side.SELL, quantity=Decimal("0.5"))
    return IntentAccepted(intent, Lane.ENTRY, "strategy", "i-43", "i-43")


def mutated(event: Any, mutate: Any) -> str:
    doc = json.loads(encode_event(event))
    mutate(doc)
    return json.dumps(doc)


def test_valid_payloads_decode_before_mutation():
    # The mutations below start from payloads that decode, so their failures mean something.
    assert decode_event("order_sending", encode_event(good_sending())) == good_sending()
    assert decode_event("intent_accepted", encode_event(good_accepted())) == good_accepted()


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda d: d.update(venue="binance"), ["venue", "Extra"]),
        (lambda d: d["request"].update(leverage=5), ["leverage", "OrderRequest"]),
        (lambda d: d.pop("generation"), ["generation"]),
        (lambda d: d["request"].pop("symbol"), ["symbol", "OrderRequest"]),
        (lambda d: d["request"].update(quantity=0.01), ["quantity", "0.01"]),
        (lambda d: d["request"].update(price=64000), ["price"]),  # control: ints are exact
        (lambda d: d["request"].update(quantity="NaN"), ["quantity", "NaN"]),
        (lambda d: d["request"].update(quantity="Infinity"), ["quantity", "Infinity"]),
        (lambda d: d["request"].update(quantity="-Infinity"), ["quantity", "Infinity"]),
        (lambda d: d["request"].update(quantity="1e"), ["quantity", "1e"]),
        (lambda d: d["request"].update(quantity=True), ["quantity", "True"]),
        (lambda d: d.update(generation=1.7), ["generation", "1.7"]),
        (lambda d: d.update(generation="3"), ["generation", "'3'"]),
        (lambda d: d.update(risk_increasing="false"), ["risk_increasing", "false"]),
        (lambda d: d.update(risk_increasing=0), ["risk_increasing"]),
        (lambda d: d.update(client_order_id=12345), ["client_order_id", "12345"]),
        (lambda d: d["request"].update(side="HOLD"), ["side", "HOLD"]),
        (lambda d: d["request"].update(order_type="ICEBERG"), ["order_type", "ICEBERG"]),
    ],
)
def test_strict_decoding_names_the_offending_field(mutate: Any, names: list[str]) -> None:
    payload = mutated(good_sending(), mutate)
    if names == ["price"]:
        decoded = decode_event("order_sending", payload)
        assert isinstance(decoded, OrderSending)
        assert decoded.request.price == Decimal(64000)
        return
    with pytest.raises(MessageError) as exc:
        decode_event("order_sending", payload)
    text = str(exc.value)
    assert text.startswith("invalid OrderSending")
    for name in names:
        assert name in text, (name, text)


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda d: d["intent"].update(quantity="-0.5"), ["quantity", "positive"]),
        (lambda d: d["intent"].update(quantity="0"), ["quantity", "positive"]),
        (lambda d: d["intent"].update(symbol="eth/usdt"), ["symbol"]),
        (lambda d: d["intent"].update(reduce_only=True), ["kind", "ENTRY"]),
        (lambda d: d.update(lane="side"), ["lane", "side"]),
        (lambda d: d["intent"].update(kind="HEDGE"), ["kind", "HEDGE"]),
    ],
)
def test_an_invalid_intent_in_a_payload_is_refused(mutate: Any, names: list[str]) -> None:
    with pytest.raises(MessageError) as exc:
        decode_event("intent_accepted", mutated(good_accepted(), mutate))
    text = str(exc.value)
    for name in names:
        assert name in text, (name, text)


def test_tuples_must_be_lists_not_strings_or_objects():
    event = ReconcileCompleted("ok", True, 0, ("a",), (), (), "c-1")
    for bad in ("position_drift", {"position_drift": 1}, [1]):
        with pytest.raises(MessageError, match="mismatches"):
            decode_event(
                "reconcile_completed", mutated(event, lambda d, b=bad: d.update(mismatches=b))
            )


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_constants_are_refused(constant: str) -> None:
    payload = encode_event(good_sending()).replace(
        '"recv_window_ms":5000', f'"recv_window_ms":{constant}'
    )
    assert constant in payload
    with pytest.raises(MessageError, match=f"contains {constant}, which is not JSON"):
        decode_event("order_sending", payload)


def test_non_finite_float_field_is_refused():
    event = RetryScheduled("i", "c", "x", "create", 1, 0.5, "AMBIGUOUS", "timeout")
    payload = encode_event(event).replace('"delay_s":0.5', '"delay_s":1e999')
    with pytest.raises(MessageError, match="retry_scheduled payload: number 1e999 overflows"):
        decode_event("retry_scheduled", payload)


def test_a_repeated_key_is_refused_not_resolved_by_the_parser() -> None:
    # json.loads would keep the last value; which one counts is parser-dependent.
    payload = encode_event(good_sending()).replace(
        '"recv_window_ms":5000', '"recv_window_ms":5000,"recv_window_ms":60000'
    )
    with pytest.raises(MessageError, match="'recv_window_ms' appears twice"):
        decode_event("order_sending", payload)


def test_unknown_event_type_is_refused():
    with pytest.raises(MessageError, match="unknown event type 'order_teleported'"):
        decode_event("order_teleported", "{}")


@pytest.mark.parametrize("payload", ["", "{", '{"intent_id": }', "[1, 2", "not json"])
def test_invalid_json_is_refused(payload: str) -> None:
    with pytest.raises(MessageError, match="invalid order_missing payload"):
        decode_event("order_missing", payload)


def test_payload_of_another_type_is_refused():
    # A row whose type and payload disagree (a mis-typed hand edit) cannot slip through.
    payload = encode_event(CancelRequested("i-1", "c-1", "sc-E-0000000000000000-0", "operator"))
    with pytest.raises(MessageError, match="invalid CancelFailed"):
        decode_event("cancel_failed", payload)


def test_non_object_payload_is_refused():
    with pytest.raises(MessageError, match="invalid HaltChanged"):
        decode_event("halt_changed", '[true, "x", "operator"]')
