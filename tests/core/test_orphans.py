"""Orphan classification: ADOPT / CANCEL / FREEZE for venue records the ledger does not know."""

from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.ids import Role, client_order_id, intent_digest, parse_client_order_id
from scalper.core.model import AccountSnapshot, VenueOrder, VenueOrderStatus, VenuePosition
from scalper.core.orphans import (
    IntentStanding,
    OrphanAction,
    OrphanContext,
    OrphanReason,
    OrphansConfig,
    allowed_actions,
    classify_order,
    classify_orders,
    classify_position,
    classify_snapshot,
    default_action,
    is_position_reducing,
    is_risk_increasing_reason,
    stop_coverage,
    venue_generated_reason,
)
from scalper.core.types import OrderType, PositionSide, Side

ADOPT, CANCEL, FREEZE = OrphanAction.ADOPT, OrphanAction.CANCEL, OrphanAction.FREEZE
BTC = "BTCUSDT"
_order_ids = iter(range(10**9))


def order(
    coid: str,
    *,
    symbol: str = BTC,
    side: Side = Side.BUY,
    order_type: OrderType = OrderType.LIMIT,
    quantity: str = "0.010",
    reduce_only: bool = False,
    close_position: bool = False,
    position_side: PositionSide = PositionSide.BOTH,
    status: VenueOrderStatus = VenueOrderStatus.NEW,
    filled: str = "0",
) -> VenueOrder:
    return VenueOrder(
        symbol=symbol,
        order_id=str(next(_order_ids)),
        client_order_id=coid,
        side=side,
        order_type=order_type,
        status=status,
        quantity=Decimal(quantity),
        filled_qty=Decimal(filled),
        stop_price=Decimal("60000") if order_type.needs_stop_price else None,
        reduce_only=reduce_only,
        close_position=close_position,
        position_side=position_side,
    )


def pos(qty: str, symbol: str = BTC, side: PositionSide = PositionSide.BOTH) -> VenuePosition:
    return VenuePosition(symbol=symbol, quantity=Decimal(qty), position_side=side)


def sl_stop(intent: str, *, side: Side = Side.SELL, qty: str = "0.010", **kw) -> VenueOrder:
    return order(
        client_order_id("sc", intent, Role.SL),
        side=side,
        order_type=OrderType.STOP_MARKET,
        quantity=qty,
        reduce_only=True,
        **kw,
    )


LONG_BTC = OrphanContext(positions=(pos("0.010"),))
FLAT = OrphanContext()


# --------------------------------------------------------------------------- examples: orders


def test_foreign_entry_order_is_frozen_by_default():
    d = classify_order(order("web_8fK2mQ"), LONG_BTC)
    assert (d.action, d.reason) == (FREEZE, OrphanReason.FOREIGN_ORDER)
    assert d.detail("owner") == "foreign"
    assert d.policy_source == "default"


def test_foreign_stop_on_our_position_is_frozen_not_adopted():
    d = classify_order(
        order("manual-stop", side=Side.SELL, order_type=OrderType.STOP_MARKET, reduce_only=True),
        LONG_BTC,
    )
    assert (d.action, d.reason) == (FREEZE, OrphanReason.FOREIGN_EXIT_ORDER)


def test_id_with_another_installations_prefix_is_foreign():
    coid = client_order_id("bot2", "i-1", Role.ENTRY)
    d = classify_order(order(coid), FLAT)
    assert d.reason is OrphanReason.FOREIGN_ORDER
    assert d.action is FREEZE


def test_our_entry_of_unknown_intent_is_cancelled():
    # A crash after the send but before the ledger write: nobody decided this exposure.
    d = classify_order(order(client_order_id("sc", "i-lost", Role.ENTRY)), FLAT)
    assert (d.action, d.reason) == (CANCEL, OrphanReason.OURS_UNKNOWN_INTENT_ENTRY)
    assert d.detail("intent_digest") == intent_digest("i-lost")
    assert d.detail("intent_standing") == "UNKNOWN"


