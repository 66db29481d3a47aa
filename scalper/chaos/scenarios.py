"""The named chaos scenarios: what each one attacks, and the script and faults that do it.

Every scenario runs 1000 s of simulated time on BTCUSDT (the system needs its first clean
reconciles before posture allows entries, about 90 s after each start, and three
minutes to reach GREEN), puts its
trouble between roughly t=260 s and t=550 s (the posture is GREEN by then), and ends with a fault-free tail in which the
system must reach quiescence: nothing unresolved, local = exchange, every trade journaled
once, every open position covered by a stop. ``docs/chaos.md`` describes each one.
"""

from scalper.chaos.plan import (
    ArmCrash,
    Cancel,
    Enter,
    Exit,
    Expectations,
    Halt,
    Kill,
    MovePrice,
    PlantOrphan,
    Replace,
    Resume,
    Scenario,
    Unfreeze,
    VenueCancel,
)
from scalper.core.ids import Role
from scalper.core.types import Side
from scalper.crashpoints import CrashKind, CrashPoint
from scalper.venues.sim.faults import FaultSpec

__all__ = ["SCENARIOS", "scenario"]

_CREATE = frozenset({"create"})
_CANCEL = frozenset({"cancel"})


def _f(
    start: float,
    end: float,
    kind: str,
    p: float = 1.0,
    ops: frozenset[str] | None = None,
    **params: object,
) -> FaultSpec:
    return FaultSpec(
        start=start,
        end=end,
        kind=kind,
        params=params,  # type: ignore[arg-type]
        probability=p,
        operations=ops,
    )


