"""``python -m scalper``: the command line.

Every command is a thin shell over library code, so what the CLI shows is exactly what the
system decides.
"""

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from scalper import __version__
from scalper.core.ids import DEFAULT_PREFIX, parse_client_order_id

app = typer.Typer(
    name="scalper",
    help="Execution-reliability layer for crypto perpetual futures (Binance USD-M).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.command()
def version() -> None:
    """Print scalper's version."""
    console.print(f"scalper {__version__}")


@app.command("inspect-id")
def inspect_id(
    client_order_ids: list[str] = typer.Argument(..., help="Client order ids seen at the venue."),  # noqa: B008
    prefix: str = typer.Option(DEFAULT_PREFIX, help="This installation's client-order-id prefix."),
) -> None:
    """Tell whether client order ids are ours, and decode role, intent digest and generation."""
    table = Table("client order id", "ours", "role", "intent digest", "generation")
    for coid in client_order_ids:
        info = parse_client_order_id(coid, prefix)
        table.add_row(
            coid,
            "yes" if info.ours else "no (foreign)",
            info.role.value if info.role else "-",
            info.intent_digest or "-",
            "-" if info.generation is None else str(info.generation),
        )
    console.print(table)


@app.command()
def bench(
    only: str | None = typer.Option(None, help="Run only benchmarks whose name contains this."),
    repeats: int = typer.Option(5, min=1, help="Repeats per benchmark (the median is reported)."),
    scale: float = typer.Option(1.0, min=0.01, help="Scale the number of calls per repeat."),
) -> None:
    """Measure the hot paths (median latency per call and calls per second)."""
    from scalper.bench import run_benchmarks

    table = Table()
    # Benchmark names are the point of the table: never truncate them on a narrow terminal.
    table.add_column("benchmark", no_wrap=True)
    for heading in ("calls x repeats", "median us/call", "best us/call", "calls/s"):
        table.add_column(heading, justify="right")
    for r in run_benchmarks(only, repeats=repeats, scale=scale):
        table.add_row(
            r.name,
            f"{r.calls} x {repeats}",
            f"{r.median_us:,.2f}",
            f"{r.best_us:,.2f}",
            f"{r.per_second:,.0f}",
        )
    console.print(table)


@app.command("config")
def config_command(
    show: bool = typer.Option(False, "--show", help="Print the effective configuration as TOML."),
    path: Path | None = typer.Option(  # noqa: B008
        None, "--config", help="TOML config file (SCALPER_* environment variables override it)."
    ),
) -> None:
    """Load and check the configuration: defaults, then the file, then SCALPER_* variables.

    Exits 2 with the offending key path on any error; with --show prints the effective
    configuration (secrets redacted), which loads back unchanged.
    """
    import os

    from scalper.config import ConfigError, load_config, render_config

    try:
        config = load_config(path, os.environ)
    except ConfigError as exc:
        Console(stderr=True).print(
            f"config error: {exc}", markup=False, highlight=False, soft_wrap=True
        )
        raise typer.Exit(code=2) from None
    if show:
        # Plain print: rich would wrap long lines and read [tables] as markup.
        print(render_config(config), end="")
    else:
        console.print("configuration OK", markup=False)


@app.command()
def serve(
    http_port: int = typer.Option(8765, min=0, max=65535, help="Operator API port on 127.0.0.1."),
    venue: str = typer.Option("sim", help="sim (loopback simulator), binance-testnet or binance."),
    rest_url: str | None = typer.Option(None, help="REST base URL of a Binance-compatible venue."),
    ws_url: str | None = typer.Option(None, help="User-stream base URL of that venue."),
    config: Path | None = typer.Option(  # noqa: B008
        None, "--config", help="TOML config file (SCALPER_* variables override it)."
    ),
    var_dir: Path = typer.Option(Path("var"), help="Where the journal and token live."),  # noqa: B008
    strategy: bool | None = typer.Option(
        None, help="Run the demo strategy (default: only against the simulator)."
    ),
    console: bool | None = typer.Option(None, help="Live console (default: if a terminal)."),
    duration: float | None = typer.Option(None, help="Stop cleanly after this many seconds."),
    seed: int | None = typer.Option(None, help="Override the config's seed."),
) -> None:
    """Run the trading system: by default against the loopback simulator with a demo strategy."""
    import trio

    from scalper.config import ConfigError
    from scalper.operator.auth import TokenFileError
    from scalper.serve import ServeOptions, VenueChoice
    from scalper.serve import serve as run_serve
    from scalper.store.errors import LedgerLocked, StoreCorrupt
    from scalper.venues.binance.credentials import CredentialsError

    try:
        choice = VenueChoice.CUSTOM if (rest_url or ws_url) else VenueChoice(venue)
        options = ServeOptions(
            venue=choice,
            rest_url=rest_url,
            ws_url=ws_url,
            http_port=http_port,
            var_dir=var_dir,
            config_path=config,
            strategy=strategy,
            console=console,
            duration_s=duration,
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        reason = trio.run(run_serve, options)
    except (ConfigError, LedgerLocked, StoreCorrupt, CredentialsError, TokenFileError) as exc:
        typer.echo(f"serve: {exc}", err=True)
        raise typer.Exit(code=2) from None
    print(f"scalper stopped: {reason}", flush=True)


@app.command("sim-exchange")
def sim_exchange(
    port: int = typer.Option(8900, min=0, max=65535, help="TCP port on 127.0.0.1 (0: any)."),
    symbols: str = typer.Option("BTCUSDT,ETHUSDT", help="Comma-separated symbols to list."),
    seed: int = typer.Option(1, help="Seed of prices, listen keys and faults."),
    api_key: str | None = typer.Option(None, help="API key clients must send (default: demo)."),
    api_secret: str | None = typer.Option(None, help="HMAC secret (default: demo)."),
    admin_token: str | None = typer.Option(None, help="Admin bearer token (default: demo)."),
) -> None:
    """Run the simulated Binance USD-M exchange on loopback until Ctrl-C.

    Any Binance futures client can trade against it: point its REST base URL and user
    stream URL at the printed ones and sign with the printed (demo) key and secret.
    """
    import time

    import trio

    from scalper.core.errors_base import CoreValueError
    from scalper.venues.sim import server as sim

    names: tuple[str, ...] = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    try:
        config = sim.SimServerConfig(
            port=port,
            symbols=names,
            seed=seed,
            api_key=api_key or sim.DEMO_API_KEY,
            api_secret=api_secret or sim.DEMO_API_SECRET,
            admin_token=admin_token or sim.DEMO_ADMIN_TOKEN,
            # The one wall-clock read: clients sign with their own clocks, so the venue's
            # epoch must be real time; from here on the server runs on trio's clock.
            epoch_at_start=time.time(),  # noqa: TID251
        )
        sim.engine_config_for(config)
    except CoreValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            handle: sim.SimServerHandle = await nursery.start(sim.serve_sim_exchange, config)
            # Demo credentials are printed so any client can be pointed at the simulator;
            # secrets given on the command line are never echoed.
            given = "<as given on the command line>"
            secret = config.api_secret if api_secret is None else given
            token = config.admin_token if admin_token is None else given
            lines = [
                "scalper simulated exchange, Binance USD-M wire format (no real money)",
                f"  REST base URL    {handle.rest_url}",
                f"  user stream      {handle.ws_url}/<listenKey>",
                f"                   {handle.private_ws_url}/<listenKey>",
                f"  API key          {config.api_key}",
                f"  API secret       {secret}",
                f"  admin URL        {handle.admin_url}  (Authorization: Bearer <token>)",
                f"  admin token      {token}",
                f"  symbols          {', '.join(config.symbols)}  (seed {config.seed})",
                "Demo credentials unless given; Ctrl-C to stop.",
            ]
            print("\n".join(lines), flush=True)

    try:
        trio.run(run)
    except* KeyboardInterrupt:
        pass
    print("sim-exchange stopped", flush=True)


@app.command()
def chaos(
    name: str | None = typer.Argument(None, help="The scenario to run (see --list)."),
    seed: int = typer.Option(1, help="The run's seed (prices, fault draws, scheduling)."),
    out: Path | None = typer.Option(None, help="Write journal, reports and metrics here."),  # noqa: B008
    list_: bool = typer.Option(False, "--list", help="List the scenarios and exit."),
    all_: bool = typer.Option(False, "--all", help="Run every scenario."),
    seeds: int = typer.Option(1, min=1, help="With --all: seeds 1..N per scenario."),
) -> None:
    """Run a deterministic fault scenario and report whether every invariant held.

    Exit code 0 only if every invariant held and the posture behaved as expected.
    """
    from scalper.chaos.artifacts import render_verdict, write_artifacts
    from scalper.chaos.campaign import run_campaign
    from scalper.chaos.runner import run_scenario
    from scalper.chaos.scenarios import SCENARIOS, scenario

    if list_:
        table = Table("scenario", "what happens", "proves")
        for s in SCENARIOS.values():
            table.add_row(s.name, s.description, ", ".join(s.proves))
        console.print(table)
        return
    if all_:
        if name is not None:
            raise typer.BadParameter("give a scenario name or --all, not both")
        campaign = run_campaign(list(SCENARIOS.values()), range(1, seeds + 1), console=console)
        console.print(campaign.table())
        for line in campaign.failures():
            typer.echo(line, err=True)
        raise typer.Exit(code=0 if campaign.ok else 1)
    if name is None:
        raise typer.BadParameter("name a scenario (python -m scalper chaos --list)")
    try:
        chosen = scenario(name)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None
    console.print(f"[bold]{chosen.name}[/bold]: {chosen.description} (seed {seed})")
    result = run_scenario(chosen, seed)
    for entry in result.timeline:
        print(entry.render())
    if out is not None:
        for path in write_artifacts(result, out):
            print(f"wrote {path}")
    print(render_verdict(result))
    raise typer.Exit(code=0 if result.ok else 1)


def main() -> None:
    """Run the CLI (the ``scalper`` console script and ``python -m scalper``)."""
    app()
