"""Named crash points: where a test or a chaos scenario can kill an actor or the process.

Random-time kills almost never land in the microseconds between "journal durable" and
"request sent", so the dangerous windows get names and the code calls
:meth:`CrashPoints.check` there. An armed point raises:

* :class:`ActorCrash` (an ``Exception``): the actor dies, its supervisor restarts it, and
  the restarted actor must rebuild from the journal;
* :class:`ProcessCrash` (a ``BaseException``, like ``SystemExit``): nothing in scalper
  catches it, the whole system unwinds as if the process had been killed, and the test
  starts a new system on the same store and the same exchange.

Unarmed, a check is a dictionary lookup. The object is injected (no global state), so two
systems in one test process never trip each other's points.
"""

import enum

import attrs

__all__ = ["ActorCrash", "CrashKind", "CrashPoint", "CrashPoints", "ProcessCrash"]


class CrashPoint(enum.StrEnum):
    """The named points."""

    #: The Router journaled OrderSending (durable) and has not sent the request yet.
    AFTER_INTENT_DURABLE = "router.after_intent_durable"
    #: The venue answered the create; the outcome is not journaled yet.
    AFTER_SEND_BEFORE_OUTCOME = "router.after_send_before_outcome"
    #: A backfill journaled some fills and has not stored its cursor yet.
    MID_FILL = "evidence.mid_fill"
    #: The Reconciler computed a result and has not journaled it yet.
    DURING_RECONCILE = "reconciler.during_reconcile"


class CrashKind(enum.StrEnum):
    """What an armed point kills."""

    ACTOR = "actor"
    PROCESS = "process"


class ActorCrash(Exception):  # noqa: N818 - named for what it simulates
    """An armed crash point killed an actor (its supervisor restarts it)."""


class ProcessCrash(BaseException):
    """An armed crash point killed the process (nothing inside scalper catches it)."""


@attrs.define
class CrashPoints:
    """The armed points of one system, and how often each point was reached."""

    _armed: dict[str, tuple[CrashKind, int]] = attrs.Factory(dict)
    hits: dict[str, int] = attrs.Factory(dict)
    fired: list[str] = attrs.Factory(list)

    def arm(self, point: CrashPoint, kind: CrashKind = CrashKind.ACTOR, *, skip: int = 0) -> None:
        """Fire ``point`` once, after letting it pass ``skip`` times."""
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")
        self._armed[point.value] = (CrashKind(kind), skip)

    def check(self, point: CrashPoint) -> None:
        """Called by the code at ``point``; raises if it is armed and due."""
        self.hits[point.value] = self.hits.get(point.value, 0) + 1
        armed = self._armed.get(point.value)
        if armed is None:
            return
        kind, skip = armed
        if skip > 0:
            self._armed[point.value] = (kind, skip - 1)
            return
        del self._armed[point.value]
        self.fired.append(point.value)
        if kind is CrashKind.PROCESS:
            raise ProcessCrash(point.value)
        raise ActorCrash(point.value)
