"""The README's set-up commands are a promise: CI runs the test command word for word."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r'^TEST_CMD="(.+)"$', ci, re.MULTILINE)
    assert m, ".ci/run must define TEST_CMD"
    readme = (ROOT / "README.md").read_text()
    assert m.group(1) in readme, "README.md must show the exact test command CI runs"


def test_readme_main_command_uses_the_cli():
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/python -m scalper" in readme
