"""Many scenarios over many seeds: the chaos gate's campaign and its results table.

A campaign is the unit the "sometimes" catalogue is judged on: a dangerous path must be
reached by *some* run of the campaign (reliability_notes §1.3), while every invariant must
hold in *every* run.
"""

from collections.abc import Iterable, Sequence

import attrs
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from scalper.chaos.plan import Scenario
from scalper.chaos.runner import ChaosResult, RunOptions, run_scenario
from scalper.chaos.sometimes import REQUIRED

__all__ = ["Campaign", "run_campaign"]


@attrs.define
class Campaign:
    """The results of a campaign, by scenario, in run order."""

    results: dict[str, list[ChaosResult]] = attrs.Factory(dict)

    @property
    def ok(self) -> bool:
        """Every run passed and every required "sometimes" label was reached."""
        return all(r.ok for rs in self.results.values() for r in rs) and not self.unreached()

    def reached(self) -> set[str]:
        """Every label any run reached."""
        return {label for rs in self.results.values() for r in rs for label in r.reached}

    def unreached(self) -> list[str]:
        """Required labels no run reached (each one fails the campaign)."""
        reached = self.reached()
        return [label for label in REQUIRED if label not in reached]

    def failures(self) -> list[str]:
        """One line per failed run (first violation and how to reproduce), then unreached."""
        lines = []
        for runs in self.results.values():
            for r in runs:
                if not r.ok:
                    lines.append(f"FAIL {r.reproduce}: {r.violations[0].describe()}")
        lines.extend(f"UNREACHED sometimes label: {label}" for label in self.unreached())
        return lines

    def table(self) -> Table:
        """Scenario by scenario: runs, passes, the first failing seed, labels reached."""
        table = Table("scenario", "runs", "passed", "first failing seed", "reached")
        for name, runs in self.results.items():
            failing = [r.seed for r in runs if not r.ok]
            labels = sorted({label for r in runs for label in r.reached})
            table.add_row(
                name,
                str(len(runs)),
                str(len(runs) - len(failing)),
                str(failing[0]) if failing else "-",
                ", ".join(labels),
            )
        return table


def run_campaign(
    scenarios: Sequence[Scenario],
    seeds: Iterable[int],
    *,
    options: RunOptions | None = None,
    console: Console | None = None,
) -> Campaign:
    """Run every scenario with every seed (with a progress bar when ``console`` is given)."""
    seeds = list(seeds)
    campaign = Campaign()
    total = len(scenarios) * len(seeds)
    with Progress(console=console, disable=console is None, transient=True) as progress:
        task = progress.add_task("chaos", total=total)
        for scenario in scenarios:
            runs = campaign.results.setdefault(scenario.name, [])
            for seed in seeds:
                progress.update(task, description=f"{scenario.name} seed {seed}")
                runs.append(run_scenario(scenario, seed, options))
                progress.advance(task)
    return campaign
