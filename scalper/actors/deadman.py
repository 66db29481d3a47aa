"""The dead-man switch: the exchange cancels our resting orders if this process goes silent.

Theory of operation
-------------------

Binance's ``countdownCancelAll`` arms a per-symbol timer at the exchange: unless it is
re-armed within ``countdown_ms``, every open order of the symbol is cancelled. A process
that hangs, loses its network or is killed therefore cannot leave resting entries working
for hours (the worst kind of unexplained exposure after a crash).

The :class:`DeadmanSwitch` arms the timer for a symbol while any of our plain orders rest
there (the journal's live orders), re-arms it every ``heartbeat_s`` (well inside the
countdown: by default three heartbeats fit in one countdown, so two lost heartbeats in a
row are survivable), and disarms it (countdown 0) once nothing rests. Arming and disarming
are journaled (:class:`~scalper.messages.DeadmanChanged`); failed heartbeats are journaled
with their streak (:class:`~scalper.messages.DeadmanFailed`) and, once the streak reaches
``pressure_after_failures``, raise posture pressure: a dead-man switch we cannot feed will
cancel our orders under us (only while orders rest: a failed disarm of a quiet symbol
is journaled but presses nothing).

Protective stops live on Binance's conditional (algo) endpoints; whether the countdown
cancels them is not documented, and the simulated exchange assumes it does not. Either
way the ProtectionManager re-places a stop that vanished, so the dead-man switch can never
leave filled exposure uncovered for longer than the gap TTL.
"""

import math
from collections.abc import Awaitable, Callable

import attrs
import trio

from scalper.actors.journal import Journal
from scalper.actors.validators import count, positive
from scalper.clock import Clock
from scalper.core.errors import Operation
from scalper.messages import DeadmanChanged, DeadmanFailed, PressureRaised
from scalper.venues.base import Venue, VenueError, call_within

__all__ = ["DeadmanConfig", "DeadmanSwitch"]


@attrs.frozen
class DeadmanConfig:
    """Countdown and heartbeat of the exchange dead-man switch.

    Attributes:
        enabled: arm the switch at all (a venue without the endpoint: off).
        countdown_ms: the exchange cancels the symbol's orders this long after the last
            heartbeat.
        heartbeat_s: re-arm period; at most a third of the countdown.
        request_timeout_s: bound on one heartbeat request.
        pressure_after_failures: consecutive failed heartbeats that raise posture pressure.
    """

    enabled: bool = True
    countdown_ms: int = attrs.field(default=60_000)
    heartbeat_s: float = attrs.field(default=15.0, validator=positive)
    request_timeout_s: float = attrs.field(default=5.0, validator=positive)
    pressure_after_failures: int = attrs.field(default=2, validator=count)

    def __attrs_post_init__(self) -> None:
        if type(self.countdown_ms) is not int or self.countdown_ms < 1000:
            raise ValueError(f"countdown_ms must be an integer >= 1000, got {self.countdown_ms!r}")
        if self.heartbeat_s * 1000 * 3 > self.countdown_ms:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s}) must be at most a third of countdown_ms "
                f"({self.countdown_ms}): a heartbeat must fit well inside the countdown"
            )


class DeadmanSwitch:
    """Arms, feeds and disarms the exchange's countdown cancel-all per symbol.

    Args:
        venue: the exchange.
        journal: where arming and failures are journaled; its state says what rests.
        clock: the injected clock.
        symbols: the symbols traded.
        config: countdown and heartbeat.
        on_pressure: where a starving switch's pressure goes (the BeliefController).
    """

    def __init__(
        self,
        venue: Venue,
        journal: Journal,
        *,
        clock: Clock,
        symbols: tuple[str, ...],
        config: DeadmanConfig | None = None,
        on_pressure: Callable[[PressureRaised], Awaitable[None]] | None = None,
    ) -> None:
        self._venue = venue
        self._journal = journal
        self._clock = clock
        self._symbols = symbols
        self.config = config or DeadmanConfig()
        self._on_pressure = on_pressure
        #: Symbols whose countdown is armed at the exchange (as far as we know).
        self.armed: set[str] = set()
        self.failures: dict[str, int] = {}
        self.heartbeats = 0

    def _resting(self, symbol: str) -> bool:
        return any(
            o.request.symbol == symbol and not o.conditional
            for o in self._journal.state.live_orders()
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Feed the switch until cancelled; a restart re-arms from the journal's live orders."""
        task_status.started()
        if not self.config.enabled:
            await trio.sleep_forever()
        # After a restart we do not know what the last process left armed: an explicit
        # disarm of a quiet symbol is harmless, a forgotten armed countdown is not.
        self.armed = set(self._symbols)
        last_beat: dict[str, float] = {}
        while True:
            now = self._clock.now()
            for symbol in self._symbols:
                resting = self._resting(symbol)
                armed = symbol in self.armed
                # A change (something rests now, or nothing does any more) is acted on at
                # once; a re-arm, and any retry after a failure, waits for the heartbeat.
                urgent = resting != armed and not self.failures.get(symbol)
                interval = 0.0 if urgent else self.config.heartbeat_s
                if (resting or armed) and now - last_beat.get(symbol, -math.inf) >= interval:
                    last_beat[symbol] = now
                    await self.beat(symbol)
            await trio.sleep(min(1.0, self.config.heartbeat_s))

    async def beat(self, symbol: str) -> None:
        """One heartbeat for ``symbol``: arm/re-arm while orders rest, else disarm once."""
        resting = self._resting(symbol)
        if not resting and symbol not in self.armed:
            return
        countdown = self.config.countdown_ms if resting else 0
        try:
            await call_within(
                self.config.request_timeout_s,
                Operation.OTHER,
                self._venue.countdown_cancel_all,
                symbol,
                countdown,
            )
        except VenueError as exc:
            streak = self.failures.get(symbol, 0) + 1
            self.failures[symbol] = streak
            await self._journal.append(DeadmanFailed(symbol, exc.verdict.reason, streak))
            starving = streak >= self.config.pressure_after_failures and resting
            if starving and self._on_pressure is not None:
                # Re-raised on every failed heartbeat, so the pressure holds while it lasts.
                event = PressureRaised(
                    source="deadman",
                    symbol=symbol,
                    cause="deadman_starving",
                    severity=0.6,
                    reason=f"{streak} heartbeats failed: {exc.verdict.reason}",
                    hold_s=self.config.countdown_ms / 1000.0,
                )
                await self._journal.append(event)
                await self._on_pressure(event)
            return
        self.failures.pop(symbol, None)
        self.heartbeats += 1
        if resting and symbol not in self.armed:
            self.armed.add(symbol)
            await self._journal.append(DeadmanChanged(symbol, True, countdown, "orders_resting"))
        elif not resting:
            self.armed.discard(symbol)
            await self._journal.append(DeadmanChanged(symbol, False, 0, "nothing_resting"))
