"""``python -m scalper serve``: the whole system as a person runs it.

Theory of operation
-------------------

With no arguments, :func:`serve` starts the simulated Binance USD-M exchange on loopback
and trades against it through the *real* Binance adapter (HTTP signing, the user stream
over a WebSocket), so the production code path runs end to end without real money. The
pieces, started in this order inside one trio nursery:

1. the journal: ``./var/scalper.db`` (SQLite, WAL, hash chain), written on a worker
   thread with group commit. Opening it takes the lock file, so two ``serve`` processes
   can never write one journal;
2. the venue: the loopback simulator (default), Binance's testnet, Binance, or any
   Binance-compatible endpoint (``--rest-url``/``--ws-url``); keys for real venues come
   only from ``SCALPER_API_KEY``/``SCALPER_API_SECRET`` or their ``*_FILE`` variants;
3. the :class:`~scalper.system.System` (every actor under its supervisor). The restart
   reason is journaled: ``start`` for a new journal, ``restart`` after a clean stop,
   ``crash_recovery`` when the last process did not journal its stop;
4. the operator HTTP API on ``127.0.0.1:<--http-port>`` (bearer token in
   ``./var/operator.token``, mode 0600);
5. the demo strategy: on by default only against the simulator (``--strategy`` or
   ``--no-strategy`` decide explicitly);
6. the console view (when stdout is a terminal, or with ``--console``).

Ctrl-C (SIGINT) or SIGTERM stops the system cleanly: the actors are cancelled, the
journal's last words (``system_stopped``) are made durable, the store is closed and the
lock released. A restart picks up from the journal.
"""

import enum
import os
import random
import signal
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import attrs
import trio

from scalper.actors.replace import ReplaceResult
from scalper.actors.router import IntentReceipt
from scalper.clock import Clock, system_clock
from scalper.config import load_config
from scalper.core.intents import Intent
from scalper.core.posture import GuardKnobs
from scalper.messages import ReplaceOrder
from scalper.operator.api import serve_operator_api
from scalper.operator.console import run_console
from scalper.state import AccountState
from scalper.store.store import Store
from scalper.store.writer import ThreadExecutor
from scalper.strategy.demo import DemoStrategy
from scalper.system import System, SystemConfig, open_system
from scalper.venues.binance.client import BinanceVenue
from scalper.venues.binance.config import BinanceConfig
from scalper.venues.binance.credentials import load_credentials
from scalper.venues.binance.signing import ApiCredentials
from scalper.venues.sim import server as sim
from scalper.venues.sim.engine import SimConfig

__all__ = ["ServeOptions", "VenueChoice", "restart_reason_for", "serve"]


class VenueChoice(enum.StrEnum):
    """Where ``serve`` trades."""

    SIM = "sim"
    BINANCE_TESTNET = "binance-testnet"
    BINANCE = "binance"
    CUSTOM = "custom"