_ALL: tuple[Scenario, ...] = (
    Scenario(
        name="unknown-order",
        description="creates time out with the order placed; cancels answer 'unknown order' "
        "while the order is live",
        attacks="The two lies of the seed design's unknown-order ambiguity: a create whose "
        "answer is lost (was it placed?) and a cancel answered -2011 for an order that is in "
        "fact resting. A blind resend duplicates the entry; taking -2011 as success leaves a "
        "live order the ledger calls gone.",
        proves=("I3", "I4", "I7", "I7.resolve_before_resend", "E.no_orphan_order"),
        steps=(
            Enter(260, "uo-mkt"),
            Enter(280, "uo-rest", offset_bps=40),
            Cancel(410, "uo-rest"),
            Exit(530, "uo-exit"),
        ),
        faults=(
            _f(260, 340, "LOSE_RESPONSE", ops=_CREATE),
            _f(260, 340, "STREAM_DROP"),
            _f(260, 340, "LOSE_RESPONSE", p=0.7, ops=frozenset({"query"})),
            _f(400, 530, "CANCEL_UNKNOWN_BUT_LIVE", p=0.5, ops=_CANCEL),
        ),
        reaches=("unknown_resolved_present",),
    ),
    Scenario(
        name="replace-race",
        description="a replace's old order fills while it is being cancelled; a second "
        "replace meets a lying cancel",
        attacks="Replace is cancel-then-create. If the old order fills during the cancel, "
        "creating the new one doubles the exposure; if the cancel lies, old and new rest "
        "together. Both break I8's exposure envelope.",
        proves=("I8", "I3", "I7", "E.reduce_only_never_increases"),
        # rr-1 must still rest when its replace starts: 60 bps away and only 40 s of a
        # 2 bps/s walk (about 13 bps of spread) make an early fill a >4 sigma event, so the
        # fault's spike, not the market, is what fills it during the replace's cancel. (At
        # 8 bps and 110 s the walk filled it first and the race was never run.)
        steps=(
            Enter(260, "rr-1", offset_bps=60),
            Replace(300, "rr-1", "rr-2", offset_bps=30),
            Enter(410, "rr-3", offset_bps=40),
            Replace(490, "rr-3", "rr-4", offset_bps=35),
        ),
        faults=(
            _f(295, 330, "FILL_AFTER_CANCEL", ops=_CANCEL, mode="full"),
            _f(485, 550, "CANCEL_UNKNOWN_BUT_LIVE", p=0.5, ops=_CANCEL),
        ),
        expect=Expectations(degrade=False),
        reaches=("fill_after_cancel", "replace_filled_after_cancel", "stop_repaired"),
    ),
    Scenario(
        name="contradiction-burst",
        description="the user stream duplicates, reorders and delays events while REST "
        "snapshots lag, across several fills",
        attacks="Evidence that contradicts itself: a fill seen twice, NEW after FILLED, a "
        "snapshot older than the stream. A naive fold double-counts fills or flips orders "
        "back to life; the belief must widen and the posture degrade until it narrows.",
        proves=("I10", "I4", "I5"),
        steps=(
            Enter(260, "cb-1"),
            Enter(300, "cb-2"),
            Exit(350, "cb-x1"),
            Enter(390, "cb-3", offset_bps=5),
            Exit(470, "cb-x2"),
        ),
        faults=(
            _f(260, 530, "STREAM_DUPLICATE", p=0.5, copies=2),
            _f(260, 530, "STREAM_REORDER", p=0.5, max_delay_s=4.0),
            _f(260, 530, "SNAPSHOT_LAG", lag_s=8.0),
        ),
        expect=Expectations(degrade=False),
    ),
    Scenario(
        name="protection-gap",
        description="our stops are cancelled behind our back while stop placement fails "
        "for a minute and a half",
        attacks="A position with no stop at the exchange. The ProtectionManager must "
        "re-place it, and while it cannot, the gap must escalate the posture (I9) instead "
        "of staying silent; exits stay possible throughout (I1).",
        proves=("I9", "I1", "posture.degrades", "posture.recovers"),
        steps=(
            Enter(260, "pg-1"),
            VenueCancel(310, "stops"),
            VenueCancel(350, "stops"),
            VenueCancel(390, "stops"),
        ),
        faults=(_f(310, 410, "SERVICE_UNAVAILABLE_503", ops=_CREATE),),
        reaches=("stop_repaired",),
    ),
    Scenario(
        name="ack-timeout",
        description="the exchange accepts creates but every answer is lost for 80 s",
        attacks="The classic duplicate: the order is live, the client saw a timeout. Only "
        "a query by client order id may resolve it; a resend is a second entry (I7).",
        proves=("I7", "I7.resolve_before_resend", "I10"),
        steps=(Enter(260, "at-1"), Enter(285, "at-2", offset_bps=20), Exit(510, "at-x")),
        faults=(_f(260, 340, "LOSE_RESPONSE", ops=_CREATE),),
        # Resolved by query within seconds: a posture that moved would churn.
        expect=Expectations(degrade=False),
        reaches=("unknown_resolved_present",),
    ),
    Scenario(
        name="unknown-503-present",
        description="creates are placed and answered HTTP 503 'Unknown error'",
        attacks="Binance's 503 unknown means the execution status is unknown, not failed. "
        "Treating it as failed and resending duplicates the order.",
        proves=("I7", "I7.resolve_before_resend"),
        steps=(Enter(260, "up-1"), Enter(295, "up-2", offset_bps=25)),
        faults=(_f(260, 350, "UNKNOWN_503_PLACED", ops=_CREATE),),
        # Resolved by query within seconds: a posture that moved would churn.
        expect=Expectations(degrade=False),
        reaches=("unknown_resolved_present",),
    ),
    Scenario(
        name="unknown-503-absent",
        description="creates are answered HTTP 503 'Unknown error' and were never placed",
        attacks="The other half of the ambiguity: the order does not exist. The system must "
        "prove ABSENT (recvWindow expired, two not-found answers) before the next generation, "
        "and the generations are bounded (I2).",
        proves=("I7", "I2", "I7.resolve_before_resend"),
        steps=(Enter(260, "ua-1"),),
        faults=(_f(260, 310, "UNKNOWN_503_NOT_PLACED", ops=_CREATE),),
        # Proven ABSENT within seconds: nothing is uncertain for long.
        expect=Expectations(degrade=False),
        reaches=("unknown_resolved_absent",),
    ),
    Scenario(
        name="fill-after-cancel",
        description="a resting entry fills completely while its cancel is in flight",
        attacks="The cancel answers -2011 because the order just filled. Calling that a "
        "clean cancel loses the fill and leaves an unprotected, unknown position.",
        proves=("I3", "I10", "I9", "I4"),
        steps=(Enter(260, "fa-1", offset_bps=30), Cancel(360, "fa-1")),
        faults=(_f(355, 370, "FILL_AFTER_CANCEL", ops=_CANCEL, mode="full"),),
        expect=Expectations(degrade=False),
        reaches=("fill_after_cancel",),
    ),
    Scenario(
        name="cancel-unknown-but-live",
        description="cancels are answered -2011 'Unknown order' while the order rests",
        attacks="I3's exact case: unknown-on-cancel is success only if the fetched status "
        "says the order is gone. Believing the lie leaves a live order nobody tracks.",
        proves=("I3", "E.no_orphan_order", "E.no_phantom_order"),
        steps=(
            Enter(260, "cu-1", offset_bps=40),
            Enter(270, "cu-2", offset_bps=45),
            Cancel(360, "cu-1"),
            Cancel(365, "cu-2"),
        ),
        faults=(_f(355, 440, "CANCEL_UNKNOWN_BUT_LIVE", p=0.6, ops=_CANCEL),),
        expect=Expectations(degrade=False),
        reaches=("cancel_unknown_but_live",),
    ),
    Scenario(
        name="stream-gap",
        description="the user stream is down for a minute while entries and an exit fill",
        attacks="Fills the stream never delivers. Only the gap announcement and the REST "
        "trade backfill can find them; a lost fill is a wrong position (I10, I4).",
        proves=("I10", "I4", "I9"),
        steps=(Enter(315, "sg-1"), Enter(325, "sg-2"), Exit(345, "sg-x")),
        faults=(_f(310, 370, "STREAM_DISCONNECT"),),
        # The adapter reports the disconnect at once (stream_down): entries tighten to
        # YELLOW while the stream is blind, and recover once the gap is backfilled.
        reaches=("stream_gap_backfilled",),
    ),
    Scenario(
        name="stale-snapshot",
        description="REST snapshots answer from 20 s in the past while positions change",
        attacks="A snapshot older than the stream looks like drift, orphans and phantoms. "
        "Acting on it cancels live protection or flattens a real position; the reconciler "
        "must defer what is younger than the lag.",
        proves=("I4", "I9", "E.no_orphan_order"),
        steps=(Enter(260, "ss-1"), Enter(310, "ss-2"), Exit(370, "ss-x"), Enter(430, "ss-3")),
        faults=(_f(260, 530, "SNAPSHOT_LAG", lag_s=20.0),),
    ),
    Scenario(
        name="rate-limit-storm",
        description="70% of requests get HTTP 429 for two and a half minutes",
        attacks="A retry loop under 429 turns into a ban (418). Retries must back off, stay "
        "bounded (I2), and exits must still get through.",
        proves=("I2", "I1", "I9"),
        steps=(Enter(260, "rl-1"), Enter(310, "rl-2", offset_bps=20), Exit(370, "rl-x")),
        faults=(_f(270, 420, "RATE_LIMIT_429", p=0.7),),
        # The storm is long enough to drive the posture RED, and RED that lasts trips the
        # kill switch up its ladder (60 s, 300 s, 900 s): recovery needs a long tail.
        duration_s=1800.0,
        settle_s=1000.0,
    ),
    Scenario(
        name="clock-skew",
        description="half the creates arrive outside recvWindow and are rejected -1021",
        attacks="A request that arrives too late is refused by the gateway; the refusal is "
        "definite. Treating it as unknown blocks the intent; treating an unknown as -1021 "
        "would duplicate it.",
        proves=("I7", "I2"),
        steps=(Enter(260, "ck-1"), Enter(290, "ck-2", offset_bps=20), Enter(320, "ck-3")),
        faults=(_f(260, 410, "RECV_WINDOW_LATENCY", p=0.5, ops=_CREATE, latency_s=6.0),),
        expect=Expectations(degrade=False),
    ),
    Scenario(
        name="dribble-fills",
        description="many small fills in a row grow the position step by step",
        attacks="Every fill changes the size a stop must cover. Resizing on every fill "
        "churns orders (and rate limit); never resizing leaves exposure uncovered. The "
        "anti-churn policy must keep coverage within the TTL without a refresh storm.",
        proves=("I9", "I2"),
        steps=tuple(Enter(260 + 12 * i, f"df-{i}", quantity="0.002") for i in range(8)),
        expect=Expectations(degrade=False),
        reaches=("stop_repaired",),
    ),
    Scenario(
        name="duplicate-client-id",
        description="a zombie process already sent the order our Router is about to send",
        attacks="The exchange rejects the second order with -4116 (duplicate client order "
        "id). That answer proves the order exists: the Router must take it as PRESENT, "
        "never as a failure to retry under a new id (I7).",
        proves=("I7", "I7.resolve_before_resend"),
        steps=(
            PlantOrphan(259, for_intent="dc-1", offset_bps=40),
            Enter(259.5, "dc-1", offset_bps=40),
        ),
        # The -4116 proves the order present within the same second: nothing to degrade.
        expect=Expectations(degrade=False),
        reaches=("duplicate_client_id_rejected",),
    ),
    Scenario(
        name="restart-mid-entry",
        description="the process dies after the entry is journaled, before it is sent",
        attacks="The journal says SENDING, the exchange never saw it. The restart must "
        "prove it ABSENT before anything else, and not lose the intent's history.",
        proves=("I5", "I7", "I7.resolve_before_resend"),
        steps=(
            ArmCrash(250, CrashPoint.AFTER_INTENT_DURABLE, CrashKind.PROCESS),
            Enter(260, "rme-1"),
            Enter(530, "rme-2"),
        ),
        # A restarted process boots ORANGE and earns its way back.
        expect=Expectations(degrade_after=250.0),
        reaches=("crash_between_journal_and_send",),
    ),
    Scenario(
        name="restart-mid-replace",
        description="the process dies right after a replacement's create left, before its "
        "outcome was journaled",
        attacks="Half a replace: the old order cancelled, the new one placed but not "
        "recorded. The restart must find the new order by query (PRESENT), not place it "
        "again, and not resurrect the old one.",
        proves=("I8", "I7", "I5"),
        steps=(
            # Far enough from the market (and replaced soon enough) that the walk does not
            # fill it first on any seed: then there is nothing to replace and no crash.
            Enter(260, "rmr-1", offset_bps=60),
            ArmCrash(295, CrashPoint.AFTER_SEND_BEFORE_OUTCOME, CrashKind.PROCESS),
            Replace(300, "rmr-1", "rmr-2", offset_bps=55),
        ),
        # A restarted process boots ORANGE and earns its way back.
        expect=Expectations(degrade_after=295.0),
        reaches=("crash_after_send_before_outcome",),
    ),
    Scenario(
        name="restart-mid-partial-fill",
        description="fills missed during a stream outage are being backfilled when the "
        "process dies half-way through",
        attacks="Some fills of a batch journaled, the cursor not yet advanced. The restart "
        "must backfill again without applying any fill twice (I10) or skipping one.",
        proves=("I10", "I4", "I5"),
        steps=(
            ArmCrash(305, CrashPoint.MID_FILL, CrashKind.PROCESS),
            Enter(315, "rpf-1"),
            Enter(325, "rpf-2"),
        ),
        faults=(_f(310, 370, "STREAM_DISCONNECT"),),
        # The restart lands inside the outage with a stop still unresolved: on some seeds
        # (7 of 1-12) that is RED and a kill-switch halt, and the stream's evidence health
        # needs minutes to earn back the confidence RED unlocks on, so the switch climbs
        # its ladder to the 900 s rung. A long tail lets the halt run out and entries
        # come back; exits were never blocked.
        duration_s=1700.0,
        settle_s=980.0,
        reaches=("crash_mid_fill",),
    ),
    Scenario(
        name="orphans",
        description="orders nobody journaled rest at the exchange: one of ours, one "
        "protective, one foreign",
        attacks="Orphans are never ignored: an entry with our prefix but no intent is "
        "cancelled, a reduce-only exit for our open position is adopted, someone else's "
        "order freezes the symbol. A wrong call creates exposure nobody decided.",
        proves=("E.no_orphan_order", "I7", "I5"),
        steps=(
            Enter(260, "or-1"),
            PlantOrphan(310, for_intent="ghost-entry", offset_bps=150),
            PlantOrphan(
                315,
                for_intent="ghost-exit",
                role=Role.EXIT,
                side=Side.SELL,
                offset_bps=200,
                reduce_only=True,
            ),
            PlantOrphan(320, client_order_id="manual-4711", offset_bps=300),
            # The foreign order freezes the symbol until an operator has looked: they remove
            # it by hand, then lift the freeze (refused until a reconcile is clean).
            VenueCancel(430, "foreign"),
            Unfreeze(450),
        ),
        expect=Expectations(degrade_after=310.0),
        reaches=("orphan_cancelled", "orphan_adopted", "symbol_frozen"),
    ),
    Scenario(
        name="mismatch-storm",
        description="orders vanish, orphans appear and snapshots lag, pass after pass",
        attacks="Reconcile keeps finding the world different from the ledger, pass after "
        "pass (a foreign order sits on the symbol until someone removes it by hand). The "
        "kill switch must trip (entries halted), exits must keep working, and resume must "
        "wait for clean evidence.",
        proves=("I4", "I6", "I1", "posture.kill_switch_trips"),
        steps=(
            Enter(260, "ms-1"),
            Enter(270, "ms-2", offset_bps=40),
            VenueCancel(310, "entries"),
            VenueCancel(315, "stops"),
            PlantOrphan(320, for_intent="storm-1", offset_bps=120),
            VenueCancel(340, "stops"),
            PlantOrphan(345, for_intent="storm-2", offset_bps=130),
            PlantOrphan(350, client_order_id="manual-storm", offset_bps=250),
            VenueCancel(370, "stops"),
            Exit(410, "ms-x"),
            VenueCancel(560, "foreign"),
            Resume(670),
            Unfreeze(675),
        ),
        faults=(_f(310, 430, "SNAPSHOT_LAG", lag_s=6.0), _f(310, 430, "STREAM_DROP", p=0.5)),
        expect=Expectations(kill_switch=True),
        reaches=("kill_switch_tripped",),
    ),
    Scenario(
        name="actor-crash",
        description="the Router dies between journal and send; the reconciler dies mid-pass",
        attacks="A crashed actor is restarted by its supervisor and rebuilds from the "
        "journal; the half-done send is resolved, never blindly repeated.",
        proves=("I5", "I7", "I7.resolve_before_resend"),
        steps=(
            ArmCrash(250, CrashPoint.AFTER_INTENT_DURABLE, CrashKind.ACTOR),
            Enter(260, "ac-1"),
            ArmCrash(310, CrashPoint.DURING_RECONCILE, CrashKind.ACTOR),
            Enter(410, "ac-2"),
        ),
        # A supervisor restarts a crashed actor within a second and the half-done send is
        # resolved at once: the posture has nothing lasting to react to.
        expect=Expectations(degrade=False),
        reaches=("actor_restarted", "crash_between_journal_and_send"),
    ),
)

#: Every named scenario, by name, in catalogue order.
SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}

# Unused step kinds are still part of the plan language (hypothesis generates them).
_ = (Halt, Kill, MovePrice)


def scenario(name: str) -> Scenario:
    """The scenario called ``name``.

    Raises:
        KeyError: naming the unknown scenario and listing the known ones.
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"no chaos scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
