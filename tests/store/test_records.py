"""The store's records: validation at construction and the hash-chain encoding."""

import json

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.store import (
    GENESIS_HASH,
    InsertFill,
    JournalEntry,
    JournalRecord,
    LedgerState,
    PurgeResult,
    SetCursor,
    UpsertLedger,
    WriteItem,
    chain_hash,
)
from scalper.store.records import TERMINAL_STATES, check_json_text
from tests.store.storekit import T0, canonical, fill_op, record, row

# --------------------------------------------------------------------------- payloads


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ('{"price": NaN}', "NaN"),
        ('{"pnl": Infinity}', "Infinity"),
        ('{"pnl": -Infinity}', "-Infinity"),
        ('{"qty": 1e999}', "overflows"),
        ('{"a": 1, "a": 2}', "appears twice"),
        ('{"a": 1', "not valid JSON"),
        ("", "not valid JSON"),
        ("{'single': 'quotes'}", "not valid JSON"),
        ('{"a": 1} trailing', "not valid JSON"),
        ('"\ud800"', r"U\+D800"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_payload_that_cannot_replay_byte_for_byte_is_refused(payload, says):
    with pytest.raises(CoreValueError, match=says) as info:
        JournalRecord(type="fill_applied", wall_ms=T0, payload=payload)
    assert info.value.field == "payload"


def test_payload_must_be_text():
    with pytest.raises(CoreValueError, match="must be JSON text") as info:
        JournalRecord(type="fill_applied", wall_ms=T0, payload={"a": 1})  # type: ignore[arg-type]
    assert info.value.field == "payload"


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
        max_leaves=20,
    )
)
def test_any_finite_json_value_is_accepted_verbatim(value):
    text = canonical(value)
    rec = JournalRecord(type="note", wall_ms=T0, payload=text)
    assert rec.payload == text
    assert json.loads(rec.payload) == value


def test_ledger_spec_and_fill_payload_are_checked_like_journal_payloads():
    with pytest.raises(CoreValueError) as info:
        attrs.evolve(row("i-1"), spec='{"quantity": NaN}')
    assert info.value.field == "spec"
    with pytest.raises(CoreValueError) as info:
        InsertFill(symbol="BTCUSDT", trade_id="7", client_order_id="x", payload="nope")
    assert info.value.field == "payload"
    check_json_text("anything", '{"ok":true}')  # the public checker agrees with the records


# --------------------------------------------------------------------------- other fields


@pytest.mark.parametrize(
    "kind", ["FillApplied", "fill-applied", "1fill", "", "fill applied", "x" * 65]
)
def test_record_type_must_be_snake_case(kind):
    with pytest.raises(CoreValueError, match="snake_case") as info:
        JournalRecord(type=kind, wall_ms=T0, payload="{}")
    assert info.value.field == "type"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("wall_ms", -1, ">= 0"),
        ("wall_ms", True, "integer"),
        ("wall_ms", 1.5, "integer"),
        ("intent_id", "i-1\n", "control character"),
        ("correlation_id", 7, "must be a str"),
        ("intent_id", "i" * 257, "at most 256"),
    ],
)
def test_record_fields_are_validated(field, value, says):
    kwargs = {"type": "note", "wall_ms": T0, "payload": "{}", field: value}
    with pytest.raises(CoreValueError, match=says) as info:
        JournalRecord(**kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_order_id", ""),
        ("intent_id", ""),
        ("symbol", ""),
        ("generation", -1),
        ("risk_increasing", 1),
        ("state", "HALF_FILLED"),
        ("recv_window_ms", -5),
        ("sent_wall_ms", -1),
        ("venue_order_id", 123),
        ("incarnation", -1),
    ],
)
def test_ledger_row_fields_are_validated(field, value):
    with pytest.raises(CoreValueError) as info:
        attrs.evolve(row("i-1"), **{field: value})
    assert info.value.field == field


def test_ledger_state_accepts_its_text_form():
    assert attrs.evolve(row("i-1"), state="UNKNOWN").state is LedgerState.UNKNOWN


