"""Examples are documentation that runs: each must keep working."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_trade_against_sim_example_runs():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "trade_against_sim.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ack: FILLED" in out.stdout
    assert "stream fill: trade" in out.stdout
    assert "position: BTCUSDT 0.010" in out.stdout
    assert "canceled: CANCELED" in out.stdout