@attrs.frozen
class ServeOptions:
    """What ``serve`` was asked to do (the command line, validated).

    Attributes:
        venue: where to trade; CUSTOM needs ``rest_url`` and ``ws_url``.
        rest_url: REST base URL of a Binance-compatible endpoint.
        ws_url: user-stream base URL of that endpoint.
        http_port: the operator API's port on loopback (0: any free port).
        http_host: the operator API's bind address; loopback unless ``allow_remote``.
        allow_remote: permit a non-loopback operator API bind.
        var_dir: where the journal and the token file live.
        config_path: a TOML config file (plus ``SCALPER_*`` overrides from the environment).
        strategy: run the demo strategy (None: only against the simulator; a real venue
            needs an explicit ``--strategy``, since the demo trades real money there).
        console: show the live console (None: only when stdout is a terminal).
        duration_s: stop cleanly after this many seconds (None: until Ctrl-C).
        seed: overrides the config's seed (strategy and simulator).
    """

    venue: VenueChoice = VenueChoice.SIM
    rest_url: str | None = None
    ws_url: str | None = None
    http_port: int = 8765
    http_host: str = "127.0.0.1"
    allow_remote: bool = False
    var_dir: Path = Path("var")
    config_path: Path | None = None
    strategy: bool | None = None
    console: bool | None = None
    duration_s: float | None = None
    seed: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.venue is VenueChoice.CUSTOM and not (self.rest_url and self.ws_url):
            raise ValueError("a custom venue needs both --rest-url and --ws-url")
        if self.venue is not VenueChoice.CUSTOM and (self.rest_url or self.ws_url):
            raise ValueError("--rest-url/--ws-url select a custom venue; drop --venue")
        if not 0 <= self.http_port <= 65535:
            raise ValueError(f"--http-port must be in 0..65535, got {self.http_port}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"--duration must be positive, got {self.duration_s}")


def demo_pace(config: SystemConfig) -> SystemConfig:
    """The simulator demo's pace: posture earns entries back in seconds, not minutes.

    Production values keep a restarted system in ORANGE for about two minutes of clean
    reconciles; against the loopback simulator (no money at stake) ``serve`` shortens the
    warm-up so a person sees orders, fills and stops within seconds. Only applied to the simulator when no config file is given; every rule is the
    same, only the clocks are shorter.
    """
    posture = attrs.evolve(
        config.posture,
        recover_s=8.0,
        persist_s=4.0,
        post_red_warmup_s=20.0,
        unlock_contradiction_clear_s=10.0,
        base_entry_cooldown_s=2.0,
        cooldown_extra_s=6.0,
    )
    # Evidence is read at the production pace: a snapshot costs about 90 request weight,
    # and Binance's 2400/min budget (which the simulator enforces) has to carry orders too.
    return attrs.evolve(config, posture=posture)


def _lively_engine() -> SimConfig:
    """The simulator's default market, moving enough that resting demo orders fill.

    The default path moves about 1 bp per second, so a passive entry inside a 1 bp spread
    can wait minutes for a fill; 4 bp per second shows fills, stops and take-profits in
    the first minute.
    """
    base = SimConfig()
    symbols = tuple(
        attrs.evolve(s, path=attrs.evolve(s.path, volatility_bps=4.0)) for s in base.symbols
    )
    return attrs.evolve(base, symbols=symbols)


def restart_reason_for(store: Store) -> str:
    """``start`` (new journal), ``restart`` (clean stop), ``escalation_recovery`` or ``crash_recovery``."""
    last = store.last_entry()
    if last is None:
        return "start"
    if last.type != "system_stopped":
        return "crash_recovery"
    # An escalation stops the system with clean=false: the next start recovers from it.
    return "restart" if '"clean":true' in last.payload else "escalation_recovery"


@attrs.define
class _Host:
    """The demo strategy's view of a running System (:class:`~scalper.strategy.StrategyHost`)."""

    system: System
    venue: BinanceVenue

    @property
    def knobs(self) -> GuardKnobs:
        return self.system.knobs

    @property
    def state(self) -> AccountState:
        return self.system.journal.state

    async def submit(
        self, intent: Intent, *, confidence: float, reference_price: Decimal | None, source: str
    ) -> IntentReceipt:
        return await self.system.submit(
            intent, confidence=confidence, reference_price=reference_price, source=source
        )

    async def cancel(self, intent_id: str, reason: str) -> None:
        await self.system.cancel(intent_id, reason)

    async def replace(self, command: ReplaceOrder) -> ReplaceResult:
        return await self.system.replace(command)

    async def mark_price(self, symbol: str) -> Decimal:
        return await self.venue.mark_price(symbol)


def _binance_config(options: ServeOptions) -> BinanceConfig:
    if options.venue is VenueChoice.BINANCE:
        return BinanceConfig.live()
    if options.venue is VenueChoice.BINANCE_TESTNET:
        return BinanceConfig.testnet()
    assert options.rest_url is not None
    assert options.ws_url is not None
    return BinanceConfig.custom(options.rest_url, options.ws_url)


async def serve(
    options: ServeOptions,
    *,
    env: dict[str, str] | None = None,
    say: Callable[[str], None] = print,
    task_status: trio.TaskStatus[System] = trio.TASK_STATUS_IGNORED,
) -> str:
    """Run the system until Ctrl-C, SIGTERM or ``duration_s``; return how it stopped.

    Args:
        options: the validated command line.
        env: the environment (``SCALPER_*`` config overrides and API keys); defaults to
            ``os.environ``.
        say: where the start-up banner goes.
        task_status: receives the running :class:`~scalper.system.System` (for tests).
    """
    environ = dict(os.environ) if env is None else env
    config = load_config(options.config_path, environ)
    if options.seed is not None:
        config = attrs.evolve(config, seed=options.seed)
    if options.venue is VenueChoice.SIM and options.config_path is None:
        config = demo_pace(config)
    options.var_dir.mkdir(parents=True, exist_ok=True)
    # Commits run on a worker thread (ThreadExecutor); the store serializes its own calls.
    store = Store.open(str(options.var_dir / "scalper.db"), check_same_thread=False)
    reason = restart_reason_for(store)
    try:
        async with trio.open_nursery() as nursery:
            clock: Clock
            if options.venue is VenueChoice.SIM:
                sim_config = sim.SimServerConfig(
                    port=0,
                    symbols=config.symbols,
                    seed=config.seed,
                    epoch_at_start=None,
                    engine=_lively_engine(),
                )
                handle: sim.SimServerHandle = await nursery.start(
                    sim.serve_sim_exchange, sim_config
                )
                # One epoch for the simulator and us: the system's wall clock is the
                # simulator's (which starts at its configured epoch).
                clock = Clock(
                    epoch_ms_at_start=handle.app.venue_time_ms(),
                    trio_time_at_start=trio.current_time(),
                )
                binance = BinanceConfig.custom(handle.rest_url, handle.private_ws_url)
                credentials = ApiCredentials(sim.DEMO_API_KEY, sim.DEMO_API_SECRET.encode())
                where = f"simulated exchange on {handle.rest_url} (no real money)"
            else:
                clock = system_clock()
                binance = _binance_config(options)
                credentials = load_credentials(environ)
                where = f"{options.venue.value} at {binance.rest_url}"
            async with BinanceVenue(
                binance, credentials, wall_clock_ms=clock.wall_ms, clock=clock.now
            ) as venue:
                stopped = await _run(
                    options, config, venue, store, clock, reason, where, say, task_status
                )
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    return stopped


async def _run(
    options: ServeOptions,
    config: SystemConfig,
    venue: BinanceVenue,
    store: Store,
    clock: Clock,
    reason: str,
    where: str,
    say: Callable[[str], None],
    task_status: trio.TaskStatus[System],
) -> str:
    async with (
        open_system(
            config, venue, store, clock=clock, executor=ThreadExecutor(), restart_reason=reason
        ) as system,
        trio.open_nursery() as nursery,
    ):
        api = await nursery.start(_serve_api, system, options, options.var_dir / "operator.token")
        say(
            "\n".join(
                [
                    "scalper serve",
                    f"  venue        {where}",
                    f"  journal      {options.var_dir / 'scalper.db'}  ({reason}, "
                    f"incarnation {store.incarnation})",
                    f"  operator API {api.url}  (token in {api.token_path})",
                    f"  symbols      {', '.join(config.symbols)}  (seed {config.seed})",
                    "Ctrl-C stops cleanly.",
                ]
            )
        )
        run_strategy = (
            options.venue is VenueChoice.SIM if options.strategy is None else options.strategy
        )
        if run_strategy:
            strategy = DemoStrategy(
                _Host(system, venue),
                symbols=config.symbols,
                rng=random.Random(f"{config.seed}:demo"),
                clock=clock,
            )
            nursery.start_soon(strategy.run)
        show_console = sys.stdout.isatty() if options.console is None else options.console
        if show_console:
            nursery.start_soon(run_console, system)
        task_status.started(system)
        why = await _wait_for_stop(system, options.duration_s)
        system.stop(why)
        nursery.cancel_scope.cancel()
    return system.stop_reason


async def _serve_api(
    system: System,
    options: ServeOptions,
    token_path: Path,
    *,
    task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_operator_api(
        system,
        token_path=token_path,
        host=options.http_host,
        port=options.http_port,
        allow_non_loopback=options.allow_remote,
        task_status=task_status,
    )


async def _wait_for_stop(system: System, duration_s: float | None) -> str:
    """Return the stop reason: a signal, the duration, or the system stopping by itself."""
    reason = "stopped"
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                nonlocal reason
                async for signum in signals:
                    reason = f"signal_{signal.Signals(signum).name}"
                    nursery.cancel_scope.cancel()
                    return

            async def on_duration() -> None:
                nonlocal reason
                if duration_s is None:
                    await trio.sleep_forever()
                await trio.sleep(duration_s)
                reason = "duration_elapsed"
                nursery.cancel_scope.cancel()

            async def on_system() -> None:
                nonlocal reason
                await system.stopped.wait()
                reason = system.stop_reason or "system_stopped"
                nursery.cancel_scope.cancel()

            nursery.start_soon(on_signal)
            nursery.start_soon(on_duration)
            nursery.start_soon(on_system)
    return reason
