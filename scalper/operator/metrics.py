"""Prometheus metrics read from a running system on each scrape.

Theory of operation
-------------------

Nothing in the actors counts for Prometheus. The journal's
:class:`~scalper.state.AccountState` already keeps every count that matters (it is rebuilt
by replay, so the numbers survive a restart, I5), the BeliefController holds the posture
and the supervisor the restarts. :class:`SystemCollector` is a custom collector that reads
them *at scrape time*, so a scrape can never disagree with ``/status`` about what the
journal says, and nothing here runs between scrapes.

The collector lives in a private :class:`prometheus_client.CollectorRegistry` built by
:func:`operator_registry`: the process-global registry is never touched, so two systems in
one process (tests, a notebook) cannot clash or leak series into each other. Scrapes run
on the trio thread (the operator API calls :func:`render_metrics` from its handler), so
the state is read between awaits, never half-updated; prometheus_client's own threaded
HTTP server must not be used for this registry.

Series (all prefixed ``scalper_``):

=========================================  ======  =====================================
``reconcile_runs_total``                   counter reconcile passes journaled
``reconcile_mismatch_runs_total``          counter passes that found a mismatch
``unknown_intents``                        gauge   intents with a SENDING/UNKNOWN order
``unknown_intent_oldest_age_seconds``      gauge   age of the oldest of them (0 if none)
``unprotected_seconds{symbol}``            gauge   how long a position has lacked stops
``retries_total{error_class}``             counter retry attempts by error class (I2)
``retries_by_operation_total{operation}``  counter retry attempts by operation
``posture{mode}``                          gauge   1 for the current mode, 0 for others
``posture_level``                          gauge   0 GREEN .. 3 RED
``journal_subscriber_lag{subscriber}``     gauge   entries waiting per subscriber
``orders_sent_total{lane}``                counter orders we sent (entry/exit): rate()
``fills_total``                            counter fills journaled (each trade once)
``halted``                                 gauge   1 while any halt holds
``running``                                gauge   1 until the system stops
``actor_restarts_total{actor}``            counter supervisor restarts per actor
``contradictions_total``                   counter evidence the order tracker refused
=========================================  ======  =====================================

Counters are totals over the whole journal (a restarted process replays them), which is
what Prometheus ``rate()`` expects: they never go down while the journal lives.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from scalper.core.errors import ErrorClass, Operation
from scalper.core.posture import PostureMode
from scalper.operator.target import OperatedSystem
from scalper.operator.views import unknown_intents

__all__ = [
    "METRICS_CONTENT_TYPE",
    "SystemCollector",
    "operator_registry",
    "render_metrics",
]

#: The content type of :func:`render_metrics` (Prometheus text format 0.0.4).
METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

_RETRY_PREFIX = "retries."
_ERROR_CLASSES = frozenset(c.value for c in ErrorClass)
_OPERATIONS = frozenset(o.value for o in Operation)


class SystemCollector:
    """A prometheus_client collector that reads ``system`` on every scrape.

    Args:
        system: the running system (see :class:`~scalper.operator.target.OperatedSystem`).
    """

    def __init__(self, system: OperatedSystem) -> None:
        self._system = system

    def describe(self) -> list[Metric]:
        """No up-front description: the label sets depend on the system's state."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every series (see the module docstring) from the system's current state."""
        system = self._system
        state = system.journal.state
        wall_ms = system.clock.wall_ms()

        yield CounterMetricFamily(
            "scalper_reconcile_runs",
            "Reconcile passes journaled.",
            value=state.count("reconcile_runs"),
        )
        yield CounterMetricFamily(
            "scalper_reconcile_mismatch_runs",
            "Reconcile passes that found a mismatch.",
            value=state.count("reconcile_mismatch_runs"),
        )

        unknown = unknown_intents(state, wall_ms)
        yield GaugeMetricFamily(
            "scalper_unknown_intents",
            "Intents with an order whose existence or outcome is not settled.",
            value=len(unknown),
        )
        yield GaugeMetricFamily(
            "scalper_unknown_intent_oldest_age_seconds",
            "Seconds since the oldest unresolved order was sent (0 when none).",
            value=max((u.age_s for u in unknown), default=0.0),
        )

        unprotected = GaugeMetricFamily(
            "scalper_unprotected_seconds",
            "Seconds a symbol's position has been uncovered by protective stops.",
            labels=["symbol"],
        )
        for symbol, seconds in sorted(system.unprotected_seconds().items()):
            unprotected.add_metric([symbol], max(0.0, float(seconds)))
        yield unprotected

        by_class = CounterMetricFamily(
            "scalper_retries", "Retry attempts by error class.", labels=["error_class"]
        )
        by_operation = CounterMetricFamily(
            "scalper_retries_by_operation",
            "Retry attempts by operation.",
            labels=["operation"],
        )
        for name, count in sorted(state.counters.items()):
            if not name.startswith(_RETRY_PREFIX):
                continue
            suffix = name[len(_RETRY_PREFIX) :]
            # The journal counts each retry twice, once under its class and once under its
            # operation (state.py); the two vocabularies are disjoint enums. Anything else
            # is shown as a class so that a new tag is visible rather than dropped.
            if suffix in _OPERATIONS and suffix not in _ERROR_CLASSES:
                by_operation.add_metric([suffix], count)
            else:
                by_class.add_metric([suffix], count)
        yield by_class
        yield by_operation

        mode = system.belief.posture.mode
        posture = GaugeMetricFamily(
            "scalper_posture", "1 for the current posture mode, 0 otherwise.", labels=["mode"]
        )
        for candidate in PostureMode:
            posture.add_metric([candidate.value], 1.0 if candidate is mode else 0.0)
        yield posture
        yield GaugeMetricFamily(
            "scalper_posture_level",
            "Posture level: 0 GREEN, 1 YELLOW, 2 ORANGE, 3 RED.",
            value=mode.level,
        )

        lag = GaugeMetricFamily(
            "scalper_journal_subscriber_lag",
            "Journal entries waiting in each subscriber's channel.",
            labels=["subscriber"],
        )
        for name, waiting in sorted(system.journal.subscriber_lag().items()):
            lag.add_metric([name], waiting)
        yield lag

        entries = exits = 0
        for order in state.orders.values():
            # Adopted orders (found at the venue with our prefix, never sent by this
            # journal) are recorded with recv_window_ms 0; every order we sent carries the
            # Router's recvWindow.
            if order.recv_window_ms <= 0:
                continue
            if order.risk_increasing:
                entries += 1
            else:
                exits += 1
        sent = CounterMetricFamily(
            "scalper_orders_sent", "Orders sent to the venue, by lane.", labels=["lane"]
        )
        sent.add_metric(["entry"], entries)
        sent.add_metric(["exit"], exits)
        yield sent

        yield CounterMetricFamily(
            "scalper_fills", "Fills journaled (each venue trade once).", value=state.count("fills")
        )
        yield GaugeMetricFamily(
            "scalper_halted", "1 while any halt holds (entries blocked).", value=int(state.halted)
        )
        yield GaugeMetricFamily(
            "scalper_running", "1 until the system stops.", value=int(not system.stopped.is_set())
        )

        restarts = CounterMetricFamily(
            "scalper_actor_restarts", "Supervisor restarts per actor.", labels=["actor"]
        )
        for actor, count in sorted(system.supervisor.restart_counts.items()):
            restarts.add_metric([actor], count)
        yield restarts
        yield CounterMetricFamily(
            "scalper_contradictions",
            "Evidence the order tracker refused (recorded, never fatal).",
            value=state.count("contradictions"),
        )


def operator_registry(system: OperatedSystem) -> CollectorRegistry:
    """A private registry (never the global one) holding a :class:`SystemCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SystemCollector(system))
    return registry


def render_metrics(system: OperatedSystem) -> bytes:
    """The system's metrics in Prometheus text format (:data:`METRICS_CONTENT_TYPE`)."""
    return generate_latest(operator_registry(system))