@pytest.mark.parametrize(
    ("standing", "action", "reason"),
    [
        (IntentStanding.OPEN, ADOPT, OrphanReason.OURS_KNOWN_INTENT_ENTRY),
        (IntentStanding.HAS_LIVE_ORDER, CANCEL, OrphanReason.DUPLICATE_ENTRY_FOR_INTENT),
        (IntentStanding.CLOSED, CANCEL, OrphanReason.OURS_CLOSED_INTENT_ENTRY),
    ],
)
def test_our_entry_of_known_intent_depends_on_its_standing(standing, action, reason):
    ctx = OrphanContext(intents={intent_digest("i-7"): standing})
    d = classify_order(order(client_order_id("sc", "i-7", Role.ENTRY, 1)), ctx)
    assert (d.action, d.reason) == (action, reason)
    assert d.detail("generation") == "1"


def test_our_stop_for_open_position_is_adopted():
    d = classify_order(sl_stop("i-9"), LONG_BTC)
    assert (d.action, d.reason) == (ADOPT, OrphanReason.PROTECTIVE_FOR_OPEN_POSITION)
    assert d.detail("position_qty") == "0.010"


def test_our_stop_without_position_is_cancelled():
    d = classify_order(sl_stop("i-9"), FLAT)
    assert (d.action, d.reason) == (CANCEL, OrphanReason.PROTECTIVE_WITHOUT_POSITION)


def test_leftover_stop_of_a_flipped_position_is_cancelled():
    # Position is now short; a reduce-only SELL stop can never fill against it.
    ctx = OrphanContext(positions=(pos("-0.020"),))
    d = classify_order(sl_stop("i-9"), ctx)
    assert (d.action, d.reason) == (CANCEL, OrphanReason.EXIT_ORDER_WRONG_SIDE)


def test_our_stop_without_reduce_only_in_one_way_mode_is_risk_increasing():
    # Role letter says SL, but the venue record can open a position: judged by the record.
    coid = client_order_id("sc", "i-9", Role.SL)
    o = order(coid, side=Side.SELL, order_type=OrderType.STOP_MARKET)
    assert not is_position_reducing(o)
    d = classify_order(o, LONG_BTC)
    assert (d.action, d.reason) == (CANCEL, OrphanReason.OURS_UNKNOWN_INTENT_ENTRY)
    assert d.detail("role") == "SL"


def test_hedge_mode_closing_leg_counts_as_exit_without_reduce_only():
    ctx = OrphanContext(positions=(pos("0.5", side=PositionSide.LONG),))
    closing = sl_stop("i-h", position_side=PositionSide.LONG)
    closing = attrs.evolve(closing, reduce_only=False)
    assert is_position_reducing(closing)
    d = classify_order(closing, ctx)
    assert (d.action, d.reason) == (ADOPT, OrphanReason.PROTECTIVE_FOR_OPEN_POSITION)
    # The same order on the SHORT leg would be opening a short: risk-increasing.
    opening = attrs.evolve(closing, position_side=PositionSide.SHORT)
    assert not is_position_reducing(opening)
    assert classify_order(opening, ctx).reason is OrphanReason.OURS_UNKNOWN_INTENT_ENTRY


@pytest.mark.parametrize(
    ("coid", "reason"),
    [
        ("autoclose-1700000000123", OrphanReason.VENUE_LIQUIDATION_ORDER),
        ("adl_autoclose", OrphanReason.VENUE_ADL_ORDER),
        ("settlement_autoclose-BTCUSDT-17", OrphanReason.VENUE_SETTLEMENT_ORDER),
    ],
)
def test_venue_liquidation_adl_settlement_orders_are_frozen(coid, reason):
    assert venue_generated_reason(coid) is reason
    cfg = OrphansConfig(symbol_actions={BTC: "CANCEL"}, freeze_instead_of_cancel=True)
    d = classify_order(order(coid, side=Side.SELL), LONG_BTC, cfg)
    assert (d.action, d.reason) == (FREEZE, reason)
    assert d.detail("owner") == "venue"


