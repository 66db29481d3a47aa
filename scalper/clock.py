"""The one injected clock of a running system.

Every actor reads time through a :class:`Clock`, never from ``time`` or ``datetime``:

* :meth:`Clock.now` is monotonic seconds on trio's clock (``trio.current_time``). Under
  ``trio.testing.MockClock`` it is virtual, so timeouts, backoffs, TTLs and journal
  timestamps are reproducible.
* :meth:`Clock.wall_ms` is epoch milliseconds, for what the exchange needs (request
  ``timestamp`` fields) and for display. It is ``epoch_ms_at_start`` plus the elapsed
  trio time, so under simulated time it is deterministic too; :func:`system_clock` reads
  the real wall clock exactly once, at construction.

The clock holds no state beyond its two numbers and is safe to share between actors.
"""

from collections.abc import Callable

import attrs
import trio

__all__ = ["Clock", "simulated_clock", "system_clock"]

#: 2026-01-01T00:00:00Z, the default epoch of simulated runs.
DEFAULT_SIM_EPOCH_MS = 1_767_225_600_000


@attrs.frozen
class Clock:
    """Monotonic and wall time for one system.

    Args:
        epoch_ms_at_start: the wall-clock reading, in epoch ms, that corresponds to
            ``trio_time_at_start``.
        trio_time_at_start: ``trio.current_time()`` when the clock was made.
        monotonic: the monotonic source; ``trio.current_time`` unless a test passes a stub.
    """

    epoch_ms_at_start: int
    trio_time_at_start: float = 0.0
    monotonic: Callable[[], float] = trio.current_time

    def now(self) -> float:
        """Seconds on the monotonic clock (trio's; virtual under MockClock)."""
        return self.monotonic()

    def from_wall_ms(self, wall_ms: int) -> float:
        """The monotonic reading that corresponds to an epoch-ms stamp (journal times).

        Journal rows carry wall time (it survives restarts); decisions compare monotonic
        time. Reconcile's grace windows must compare like with like.
        """
        return self.trio_time_at_start + (wall_ms - self.epoch_ms_at_start) / 1000.0

    def wall_ms(self) -> int:
        """Epoch milliseconds: the start reading plus the monotonic time elapsed since."""
        elapsed = self.monotonic() - self.trio_time_at_start
        return self.epoch_ms_at_start + round(elapsed * 1000)


def simulated_clock(epoch_ms: int = DEFAULT_SIM_EPOCH_MS) -> Clock:
    """A clock for runs under MockClock: wall time starts at ``epoch_ms`` (no real reads).

    Must be called inside ``trio.run`` (it reads trio's current time as the origin).
    """
    return Clock(epoch_ms_at_start=epoch_ms, trio_time_at_start=trio.current_time())


def system_clock() -> Clock:
    """A clock for production: the one place the real wall clock is read.

    Must be called inside ``trio.run``.
    """
    import time

    return Clock(
        epoch_ms_at_start=time.time_ns() // 1_000_000,  # noqa: TID251
        trio_time_at_start=trio.current_time(),
    )
