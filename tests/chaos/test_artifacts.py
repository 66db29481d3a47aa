"""Tests for scalper.chaos.artifacts: the files a chaos run leaves for a person to read.

One short real run (a 400 s scenario with one market entry at t=150: about a second of
real time) feeds every test; each test writes the artifacts into its own directory and
reads them back the way a person or a CI job would: the summary line by regex, the trades
as CSV, the journal as JSON lines, the metrics with the Prometheus parser.
"""

import csv
import json
import re
from pathlib import Path

import attrs
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scalper.chaos.artifacts import TRADE_COLUMNS, render_verdict, write_artifacts
from scalper.chaos.checks import Violation
from scalper.chaos.plan import Enter, Expectations, Scenario
from scalper.chaos.runner import SYMBOL, ChaosResult, run_scenario

SUMMARY = re.compile(
    r"^reconcile_summary stale=\d+ orphan=\d+ drift=\d+ unknown=\d+ violations=\d+$"
)
FILES = {
    "journal.jsonl",
    "reconcile-report.json",
    "summary.txt",
    "trades.csv",
    "metrics.txt",
    "timeline.txt",
    "verdict.txt",
}
TINY = Scenario(
    name="tiny-entry",
    description="one market entry once the posture allows it; no faults",
    attacks="nothing: the artifacts of a clean run",
    proves=("I10",),
    steps=(Enter(150, "art-1"),),
    duration_s=400,
    settle_s=100,
    expect=Expectations(degrade=False),
)


@pytest.fixture(scope="module")
def result() -> ChaosResult:
    return run_scenario(TINY, 11)


@pytest.fixture
def out(result: ChaosResult, tmp_path: Path) -> Path:
    directory = tmp_path / "runs" / "tiny-entry-11"  # missing parents are created
    written = write_artifacts(result, directory)
    assert [p.parent for p in written] == [directory] * len(written)
    assert {p.name for p in written} == FILES
    return directory


def test_the_run_passed_and_traded(result):
    # The rest of the file reads this run's artifacts; make sure there is something in them.
    assert result.ok, render_verdict(result)
    assert result.incarnations == 1
    assert len(result.trades) >= 1


def test_every_file_exists_and_is_not_empty(out):
    assert {p.name for p in out.iterdir()} == FILES
    for name in FILES:
        assert (out / name).stat().st_size > 0, name


def test_summary_is_one_line_in_the_documented_format(out, result):
    text = (out / "summary.txt").read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 1
    assert SUMMARY.match(lines[0]), lines[0]
    assert lines[0] == result.summary_line()
    assert lines[0].endswith(" violations=0")


def test_trades_csv_has_the_columns_and_every_trade_journaled_once(out, result):
    with (out / "trades.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == TRADE_COLUMNS
    trades = [dict(zip(TRADE_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(trades) == len(result.trades) >= 1
    for trade in trades:
        assert trade["journaled"] == "1", trade
        assert trade["symbol"] == SYMBOL
        assert trade["client_order_id"].startswith("sc-")
        assert float(trade["t"]) >= 150.0  # nothing traded before the script's entry
    entry = trades[0]
    assert entry["client_order_id"].startswith("sc-E-")
    assert (entry["side"], entry["quantity"]) == ("BUY", "0.002")


def test_journal_lines_are_json_with_increasing_seq(out, result):
    lines = (out / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == len(result.journal_rows)
    seqs = [row["seq"] for row in rows]
    assert seqs == list(range(1, len(rows) + 1))  # increasing, no holes
    for row in rows:
        assert set(row) == {"seq", "wall_ms", "type", "payload", "hash"}
        assert isinstance(row["payload"], dict)
        assert re.fullmatch(r"[0-9a-f]{64}", row["hash"])
    assert rows[0]["type"] == "system_started"
    assert rows[-1]["type"] == "system_stopped"
    walls = [row["wall_ms"] for row in rows]
    assert walls == sorted(walls)
    fills = [row for row in rows if row["type"] == "fill_applied"]
    assert len(fills) == len(result.trades)


def test_reconcile_report_parses_and_agrees_with_the_summary(out, result):
    report = json.loads((out / "reconcile-report.json").read_text(encoding="utf-8"))
    assert report["passes"] > 0
    assert report["clean_passes"] <= report["passes"]
    totals = report["totals"]
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    for key in ("stale", "orphan", "drift", "unknown"):
        assert f"{key}={totals.get(key, 0)}" in summary


def test_metrics_parse_as_prometheus_text(out):
    text = (out / "metrics.txt").read_text(encoding="utf-8")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families
    runs = families["scalper_reconcile_runs"]
    assert runs.type == "counter"
    assert runs.samples[0].value > 0


def test_timeline_and_verdict_files_hold_the_printed_story(out, result):
    timeline = (out / "timeline.txt").read_text(encoding="utf-8").splitlines()
    assert timeline == [e.render() for e in result.timeline]
    assert any("enter art-1 MARKET: accepted" in line for line in timeline)
    verdict = (out / "verdict.txt").read_text(encoding="utf-8")
    assert verdict == render_verdict(result) + "\n"


def test_render_verdict_says_pass_for_a_passing_run(result):
    verdict = render_verdict(result)
    lines = verdict.splitlines()
    assert lines[0] == result.summary_line()
    assert lines[1] == "PASS tiny-entry (seed 11): every invariant held; posture expectations met"
    assert "FAIL" not in verdict
    assert f"journal sha256 {result.fingerprint}" in verdict
    assert re.fullmatch(r"[0-9a-f]{64}", result.fingerprint)


def test_render_verdict_says_fail_with_the_first_violation_and_the_replay_command(result):
    broken = attrs.evolve(
        result,
        violations=[
            Violation("I7.one_order_per_intent", 151.2, "2 orders accepted", "art-1", "c-1"),
            Violation("I4.position_agrees", 400.0, "BTCUSDT: local 0, exchange 0.002"),
        ],
    )
    verdict = render_verdict(broken)
    assert not broken.ok
    assert "FAIL tiny-entry (seed 11): 2 violation(s)" in verdict
    assert "  first: I7.one_order_per_intent at t=151.2s: 2 orders accepted [intent art-1]" in (
        verdict
    )
    assert "  also:  I4.position_agrees" in verdict
    assert "  reproduce: python -m scalper chaos tiny-entry --seed 11" in verdict
    assert "PASS" not in verdict
    assert broken.summary_line().endswith(" violations=2")


def test_writing_again_replaces_the_files(result, out):
    before = {name: (out / name).read_bytes() for name in FILES}
    (out / "summary.txt").write_text("stale leftovers\n", encoding="utf-8")
    write_artifacts(result, out)
    assert {name: (out / name).read_bytes() for name in FILES} == before