def test_closed_order_is_not_an_orphan():
    o = order(client_order_id("sc", "i-1", Role.ENTRY), status=VenueOrderStatus.FILLED)
    with pytest.raises(CoreValueError) as exc:
        classify_order(o, FLAT)
    assert exc.value.field == "order"


# --------------------------------------------------------------------------- examples: positions


def test_unprotected_position_is_adopted_and_must_be_protected():
    d = classify_position(pos("0.3"), protected=False)
    assert (d.action, d.reason) == (ADOPT, OrphanReason.UNPROTECTED_POSITION)
    assert d.requires_protection


def test_unprotected_position_can_be_frozen_by_policy():
    cfg = OrphansConfig(reason_actions={"unprotected_position": "FREEZE"})
    d = classify_position(pos("0.3"), protected=False, config=cfg)
    assert d.action is FREEZE
    assert d.policy_source == "reason_override"
    assert not d.requires_protection


def test_protected_and_flat_positions_are_adopted():
    d = classify_position(pos("-0.3"), protected=True)
    assert (d.action, d.reason, d.requires_protection) == (
        ADOPT,
        OrphanReason.PROTECTED_POSITION,
        False,
    )
    flat = classify_position(pos("0"), protected=False)
    assert (flat.action, flat.reason, flat.requires_protection) == (
        ADOPT,
        OrphanReason.FLAT_POSITION,
        False,
    )


def test_symbol_override_cannot_cancel_a_position():
    cfg = OrphansConfig(symbol_actions={BTC: "CANCEL"})
    d = classify_position(pos("0.3"), protected=False, config=cfg)
    assert d.action is FREEZE
    assert d.policy_source == "symbol_override_degraded"
    assert d.detail("symbol_override_refused") == "CANCEL"


# --------------------------------------------------------------------------- examples: policy


def test_cancelling_foreign_orders_requires_an_explicit_reason_override():
    foreign = order("other-bot-77")
    by_symbol = OrphansConfig(symbol_actions={BTC: "CANCEL"})
    d = classify_order(foreign, FLAT, by_symbol)
    assert d.action is FREEZE
    assert d.detail("symbol_override_refused") == "CANCEL"
    explicit = OrphansConfig(reason_actions={"foreign_order": "CANCEL"})
    d = classify_order(foreign, FLAT, explicit)
    assert (d.action, d.policy_source) == (CANCEL, "reason_override")


def test_symbol_override_to_adopt_degrades_to_freeze_for_unknown_entries():
    cfg = OrphansConfig(symbol_actions={BTC: "ADOPT"})
    d = classify_order(order(client_order_id("sc", "i-x", Role.ENTRY)), FLAT, cfg)
    assert d.action is FREEZE
    assert d.policy_source == "symbol_override_degraded"
    # ... while an adoptable orphan on the same symbol is adopted as asked.
    d = classify_order(sl_stop("i-x"), LONG_BTC, cfg)
    assert d.action is ADOPT


def test_symbol_override_applies_only_to_its_symbol():
    cfg = OrphansConfig(symbol_actions={"ETHUSDT": "FREEZE"})
    entry = client_order_id("sc", "i-x", Role.ENTRY)
    assert classify_order(order(entry), FLAT, cfg).action is CANCEL
    eth = classify_order(order(entry, symbol="ETHUSDT"), FLAT, cfg)
    assert (eth.action, eth.policy_source) == (FREEZE, "symbol_override")


def test_freeze_instead_of_cancel():
    cfg = OrphansConfig(freeze_instead_of_cancel=True)
    d = classify_order(order(client_order_id("sc", "i-x", Role.ENTRY)), FLAT, cfg)
    assert (d.action, d.policy_source) == (FREEZE, "freeze_instead_of_cancel")
    assert d.reason is OrphanReason.OURS_UNKNOWN_INTENT_ENTRY


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ours_unknown_intent_entry": "ADOPT"}, "reason_actions"),
        ({"foreign_order": "ADOPT"}, "reason_actions"),
        ({"venue_liquidation_order": "CANCEL"}, "reason_actions"),
        ({"unprotected_position": "CANCEL"}, "reason_actions"),
        ({"no_such_reason": "FREEZE"}, "reason_actions"),
        ({"foreign_order": "DELETE"}, "reason_actions"),
    ],
)
def test_config_refuses_unsafe_or_unknown_overrides(overrides, field):
    with pytest.raises(CoreValueError) as exc:
        OrphansConfig(reason_actions=overrides)
    assert exc.value.field == field


