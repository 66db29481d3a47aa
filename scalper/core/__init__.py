"""The sans-I/O core: scalper's pure decision logic.

Nothing in this package performs I/O, reads a clock or uses global randomness. Time comes in
as ``now: float`` (seconds on the injected clock), randomness as a ``random.Random``. That is
what makes every decision testable with hypothesis and every run replayable byte for byte.
A test (``tests/core/test_purity.py``) enforces the import rules.

Modules, roughly in the order data flows through them:

* :mod:`~scalper.core.types`, :mod:`~scalper.core.model`: shared vocabulary and venue records.
* :mod:`~scalper.core.ids`: intent, correlation and client-order ids.
* :mod:`~scalper.core.intents`: validated intents; the entry/exit decision.
* :mod:`~scalper.core.errors`, :mod:`~scalper.core.retry`: error classes and bounded retries.
* :mod:`~scalper.core.orders`: order lifecycle and position-belief state machines.
* :mod:`~scalper.core.evidence`, :mod:`~scalper.core.belief`: source health and belief envelopes.
* :mod:`~scalper.core.posture`: belief debt to posture and guard knobs.
* :mod:`~scalper.core.reconcile`, :mod:`~scalper.core.orphans`: truth from the venue.
* :mod:`~scalper.core.protection`, :mod:`~scalper.core.replace`: stops and safe replaces.
* :mod:`~scalper.core.kill_switch`, :mod:`~scalper.core.slippage`, :mod:`~scalper.core.limits`.
"""
