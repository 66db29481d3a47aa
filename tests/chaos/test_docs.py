"""docs/chaos.md stays true: its scenario table and sections match the catalogue."""

import re
from pathlib import Path

import pytest

from scalper.chaos.scenarios import SCENARIOS

DOC = Path(__file__).resolve().parents[2] / "docs" / "chaos.md"
_NAME = re.compile(r"^`([a-z0-9-]+)`$")


def _table() -> dict[str, tuple[bool, bool, bool, list[str]]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or (m := _NAME.match(cells[0])) is None:
            continue
        degrade, recover, kill, reaches = cells[1:]
        assert degrade in ("yes", "no"), line
        assert recover in ("yes", "no"), line
        assert kill in ("yes", ""), line
        labels = re.findall(r"`([a-z_]+)`", reaches)
        rows[m.group(1)] = (degrade == "yes", recover == "yes", kill == "yes", labels)
    return rows


def test_the_table_lists_every_scenario_once() -> None:
    assert sorted(_table()) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_table_row_matches_the_scenario(name: str) -> None:
    scenario = SCENARIOS[name]
    expect = scenario.expect
    assert _table()[name] == (
        expect.degrade,
        expect.recover,
        expect.kill_switch,
        list(scenario.reaches),
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_has_its_section(name: str) -> None:
    assert f"\n### {name}\n" in DOC.read_text(encoding="utf-8")