def test_config_rejects_bad_symbol_actions_and_flags():
    with pytest.raises(CoreValueError) as exc:
        OrphansConfig(symbol_actions={"": "FREEZE"})
    assert exc.value.field == "symbol_actions"
    with pytest.raises(CoreValueError) as exc:
        OrphansConfig(symbol_actions={BTC: "NUKE"})
    assert exc.value.field == "symbol_actions"
    with pytest.raises(CoreValueError) as exc:
        OrphansConfig(freeze_instead_of_cancel="yes")  # type: ignore[arg-type]
    assert exc.value.field == "freeze_instead_of_cancel"


def test_context_rejects_a_bad_prefix():
    with pytest.raises(CoreValueError) as exc:
        OrphanContext(prefix="has-dash")
    assert exc.value.field == "prefix"


def test_default_table_is_inside_the_allowed_table():
    for reason in OrphanReason:
        assert default_action(reason) in allowed_actions(reason)
        if is_risk_increasing_reason(reason) and reason is not OrphanReason.OURS_KNOWN_INTENT_ENTRY:
            assert ADOPT not in allowed_actions(reason)


# --------------------------------------------------------------------------- coverage


def test_stop_coverage_sums_our_stops_and_ignores_take_profits_and_other_legs():
    orders = [
        sl_stop("i-1", qty="0.004"),
        sl_stop("i-2", qty="0.004"),
        order(
            client_order_id("sc", "i-3", Role.TP),
            side=Side.SELL,
            order_type=OrderType.TAKE_PROFIT_MARKET,
            reduce_only=True,
        ),
        sl_stop("i-4", qty="1", symbol="ETHUSDT"),
        sl_stop("i-5", qty="1", side=Side.BUY),  # would buy: does not protect a long
    ]
    cov = stop_coverage(BTC, PositionSide.BOTH, Decimal("0.010"), orders, prefix="sc")
    assert cov.covered == Decimal("0.008")
    assert cov.ratio == Decimal("0.8")
    assert not cov.is_full
    assert [o.client_order_id for o in cov.stops] == sorted(
        [orders[0].client_order_id, orders[1].client_order_id]
    )


def test_stop_coverage_close_position_covers_everything_and_foreign_is_optional():
    close_all = order(
        client_order_id("sc", "i-1", Role.SL),
        side=Side.BUY,
        order_type=OrderType.STOP_MARKET,
        quantity="0",
        close_position=True,
    )
    cov = stop_coverage(BTC, PositionSide.BOTH, Decimal("-2"), [close_all], prefix="sc")
    assert cov.close_position
    assert cov.is_full
    manual = order("manual", side=Side.SELL, order_type=OrderType.STOP_MARKET, reduce_only=True)
    assert (
        stop_coverage(BTC, PositionSide.BOTH, Decimal("0.01"), [manual], prefix="sc").covered == 0
    )
    assert stop_coverage(BTC, PositionSide.BOTH, Decimal("0.01"), [manual]).is_full
    assert stop_coverage(BTC, PositionSide.BOTH, Decimal(0), [manual]).ratio == 1


def test_partially_filled_stop_covers_only_its_remainder():
    stop = order(
        client_order_id("sc", "i-1", Role.SL),
        side=Side.SELL,
        order_type=OrderType.STOP_MARKET,
        quantity="0.010",
        filled="0.006",
        reduce_only=True,
        status=VenueOrderStatus.PARTIALLY_FILLED,
    )
    cov = stop_coverage(BTC, PositionSide.BOTH, Decimal("0.010"), [stop])
    assert cov.covered == Decimal("0.004")


