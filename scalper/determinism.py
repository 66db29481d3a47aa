"""Reproducible runs: the one place that touches trio's private scheduler RNG.

Theory of operation
-------------------

Scalper's promise for simulations is *same seed, same journal, byte for byte*. A run is
reproducible when every source of variation is pinned:

* **Time**: ``trio.testing.MockClock(autojump_threshold=0)``. Every sleep, timeout and
  backoff is virtual: when all tasks are blocked the clock jumps to the next deadline, so
  a run takes no wall time and its timestamps do not depend on the machine. Actors read
  time only through :class:`scalper.clock.Clock`.
* **Scheduling**: trio runs each batch of runnable tasks in a randomised order on purpose
  (so that code does not come to rely on an order). The randomness comes from a
  module-level ``random.Random`` in ``trio._core._run``; :func:`seed_trio_scheduler` seeds
  it and switches trio to the shuffled-but-seeded mode its Hypothesis integration uses.
  MockClock plus seeded actors is *not* enough without this: tasks that wake at the same
  virtual instant interleave differently from run to run.
* **Randomness**: every actor gets its own ``random.Random`` from :func:`derive_rng`, keyed
  by the run's seed and the actor's name, so adding an actor does not shift the streams of
  the others, and the key does not depend on ``PYTHONHASHSEED`` (no ``hash()``).
* **No escape hatches**: no threads (``trio.to_thread``), sockets or files in a simulated
  run: a task waiting on real I/O looks blocked to the autojump clock, which then fires
  timeouts while the real work is still going on. Use fakes (memory channels,
  ``httpx.MockTransport``, in-memory stores). And no iteration over sets of actors or
  messages (their order depends on hashing): use lists and dicts.

:func:`run_deterministic` puts the first two together around ``trio.run``.

Seeding the scheduler is process-wide: it affects every later ``trio.run`` in the process
until reseeded (trio's Hypothesis plugin does the same, and also reseeds it per example).
Because this relies on private trio attributes, :func:`seed_trio_scheduler` raises
:class:`DeterminismUnavailable` if they are gone rather than silently running
non-deterministically; ``tests/test_determinism.py`` guards them.
"""

import importlib
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import trio
import trio.testing

from scalper.core.errors_base import CoreValueError

__all__ = [
    "DeterminismUnavailable",
    "derive_rng",
    "run_deterministic",
    "seed_trio_scheduler",
]

_RUN_MODULE = "trio._core._run"
_RNG_ATTR = "_r"
_DETERMINISTIC_FLAG_ATTR = "_ALLOW_DETERMINISTIC_SCHEDULING"

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class DeterminismUnavailable(RuntimeError):  # noqa: N818 (reads as a condition, like trio's)
    """The installed trio no longer exposes the private scheduler hooks we rely on.

    Attributes:
        attribute: the dotted name that is missing or has an unexpected type.
        trio_version: the installed trio's version.
    """

    def __init__(self, attribute: str, trio_version: str, detail: str) -> None:
        super().__init__(
            f"cannot make trio's scheduler deterministic: {attribute} {detail} "
            f"(trio {trio_version}); pin a trio version that has it or port "
            "scalper.determinism.seed_trio_scheduler"
        )
        self.attribute = attribute
        self.trio_version = trio_version


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CoreValueError("seed", f"must be an integer, got {seed!r}")


def _is_nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def seed_trio_scheduler(seed: int) -> None:
    """Seed trio's scheduler RNG and make its batch ordering depend only on that seed.

    Seeds ``trio._core._run._r`` and sets ``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING``
    (trio then sorts each batch by task creation order before shuffling it with ``_r``).
    Process-wide: call it right before each ``trio.run`` that must replay.

    Raises:
        CoreValueError: if ``seed`` is not an integer.
        DeterminismUnavailable: if trio renamed or removed either attribute.
    """
    _check_seed(seed)
    version = trio.__version__
    try:
        run_module = importlib.import_module(_RUN_MODULE)
    except ImportError as exc:
        raise DeterminismUnavailable(_RUN_MODULE, version, "cannot be imported") from exc
    rng = getattr(run_module, _RNG_ATTR, None)
    if not isinstance(rng, random.Random):
        raise DeterminismUnavailable(
            f"{_RUN_MODULE}.{_RNG_ATTR}", version, f"is not a random.Random (found {rng!r})"
        )
    flag = getattr(run_module, _DETERMINISTIC_FLAG_ATTR, None)
    if not isinstance(flag, bool):
        raise DeterminismUnavailable(
            f"{_RUN_MODULE}.{_DETERMINISTIC_FLAG_ATTR}", version, f"is not a bool (found {flag!r})"
        )
    rng.seed(seed)
    setattr(run_module, _DETERMINISTIC_FLAG_ATTR, True)


def derive_rng(seed: int, name: str) -> random.Random:
    """An independent ``random.Random`` for the component ``name`` of the run ``seed``.

    Seeded from the string ``f"{seed}:{name}"``, which ``random.Random`` hashes with SHA-512:
    stable across processes and ``PYTHONHASHSEED`` values, and independent of which other
    components exist.

    Raises:
        CoreValueError: if ``seed`` is not an integer or ``name`` is empty.
    """
    _check_seed(seed)
    if not _is_nonempty_str(name):
        raise CoreValueError("name", f"must be a non-empty string, got {name!r}")
    return random.Random(f"{seed}:{name}")


def run_deterministic(
    async_fn: Callable[[*Ts], Awaitable[T]],
    *args: *Ts,
    seed: int,
    clock: trio.testing.MockClock | None = None,
) -> T:
    """Run ``async_fn(*args)`` under trio so that the same seed replays the same run.

    Seeds the scheduler (:func:`seed_trio_scheduler`) and runs with ``clock``, by default a
    fresh ``MockClock(autojump_threshold=0)`` (virtual time starting at 0.0). The run is
    reproducible as long as ``async_fn`` keeps to the rules in this module's docstring:
    time only from the clock, randomness only from injected RNGs (:func:`derive_rng`), no
    threads, sockets or files, no iteration over sets.

    Returns:
        What ``async_fn`` returned.

    Raises:
        DeterminismUnavailable: if trio's scheduler cannot be seeded.
    """
    seed_trio_scheduler(seed)
    return trio.run(
        async_fn,
        *args,
        clock=clock if clock is not None else trio.testing.MockClock(autojump_threshold=0),
    )
