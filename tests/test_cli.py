from typer.testing import CliRunner

from scalper import __version__
from scalper.cli import app
from scalper.core.ids import Role, client_order_id

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "inspect-id" in result.output
    assert "version" in result.output


def test_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_inspect_id_decodes_ours_and_flags_foreign():
    ours = client_order_id("sc", "i-42", Role.SL, 3)
    result = runner.invoke(app, ["inspect-id", ours, "autoclose-99"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "SL" in result.output
    assert "foreign" in result.output
    lines = [line for line in result.output.splitlines() if ours in line]
    assert lines
    assert "3" in lines[0]