# --------------------------------------------------------------------------- batches


def test_two_orphan_orders_of_one_open_intent_adopt_one_and_cancel_the_other():
    ctx = OrphanContext(intents={intent_digest("i-5"): IntentStanding.OPEN})
    gen1 = order(client_order_id("sc", "i-5", Role.ENTRY, 1))
    gen0 = order(client_order_id("sc", "i-5", Role.ENTRY, 0))
    decisions = classify_orders([gen1, gen0], ctx)
    assert [(d.subject, d.action, d.reason) for d in decisions] == [
        (gen0, ADOPT, OrphanReason.OURS_KNOWN_INTENT_ENTRY),
        (gen1, CANCEL, OrphanReason.DUPLICATE_ENTRY_FOR_INTENT),
    ]


def test_classify_snapshot_at_restart():
    known_stop = sl_stop("i-known")
    lost_entry = order(client_order_id("sc", "i-lost", Role.ENTRY), symbol="ETHUSDT")
    foreign = order("app-123", symbol="SOLUSDT")
    snap = AccountSnapshot(
        taken_at=100.0,
        open_orders=(known_stop, lost_entry, foreign),
        positions=(pos("0.010"), pos("1.5", symbol="ETHUSDT"), pos("0", symbol="SOLUSDT")),
    )
    decisions = classify_snapshot(
        snap,
        FLAT,
        known_client_order_ids=frozenset({known_stop.client_order_id}),
        known_positions=frozenset({(BTC, PositionSide.BOTH)}),
    )
    summary = [(d.symbol, d.action, d.reason, d.requires_protection) for d in decisions]
    assert summary == [
        ("ETHUSDT", CANCEL, OrphanReason.OURS_UNKNOWN_INTENT_ENTRY, False),
        ("SOLUSDT", FREEZE, OrphanReason.FOREIGN_ORDER, False),
        ("ETHUSDT", ADOPT, OrphanReason.UNPROTECTED_POSITION, True),
    ]
    # The adopted position keeps the venue's own record.
    assert decisions[-1].subject is snap.positions[1]


def test_classify_snapshot_skips_frozen_orders_and_sees_protection():
    stop = sl_stop("i-1", qty="0.010")
    foreign = order("other-1")
    snap = AccountSnapshot(taken_at=1.0, open_orders=(stop, foreign), positions=(pos("0.010"),))
    decisions = classify_snapshot(
        snap,
        FLAT,
        known_client_order_ids=frozenset({stop.client_order_id}),
        ignored_order_ids=frozenset({foreign.order_id}),
    )
    assert [(d.action, d.reason) for d in decisions] == [(ADOPT, OrphanReason.PROTECTED_POSITION)]


# --------------------------------------------------------------------------- properties

SYMBOLS = (BTC, "ETHUSDT")
INTENTS = tuple(f"i-{n}" for n in range(6))


@st.composite
def contexts(draw):
    standings = draw(
        st.dictionaries(st.sampled_from(INTENTS), st.sampled_from(list(IntentStanding)), max_size=6)
    )
    positions = draw(
        st.lists(
            st.builds(
                VenuePosition,
                symbol=st.sampled_from(SYMBOLS),
                quantity=st.sampled_from([Decimal(q) for q in ("-1", "-0.5", "0", "0.5", "1")]),
                position_side=st.sampled_from(list(PositionSide)),
            ),
            max_size=4,
        )
    )
    return OrphanContext(
        intents={intent_digest(i): s for i, s in standings.items()}, positions=positions
    )


client_ids = st.one_of(
    st.builds(
        client_order_id,
        st.just("sc"),
        st.sampled_from(INTENTS) | st.text("abcdef0123456789-", min_size=1, max_size=12),
        st.sampled_from(list(Role)),
        st.integers(0, 3),
    ),
    st.from_regex(r"[A-Za-z0-9_\-]{1,30}", fullmatch=True),
    st.sampled_from(["autoclose-1", "adl_autoclose", "settlement_autoclose-9"]),
)

