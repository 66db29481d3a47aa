"""What the operator surface reads and calls on a running system, as a structural type.

Theory of operation
-------------------

The operator surface (status views, metrics, the HTTP API, the console) is a *client* of
:class:`scalper.system.System`: it reads the journal's state, the posture and the
supervisor between awaits, and it acts only through the System's public commands
(``submit``, ``cancel``, ``halt``, ``resume``, ``unfreeze``), which go through the Router,
the BeliefController and the journal like everything else. It never reaches into an actor's private state and never writes the
journal except to record bad operator input (:class:`~scalper.messages.InvalidInput`).

:class:`OperatedSystem` lists exactly those members. ``System`` satisfies it structurally,
so nothing in the actor runtime depends on this package, and a test can check precisely
which surface the operator tooling relies on.
"""

from decimal import Decimal
from typing import Protocol

import trio

from scalper.actors.belief import BeliefController, ResumeResult
from scalper.actors.journal import Journal
from scalper.actors.router import IntentReceipt
from scalper.actors.supervisor import Supervisor
from scalper.clock import Clock
from scalper.core.intents import Intent
from scalper.core.posture import GuardKnobs
from scalper.system import CancelResult, SystemStatus, UnfreezeResult

__all__ = ["OperatedSystem"]


class OperatedSystem(Protocol):
    """The members of :class:`scalper.system.System` the operator surface uses."""

    @property
    def journal(self) -> Journal:
        """The single writer; ``journal.state`` is the account as the journal tells it."""
        ...

    @property
    def belief(self) -> BeliefController:
        """Posture, last decision and belief debt."""
        ...

    @property
    def supervisor(self) -> Supervisor:
        """The actor supervisor (``restart_counts``)."""
        ...

    @property
    def clock(self) -> Clock:
        """The injected clock (ages are measured on its wall time, like the journal's)."""
        ...

    @property
    def knobs(self) -> GuardKnobs:
        """The entry limits the Router enforces right now."""
        ...

    @property
    def stopped(self) -> trio.Event:
        """Set once the system has stopped (cleanly or by escalation)."""
        ...

    @property
    def stop_reason(self) -> str:
        """Why the system stopped (empty while it runs)."""
        ...

    def status(self) -> SystemStatus:
        """The system's own operator picture."""
        ...

    def unprotected_seconds(self) -> dict[str, float]:
        """Per symbol, how long its position has been uncovered by stops ({} when covered)."""
        ...

    async def submit(
        self,
        intent: Intent,
        *,
        confidence: float = 1.0,
        reference_price: Decimal | None = None,
        source: str = "strategy",
    ) -> IntentReceipt:
        """Submit an intent through the Router."""
        ...

    async def halt(self, reason: str) -> None:
        """Durable operator halt of new entries (exits continue)."""
        ...

    async def resume(self, reason: str = "operator") -> ResumeResult:
        """Operator resume; refused with the blocking reasons unless safe."""
        ...

    async def unfreeze(self, symbol: str, reason: str) -> UnfreezeResult:
        """Lift a symbol freeze; refused unless frozen and the last reconcile was clean."""
        ...

    async def cancel(self, intent_id: str, reason: str = "requested") -> CancelResult:
        """Cancel an intent's live orders through the Router (idempotent)."""
        ...
