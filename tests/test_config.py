import pathlib
import re
import tomllib
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalper.actors.router import RouterConfig
from scalper.cli import app
from scalper.config import ConfigError, load_config, render_config
from scalper.core.kill_switch import KillSwitchConfig
from scalper.core.orphans import OrphanAction, OrphanReason, OrphansConfig
from scalper.core.posture import PostureMode
from scalper.core.reconcile import ReconcileConfig, RepairKind
from scalper.core.retry import RetryConfig, RetryPolicy
from scalper.core.types import PositionMode
from scalper.system import SystemConfig

runner = CliRunner()


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "scalper.toml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --------------------------------------------------------------------------- layers


def test_nothing_given_is_the_defaults():
    assert load_config() == SystemConfig()
    assert load_config(None, {}) == SystemConfig()


def test_env_none_does_not_read_the_process_environment(monkeypatch):
    monkeypatch.setenv("SCALPER_SEED", "99")
    assert load_config().seed == SystemConfig().seed


def test_toml_overrides_nested_values_and_keeps_other_defaults(write):
    path = write(
        """
        symbols = ["BTCUSDT", "ETHUSDT"]
        seed = 7

        [router]
        max_notional = "2500.50"
        position_mode = "HEDGE"

        [router.retry.resolve]
        max_attempts = 12

        [posture]
        boot_mode = "RED"

        [kill_switch]
        halt_ladder_sec = [30, 120.5]

        [orphans.symbol_actions]
        BTCUSDT = "FREEZE"

        [reconcile.repair_cooldown_by_kind]
        CANCEL_ORDER = 45
        """
    )
    config = load_config(path)
    assert config.symbols == ("BTCUSDT", "ETHUSDT")
    assert config.seed == 7
    assert config.router.max_notional == Decimal("2500.50")
    assert config.router.position_mode is PositionMode.HEDGE
    assert config.router.retry.resolve.max_attempts == 12
    # Siblings of an overridden key keep their defaults.
    assert config.router.retry.resolve.max_elapsed_s == RetryConfig().resolve.max_elapsed_s
    assert config.router.recv_window_ms == RouterConfig().recv_window_ms
    assert config.posture.boot_mode is PostureMode.RED
    # The system's own default for this nested field survives a file that names [posture].
    assert config.posture.base_max_notional == SystemConfig().posture.base_max_notional
    assert config.kill_switch.halt_ladder_sec == (30.0, 120.5)
    assert config.orphans.symbol_actions == {"BTCUSDT": OrphanAction.FREEZE}
    assert config.reconcile.cooldown(RepairKind.CANCEL_ORDER) == 45.0
    assert config.reconcile.cooldown(RepairKind.QUERY_ORDER) == 20.0


def test_env_overrides_toml_which_overrides_defaults(write):
    path = write('seed = 7\n[router]\nmax_notional = "2500"\nrecv_window_ms = 4000\n')
    env = {
        "SCALPER_ROUTER__MAX_NOTIONAL": "500",
        "SCALPER_SYMBOLS": "BTCUSDT, ETHUSDT,",
        "SCALPER_POSTURE__BOOT_MODE": "yellow",
        "SCALPER_KILL_SWITCH__TRIP_ON_RED_POSTURE": "false",
        "SCALPER_RECONCILE__COUNT_FOREIGN_STOPS": "1",
        "SCALPER_KILL_SWITCH__HALT_LADDER_SEC": "10,20.5",
        "SCALPER_COLLECTOR__SNAPSHOT_INTERVAL_S": "2.5",
        "SCALPER_ORPHANS__REASON_ACTIONS__UNPROTECTED_POSITION": "FREEZE",
        "SCALPER_ROUTER__RETRY__BY_REASON__rate_limited__MAX_ATTEMPTS": "4",
        "UNRELATED": "x",
    }
    config = load_config(path, env)
    assert config.router.max_notional == Decimal(500)  # env beat the file
    assert config.router.recv_window_ms == 4000  # file beat the default
    assert config.seed == 7
    assert config.symbols == ("BTCUSDT", "ETHUSDT")
    assert config.posture.boot_mode is PostureMode.YELLOW
    assert config.kill_switch.trip_on_red_posture is False
    assert config.reconcile.count_foreign_stops is True
    assert config.kill_switch.halt_ladder_sec == (10.0, 20.5)
    assert config.collector.snapshot_interval_s == 2.5
    assert config.orphans.reason_actions == {OrphanReason.UNPROTECTED_POSITION: OrphanAction.FREEZE}
    # An env entry joins the table below it (here the default one).
    assert config.router.retry.by_reason == {
        **RetryConfig().by_reason,
        "rate_limited": RetryPolicy(max_attempts=4),
    }