venue_orders = st.builds(
    order,
    client_ids,
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from(list(Side)),
    order_type=st.sampled_from(list(OrderType)),
    reduce_only=st.booleans(),
    close_position=st.booleans(),
    position_side=st.sampled_from(list(PositionSide)),
    status=st.sampled_from([VenueOrderStatus.NEW, VenueOrderStatus.PARTIALLY_FILLED]),
)


@st.composite
def configs(draw):
    reasons = draw(st.lists(st.sampled_from(list(OrphanReason)), unique=True, max_size=6))
    reason_actions = {r: draw(st.sampled_from(sorted(allowed_actions(r)))) for r in reasons}
    symbol_actions = draw(
        st.dictionaries(st.sampled_from(SYMBOLS), st.sampled_from(list(OrphanAction)))
    )
    return OrphansConfig(
        reason_actions=reason_actions,
        symbol_actions=symbol_actions,
        freeze_instead_of_cancel=draw(st.booleans()),
    )


@given(venue_orders, contexts(), configs())
def test_order_classification_is_total_deterministic_and_allowed(o, ctx, cfg):
    d = classify_order(o, ctx, cfg)
    assert d == classify_order(o, ctx, cfg)
    assert isinstance(d.action, OrphanAction)
    assert d.reason
    assert d.action in allowed_actions(d.reason)
    assert d.subject is o
    assert d.policy_source


@given(venue_orders, contexts(), configs())
def test_risk_increasing_order_of_undecided_intent_is_never_adopted(o, ctx, cfg):
    d = classify_order(o, ctx, cfg)
    if d.action is ADOPT and not is_position_reducing(o):
        info = parse_client_order_id(o.client_order_id, "sc")
        assert info.ours
        assert ctx.intents.get(info.intent_digest or "") is IntentStanding.OPEN


@given(venue_orders, contexts())
def test_default_policy_never_cancels_a_foreign_or_venue_order(o, ctx):
    d = classify_order(o, ctx)
    if not parse_client_order_id(o.client_order_id, "sc").ours:
        assert d.action is FREEZE


@given(venue_orders, contexts(), configs())
def test_foreign_orders_are_cancelled_only_by_explicit_reason_override(o, ctx, cfg):
    d = classify_order(o, ctx, cfg)
    if d.action is CANCEL and not parse_client_order_id(o.client_order_id, "sc").ours:
        assert cfg.reason_actions.get(d.reason) is CANCEL
        assert venue_generated_reason(o.client_order_id) is None


@given(
    st.sampled_from([Decimal(q) for q in ("-2", "-0.1", "0", "0.1", "2")]),
    st.sampled_from(list(PositionSide)),
    st.booleans(),
    configs(),
)
def test_position_classification_never_cancels(qty, side, protected, cfg):
    p = VenuePosition(symbol=BTC, quantity=qty, position_side=side)
    d = classify_position(p, protected=protected, config=cfg)
    assert d == classify_position(p, protected=protected, config=cfg)
    assert d.action in (ADOPT, FREEZE)
    assert d.reason
    assert d.requires_protection == (d.action is ADOPT and qty != 0 and not protected)
    if qty == 0:
        assert d.action is ADOPT


@settings(max_examples=60)
@given(st.lists(venue_orders, max_size=8), contexts(), configs(), st.randoms(use_true_random=False))
def test_batch_adopts_at_most_one_entry_per_intent_whatever_the_input_order(orders, ctx, cfg, rnd):
    decisions = classify_orders(orders, ctx, cfg)
    assert len(decisions) == len(orders)
    adopted: list[str] = []
    for d in decisions:
        assert isinstance(d.subject, VenueOrder)
        if d.action is ADOPT and not is_position_reducing(d.subject):
            digest = d.detail("intent_digest")
            assert digest is not None
            assert ctx.intents.get(digest) is IntentStanding.OPEN
            adopted.append(digest)
    assert len(adopted) == len(set(adopted))
    shuffled = list(orders)
    rnd.shuffle(shuffled)
    assert classify_orders(shuffled, ctx, cfg) == decisions
