"""What a chaos run leaves on disk, so a failure can be read without re-running it.

:func:`write_artifacts` writes, into one directory:

* ``journal.jsonl``: every journal entry (seq, wall_ms, type, payload, hash), one per line;
* ``reconcile-report.json``: reconcile passes, totals by mismatch kind, the last summary
  and the unclean passes with their mismatches and repairs;
* ``summary.txt``: one line, ``reconcile_summary stale=… orphan=… drift=… unknown=…
  violations=…`` (mismatch totals over the run's reconcile passes; ``violations`` is the
  number of invariant violations the checker found);
* ``trades.csv``: every fill at the exchange (the ground truth) with how many times the
  journal recorded it (must be 1);
* ``metrics.txt``: the operator metrics at the end of the run (Prometheus text);
* ``timeline.txt`` and ``verdict.txt``: the printed story and the verdict with the
  reproduction command.
"""

import csv
import json
from pathlib import Path

from scalper.chaos.runner import ChaosResult

__all__ = ["TRADE_COLUMNS", "render_verdict", "write_artifacts"]

#: The columns of ``trades.csv``.
TRADE_COLUMNS = (
    "t",
    "symbol",
    "trade_id",
    "order_id",
    "client_order_id",
    "side",
    "quantity",
    "price",
    "realized_pnl",
    "journaled",
)


def render_verdict(result: ChaosResult) -> str:
    """The verdict block printed after the timeline (and saved as ``verdict.txt``)."""
    name = f"{result.scenario.name} (seed {result.seed})"
    lines = [result.summary_line()]
    if result.ok:
        lines.append(f"PASS {name}: every invariant held; posture expectations met")
    else:
        first = result.violations[0]
        lines.append(f"FAIL {name}: {len(result.violations)} violation(s)")
        lines.append(f"  first: {first.describe()}")
        for more in result.violations[1:6]:
            lines.append(f"  also:  {more.describe()}")
        lines.append(f"  reproduce: {result.reproduce}")
    reached = ", ".join(sorted(result.reached)) or "none"
    lines.append(f"reached: {reached}")
    lines.append(
        f"journal sha256 {result.fingerprint}; {len(result.journal_rows)} entries; "
        f"{result.incarnations} incarnation(s); final posture {result.final_posture}"
    )
    return "\n".join(lines)


def write_artifacts(result: ChaosResult, out: Path) -> list[Path]:
    """Write the run's files into ``out`` (created if missing); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    path = out / "journal.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for seq, wall_ms, type_, payload, hash_ in result.journal_rows:
            row = {"seq": seq, "wall_ms": wall_ms, "type": type_, "hash": hash_}
            row["payload"] = json.loads(payload)
            fh.write(json.dumps(row, sort_keys=True) + "\n")
    written.append(path)
    path = out / "reconcile-report.json"
    path.write_text(json.dumps(result.reconcile, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written.append(path)
    path = out / "summary.txt"
    path.write_text(result.summary_line() + "\n", encoding="utf-8")
    written.append(path)
    path = out / "trades.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(TRADE_COLUMNS)
        writer.writerows(result.trades)
    written.append(path)
    path = out / "metrics.txt"
    path.write_text(result.metrics_text, encoding="utf-8")
    written.append(path)
    path = out / "timeline.txt"
    path.write_text("\n".join(e.render() for e in result.timeline) + "\n", encoding="utf-8")
    written.append(path)
    path = out / "verdict.txt"
    path.write_text(render_verdict(result) + "\n", encoding="utf-8")
    written.append(path)
    return written
