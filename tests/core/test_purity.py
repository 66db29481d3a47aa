"""scalper.core must stay sans-I/O: no I/O libraries, no clock, no global randomness."""

import ast
import pathlib

import pytest

CORE = pathlib.Path(__file__).resolve().parents[2] / "scalper" / "core"
FORBIDDEN_MODULES = {
    "trio",
    "httpx",
    "sqlite3",
    "asyncio",
    "socket",
    "threading",
    "os",
    "time",
    "datetime",
    "subprocess",
    "trio_websocket",
    "uuid",
    "secrets",
    "multiprocessing",
}
# `random` is allowed only for the `random.Random` type of injected generators.
ALLOWED_RANDOM_NAMES = {"Random"}


def core_files():
    files = sorted(CORE.glob("*.py"))
    assert files, "scalper/core is empty?"
    return files


@pytest.mark.parametrize("path", core_files(), ids=lambda p: p.name)
def test_core_module_imports_nothing_forbidden(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                assert root not in FORBIDDEN_MODULES, f"{path.name} imports {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            assert root not in FORBIDDEN_MODULES, f"{path.name} imports from {node.module}"
            if root == "random":
                bad = {a.name for a in node.names} - ALLOWED_RANDOM_NAMES
                assert not bad, f"{path.name} imports global random functions {bad}"
            if root == "scalper":
                assert (node.module or "").startswith("scalper.core"), (
                    f"{path.name} imports {node.module}: core depends on nothing outside core"
                )
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
        ):
            assert node.attr in ALLOWED_RANDOM_NAMES, f"{path.name} uses global random.{node.attr}"


def test_importing_core_loads_no_io_library():
    # Import in a fresh interpreter so other tests' imports do not mask a leak.
    import subprocess
    import sys

    code = (
        "import sys, importlib, pkgutil, scalper.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('scalper.core.' + m.name)\n"
        "bad = sorted(m for m in ('trio', 'httpx', 'sqlite3', 'trio_websocket', 'httpcore') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing scalper.core pulled in: {out.stdout.strip()}"