def test_partial_tables_keep_the_parents_defaults(write):
    # SystemConfig's posture default differs from PostureConfig's own (1000 vs 100 USDT);
    # naming [posture] in a file must not silently drop the cap back to 100.
    config = load_config(write('[posture]\nboot_mode = "GREEN"\n'))
    assert config.posture.base_max_notional == SystemConfig().posture.base_max_notional
    env = {"SCALPER_ROUTER__RETRY__BY_REASON__timestamp_outside_recv_window__MAX_ATTEMPTS": "5"}
    policy = load_config(None, env).router.retry.by_reason["timestamp_outside_recv_window"]
    default = RetryConfig().by_reason["timestamp_outside_recv_window"]
    assert policy == attrs.evolve(default, max_attempts=5)


def test_env_entries_merge_into_a_file_table(write):
    path = write('[orphans.symbol_actions]\nBTCUSDT = "FREEZE"\n')
    config = load_config(path, {"SCALPER_ORPHANS__SYMBOL_ACTIONS__ETHUSDT": "CANCEL"})
    assert config.orphans.symbol_actions == {
        "BTCUSDT": OrphanAction.FREEZE,
        "ETHUSDT": OrphanAction.CANCEL,
    }


def test_a_file_table_replaces_the_default_table(write):
    assert RetryConfig().by_reason  # the default has an entry to remove
    config = load_config(write("[router.retry.by_reason]\n"))
    assert config.router.retry.by_reason == {}


def test_credential_variables_are_left_to_the_venue_layer():
    env = {
        "SCALPER_API_KEY": "k",
        "SCALPER_API_SECRET": "s",
        "SCALPER_API_KEY_FILE": "/run/secrets/k",
        "SCALPER_API_SECRET_FILE": "/run/secrets/s",
    }
    assert load_config(None, env) == SystemConfig()


# --------------------------------------------------------------------------- errors


def test_unknown_toml_key_names_its_path(write):
    with pytest.raises(ConfigError, match=r"router\.max_notionl: unknown key") as info:
        load_config(write('[router]\nmax_notionl = "500"\n'))
    assert info.value.path == "router.max_notionl"
    assert "max_notional" in info.value.expected  # the valid keys are listed


def test_unknown_top_level_section_names_its_path(write):
    with pytest.raises(ConfigError, match=r"routr: unknown key"):
        load_config(write("[routr]\nseed = 1\n"))


@pytest.mark.parametrize(
    ("var", "path"),
    [
        ("SCALPER_ROUTER__MAX_NOTIONL", "router.max_notionl"),
        ("SCALPER_ROUTER_MAX_NOTIONAL", "router_max_notional"),  # single underscore
        ("SCALPER_ROUTER__MAX_NOTIONAL__X", "router.max_notional.x"),
        (
            "SCALPER_ORPHANS__REASON_ACTIONS__NO_SUCH_REASON",
            "orphans.reason_actions.NO_SUCH_REASON",
        ),
        ("SCALPER_API_TOKEN", "api_token"),
    ],
)
def test_unknown_env_var_names_the_variable_and_path(var, path):
    with pytest.raises(ConfigError) as info:
        load_config(None, {var: "1"})
    assert info.value.path == path
    assert var in str(info.value)


def test_env_var_naming_a_table_is_refused():
    with pytest.raises(ConfigError, match="SCALPER_ROUTER__<KEY>"):
        load_config(None, {"SCALPER_ROUTER": "x"})