def test_terminal_states_are_exactly_the_ones_that_can_never_act_again():
    assert {s for s in LedgerState if s.is_terminal} == set(TERMINAL_STATES)
    expected = {
        LedgerState.REJECTED,
        LedgerState.FILLED,
        LedgerState.CANCELED,
        LedgerState.EXPIRED,
        LedgerState.ABSENT,
    }
    assert expected == TERMINAL_STATES
    # Everything that may still be (or become) live at the venue is not terminal.
    for live in (LedgerState.SENDING, LedgerState.UNKNOWN, LedgerState.ACKED):
        assert not live.is_terminal
    assert not LedgerState.PARTIALLY_FILLED.is_terminal


def test_write_item_must_carry_something():
    with pytest.raises(CoreValueError, match="needs a journal record") as info:
        WriteItem(None)
    assert info.value.field == "ops"
    assert WriteItem(None, (SetCursor("user_trades_from_id:BTCUSDT", "1234"),)).record is None


def test_write_item_refuses_the_same_fill_twice_and_foreign_ops():
    with pytest.raises(CoreValueError, match="appears twice"):
        WriteItem(record(1), (fill_op("t-1"), fill_op("t-1")))
    with pytest.raises(CoreValueError, match="ledger op") as info:
        WriteItem(record(1), ("UPSERT",))
    assert info.value.field == "ops[0]"
    # Same trade id on another symbol is another fill.
    item = WriteItem(record(1), [fill_op("t-1"), fill_op("t-1", symbol="ETHUSDT")])
    assert item.fill_keys == (("BTCUSDT", "t-1"), ("ETHUSDT", "t-1"))
    assert isinstance(item.ops, tuple)
    with pytest.raises(CoreValueError, match="JournalRecord"):
        WriteItem("note", (UpsertLedger(row("i-1")),))  # type: ignore[arg-type]


def test_purge_result_reports_per_state_counts():
    result = PurgeResult(
        cutoff_wall_ms=T0,
        counts=((LedgerState.FILLED, 3), (LedgerState.ABSENT, 1), (LedgerState.CANCELED, 0)),
    )
    assert result.total == 4
    assert result.count(LedgerState.FILLED) == 3
    assert result.count(LedgerState.EXPIRED) == 0
    assert result.as_dict() == {"FILLED": 3, "ABSENT": 1, "CANCELED": 0}


# --------------------------------------------------------------------------- the chain hash

_FIELDS = st.text(max_size=12)


@given(
    prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    seq=st.integers(1, 10**12),
    wall=st.integers(0, 10**15),
    a=st.tuples(_FIELDS, _FIELDS, _FIELDS, _FIELDS),
    b=st.tuples(_FIELDS, _FIELDS, _FIELDS, _FIELDS),
)
def test_chain_hash_is_unambiguous(prev, seq, wall, a, b):
    # Moving characters from one field to the next (the classic concatenation ambiguity)
    # must change the hash: fields are length-prefixed.
    same = chain_hash(prev, seq, wall, *a) == chain_hash(prev, seq, wall, *b)
    assert same == (a == b)


def test_chain_hash_separates_integers_from_neighbours():
    base = chain_hash(GENESIS_HASH, 1, 12, "a", "", "", "{}")
    assert base != chain_hash(GENESIS_HASH, 11, 2, "a", "", "", "{}")
    assert base != chain_hash(GENESIS_HASH, 1, 12, "", "a", "", "{}")
    assert len(base) == 64
    assert int(base, 16) >= 0


def test_entry_knows_its_own_hash_and_record():
    rec = record(3, kind="order_sending", intent_id="i-9")
    h = chain_hash(
        GENESIS_HASH, 1, rec.wall_ms, rec.type, rec.intent_id, rec.correlation_id, rec.payload
    )
    entry = JournalEntry(
        seq=1,
        wall_ms=rec.wall_ms,
        type=rec.type,
        intent_id=rec.intent_id,
        correlation_id=rec.correlation_id,
        payload=rec.payload,
        prev_hash=GENESIS_HASH,
        hash=h,
    )
    assert entry.computed_hash() == h
    assert entry.record == rec
    assert attrs.evolve(entry, payload='{"n":4}').computed_hash() != h
