"""``python -m scalper``: the command line.

Every command is a thin shell over library code, so what the CLI shows is exactly what the
system decides.
"""

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

    table = Table("benchmark", "calls x repeats", "median us/call", "best us/call", "calls/s")
    for r in run_benchmarks(only, repeats=repeats, scale=scale):
        table.add_row(
            r.name,
            f"{r.calls} x {repeats}",
            f"{r.median_us:,.2f}",
            f"{r.best_us:,.2f}",
            f"{r.per_second:,.0f}",
        )
    console.print(table)


def main() -> None:
    """Run the CLI (the ``scalper`` console script and ``python -m scalper``)."""
    app()