@pytest.mark.parametrize(
    ("toml", "path", "expected"),
    [
        ("[router]\nrecv_window_ms = 5.7\n", "router.recv_window_ms", "integer"),
        ('[router]\nrecv_window_ms = "5000"\n', "router.recv_window_ms", "integer"),
        ("[router]\nrecv_window_ms = true\n", "router.recv_window_ms", "integer"),
        ("[router]\nmax_notional = 0.1\n", "router.max_notional", "decimal"),
        ('[router]\nrequest_timeout_s = "10"\n', "router.request_timeout_s", "number"),
        ("[reconcile]\ncount_foreign_stops = 1\n", "reconcile.count_foreign_stops", "boolean"),
        ('symbols = "BTCUSDT"\n', "symbols", "array of string"),
        ("symbols = [1]\n", "symbols[0]", "string"),
        ('[posture]\nboot_mode = "PURPLE"\n', "posture.boot_mode", "GREEN, YELLOW, ORANGE, RED"),
        ("router = 5\n", "router", "table (RouterConfig)"),
        ('[orphans]\nsymbol_actions = "FREEZE"\n', "orphans.symbol_actions", "table of"),
        (
            '[orphans.reason_actions]\nnot_a_reason = "FREEZE"\n',
            "orphans.reason_actions.not_a_reason",
            "unprotected_position",
        ),
        (
            '[router.retry.by_reason.x]\nmax_attempts = "3"\n',
            "router.retry.by_reason.x.max_attempts",
            "integer",
        ),
    ],
)
def test_wrong_type_names_path_and_expected_type(write, toml, path, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(toml))
    assert info.value.path == path
    assert expected in info.value.expected
    assert path in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("env", "path", "expected"),
    [
        ({"SCALPER_SEED": "seven"}, "seed", "integer"),
        ({"SCALPER_ROUTER__REQUEST_TIMEOUT_S": "soon"}, "router.request_timeout_s", "number"),
        (
            {"SCALPER_RECONCILE__COUNT_FOREIGN_STOPS": "yes"},
            "reconcile.count_foreign_stops",
            "boolean",
        ),
        ({"SCALPER_ROUTER__MAX_NOTIONAL": "lots"}, "router.max_notional", "decimal"),
        ({"SCALPER_ROUTER__MAX_NOTIONAL": "Infinity"}, "router.max_notional", "decimal"),
        (
            {"SCALPER_KILL_SWITCH__HALT_LADDER_SEC": "60,x"},
            "kill_switch.halt_ladder_sec[1]",
            "number",
        ),
        ({"SCALPER_POSTURE__BOOT_MODE": "PINK"}, "posture.boot_mode", "GREEN"),
    ],
)
def test_bad_env_value_names_variable_path_and_type(env, path, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, env)
    assert info.value.path == path
    assert expected in info.value.expected
    assert next(iter(env)) in str(info.value)


@pytest.mark.parametrize(
    ("toml", "path"),
    [
        ("[router]\nrecv_window_ms = 0\n", "router.recv_window_ms"),  # plain ValueError
        ("[router]\nrequest_timeout_s = -1\n", "router.request_timeout_s"),
        ("[posture]\nyellow_score = 0.9\n", "posture.orange_score"),  # cross-field rule
        ('[posture]\nbase_max_notional = "-5"\n', "posture.base_max_notional"),
        ("[supervisor]\nbackoff_max_s = 0.01\n", "supervisor.backoff_max_s"),
        ("[kill_switch]\nhalt_ladder_sec = [300, 60]\n", "kill_switch.halt_ladder_sec"),
        ('[kill_switch]\nmax_daily_loss_frac = "1.5"\n', "kill_switch.max_daily_loss_frac"),
        (
            "[reconcile.repair_cooldown_by_kind]\nCANCEL_ORDER = -1\n",
            "reconcile.repair_cooldown_by_kind",
        ),
        ("[router.retry.by_reason.NotSnake]\nmax_attempts = 2\n", "router.retry.by_reason"),
        ("[router.retry.resolve]\nmax_attempts = 0\n", "router.retry.resolve.max_attempts"),
    ],
)
def test_validator_errors_surface_with_their_path(write, toml, path):
    with pytest.raises(ConfigError) as info:
        load_config(write(toml))
    assert info.value.path == path
    assert str(info.value).startswith("config file")
    assert f"{path}: " in str(info.value)


