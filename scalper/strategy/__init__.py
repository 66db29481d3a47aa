"""Strategies: what decides *which* intents to submit, on top of scalper's execution layer.

Theory of operation
-------------------

A strategy never talks to the venue's order endpoints, the Router or the Journal directly.
It talks to a :class:`StrategyHost`: a narrow surface that a running
:class:`~scalper.system.System` satisfies through a thin adapter, that a researcher can
embed in a notebook, and that a test can fake with a few lines. Through it a strategy can

* read the **guard knobs** of the current posture (:class:`~scalper.core.posture.GuardKnobs`)
  to avoid proposing entries the Router would refuse anyway;
* read the **journal's account** (:class:`~scalper.state.AccountState`): positions, intents,
  their orders. It is the same ledger the Router checks (I5), so a strategy that reads it
  never believes in an order the system does not know about;
* **submit**, **cancel** and **replace** intents. Every submission goes through the
  Router's gates, which decide (entries: halt, knobs, caps; exits: never gated, I1). A
  refusal is an :class:`~scalper.actors.router.IntentReceipt` with ``accepted=False`` and a
  reason tag, never an exception: a strategy must treat refusal as a normal answer;
* read a **mark price** (the venue's ``premiumIndex`` or the simulator's price path).

Strategies get their clock and randomness injected (``scalper.clock.Clock``,
``random.Random``), so the same seed over the same venue gives the same intents.
"""

from decimal import Decimal
from typing import Protocol

from scalper.actors.router import IntentReceipt
from scalper.core.intents import Intent
from scalper.core.posture import GuardKnobs
from scalper.messages import ReplaceOrder
from scalper.state import AccountState

__all__ = ["ReplaceOutcome", "StrategyHost"]


class ReplaceOutcome(Protocol):
    """What a replace request came to (the ReplaceManager's final word).

    ``outcome`` is a tag such as ``replaced``, ``degraded``, ``filled_after_cancel``,
    ``gave_up`` or ``refused``; ``reason`` says why.
    """

    @property
    def outcome(self) -> str:
        """The outcome tag."""
        ...

    @property
    def reason(self) -> str:
        """Why it came to that (a reason tag or short text)."""
        ...


class StrategyHost(Protocol):
    """The surface a strategy trades through (see the module docstring)."""

    @property
    def knobs(self) -> GuardKnobs:
        """The entry limits the Router enforces right now."""
        ...

    @property
    def state(self) -> AccountState:
        """The journal's account: positions, intents and their orders (read only)."""
        ...

    async def submit(
        self,
        intent: Intent,
        *,
        confidence: float,
        reference_price: Decimal | None,
        source: str,
    ) -> IntentReceipt:
        """Submit an intent through the Router's gates; a refusal is a receipt, not an error."""
        ...

    async def cancel(self, intent_id: str, reason: str) -> None:
        """Cancel an intent's live orders (idempotent)."""
        ...

    async def replace(self, command: ReplaceOrder) -> ReplaceOutcome:
        """Replace the live order of ``command.intent_id`` with ``command.new_intent``."""
        ...

    async def mark_price(self, symbol: str) -> Decimal:
        """``symbol``'s current mark price (raises ``VenueError`` when it cannot be read)."""
        ...