def test_validator_error_from_env_names_the_variable():
    with pytest.raises(
        ConfigError, match=r"SCALPER_ROUTER__RECV_WINDOW_MS: router\.recv_window_ms"
    ):
        load_config(None, {"SCALPER_ROUTER__RECV_WINDOW_MS": "0"})


def test_cross_field_error_names_every_source_in_the_table(write):
    path = write("[supervisor]\njitter = 0.1\n")
    env = {"SCALPER_SUPERVISOR__BACKOFF_INITIAL_S": "10"}
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    assert info.value.path == "supervisor.backoff_max_s"
    assert "SCALPER_SUPERVISOR__BACKOFF_INITIAL_S" in info.value.source
    assert str(path) in info.value.source


def test_several_problems_are_reported_together(write):
    with pytest.raises(ConfigError) as info:
        load_config(write('seed = "x"\n[router]\nbogus = 1\n'))
    message = str(info.value)
    assert "seed" in message
    assert "router.bogus: unknown key" in message


@pytest.mark.parametrize(
    ("toml", "path"),
    [
        ('api_key = "abc"\n', "api_key"),
        ('[router]\napi_secret = "abc"\n', "router.api_secret"),
        ('[venue]\nsecret = "abc"\n', "venue.secret"),
        ('[venue.binance]\nlisten_token = "abc"\n', "venue.binance.listen_token"),
        ('[[accounts]]\nApiKey = "abc"\n', "accounts[0].ApiKey"),
    ],
)
def test_secrets_in_toml_are_refused(write, toml, path):
    with pytest.raises(ConfigError) as info:
        load_config(write(toml))
    assert info.value.path == path
    assert "environment" in str(info.value)
    assert "secret file" in str(info.value)
    assert "abc" not in str(info.value)  # the secret itself is never echoed


def test_invalid_toml_reports_the_line(write):
    path = write('seed = 1\n[router]\nmax_notional = "500\n')
    with pytest.raises(ConfigError, match=r"invalid TOML.*line 3") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------- render


def _modified() -> SystemConfig:
    return SystemConfig(
        symbols=("BTCUSDT", 'ETH-"quoted"\\USDT', "tab\there\nnewline\x7f"),
        prefix="zz",
        seed=-3,
        router=RouterConfig(
            max_notional=Decimal("1234.5600"),
            position_mode=PositionMode.HEDGE,
            request_timeout_s=1e-7,
            retry=RetryConfig(by_reason={}),
        ),
        kill_switch=KillSwitchConfig(halt_ladder_sec=(1.0, 2.5, 1e20), min_equity=Decimal("1E+3")),
        reconcile=ReconcileConfig(repair_cooldown_by_kind={RepairKind.SYNC_POSITION: 3.25}),
        orphans=OrphansConfig(
            reason_actions={OrphanReason.FOREIGN_ORDER: OrphanAction.FREEZE},
            symbol_actions={"1000PEPEUSDT": OrphanAction.FREEZE, "a.b c": OrphanAction.CANCEL},
        ),
    )


@pytest.mark.parametrize("config", [SystemConfig(), _modified()], ids=["defaults", "modified"])
def test_render_round_trips(write, config):
    text = render_config(config)
    tomllib.loads(text)  # valid TOML on its own
    assert load_config(write(text)) == config


def test_render_shows_plain_values():
    text = render_config(_modified())
    data = tomllib.loads(text)
    assert data["router"]["max_notional"] == "1234.5600"  # Decimals stay exact strings
    assert data["router"]["position_mode"] == "HEDGE"
    assert data["kill_switch"]["halt_ladder_sec"] == [1.0, 2.5, 1e20]
    assert data["orphans"]["symbol_actions"]["a.b c"] == "CANCEL"
    assert data["router"]["retry"]["by_reason"] == {}


def test_render_redacts_secret_looking_fields():
    @attrs.frozen
    class RouterWithKey(RouterConfig):
        signing_key: str = "hunter2"

    @attrs.frozen
    class WithSecrets(SystemConfig):
        api_secret: str = "s3cr3t"
        listen_token: str = "t0ken"

    text = render_config(WithSecrets(router=RouterWithKey()))
    assert "hunter2" not in text
    assert "s3cr3t" not in text
    assert "t0ken" not in text
    data = tomllib.loads(text)
    assert data["api_secret"] == data["listen_token"] == data["router"]["signing_key"] == "***"
    # Redaction is by field name only: values and mapping keys are shown as they are.
    assert data["prefix"] == "sc"


_finite_pos = st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False)
_decimals = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**9), places=8)
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@st.composite
def _configs(draw):
    ladder = sorted(draw(st.lists(_finite_pos, min_size=1, max_size=5)))
    return SystemConfig(
        symbols=tuple(draw(st.lists(_text, max_size=4))),
        prefix=draw(st.sampled_from(["sc", "ab", "x1"])),
        seed=draw(st.integers(-(2**63), 2**63)),
        router=RouterConfig(
            max_notional=draw(_decimals),
            recv_window_ms=draw(st.integers(1, 60_000)),
            request_timeout_s=draw(_finite_pos),
            position_mode=draw(st.sampled_from(PositionMode)),
        ),
        kill_switch=KillSwitchConfig(
            halt_ladder_sec=tuple(ladder),
            trip_on_red_posture=draw(st.booleans()),
            min_equity=draw(_decimals),
        ),
        reconcile=ReconcileConfig(
            repair_cooldown_by_kind=draw(st.dictionaries(st.sampled_from(RepairKind), _finite_pos)),
        ),
        orphans=OrphansConfig(
            symbol_actions=draw(
                st.dictionaries(_text.filter(bool), st.sampled_from(OrphanAction), max_size=3)
            ),
        ),
    )


@settings(max_examples=60, deadline=None)
@given(config=_configs())
def test_render_round_trips_generated_configs(tmp_path_factory, config):
    path = tmp_path_factory.mktemp("rt") / "c.toml"
    path.write_text(render_config(config), encoding="utf-8")
    assert load_config(path) == config


# --------------------------------------------------------------------------- CLI


def test_cli_config_show_prints_the_effective_config(write):
    path = write('[router]\nmax_notional = "2500"\n')
    result = runner.invoke(
        app,
        ["config", "--show", "--config", str(path)],
        env={"SCALPER_SEED": "42", "SCALPER_API_SECRET": "never-shown"},
    )
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.stdout)
    assert data["router"]["max_notional"] == "2500"
    assert data["seed"] == 42
    assert "never-shown" not in result.output
    assert load_config(write(result.stdout, "shown.toml")) == load_config(
        path, {"SCALPER_SEED": "42"}
    )


def test_cli_config_without_show_only_checks(write):
    result = runner.invoke(app, ["config", "--config", str(write("seed = 3\n"))])
    assert result.exit_code == 0
    assert "configuration OK" in result.output
    assert "[router]" not in result.output


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ("[router]\nmax_notional = 0.5\n", {}, "router.max_notional"),
        ("seed = 1\n", {"SCALPER_ROUTER__NOPE": "1"}, "SCALPER_ROUTER__NOPE"),
        ('token = "x"\n', {}, "token"),
        ("seed = \n", {}, "invalid TOML"),
    ],
)
def test_cli_config_error_exits_2_with_the_message_on_stderr(write, toml, env, needle):
    result = runner.invoke(app, ["config", "--show", "--config", str(write(toml))], env=env)
    assert result.exit_code == 2
    assert needle in result.stderr
    assert result.stdout == ""


# --------------------------------------------------------------------------- docs

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _leaf_keys(config, prefix=""):
    for field in attrs.fields(type(config)):
        value = getattr(config, field.name)
        if attrs.has(type(value)):
            yield from _leaf_keys(value, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}"


def test_docs_reference_lists_every_key():
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", DOC.read_text(), re.MULTILINE))
    assert set(_leaf_keys(SystemConfig())) <= documented


def test_docs_example_file_loads(write):
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert blocks
    config = load_config(write(blocks[0]))
    assert config.router.max_notional == Decimal(2500)
    assert config.orphans.symbol_actions == {"BTCUSDT": OrphanAction.FREEZE}
