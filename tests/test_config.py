"""Bad configuration fails at construction, naming the parameter and the value."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from carbon_core import Tracker
from carbon_core.config import OPTIONS, Config, load


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"interval_s": -1}, "interval_s=-1"),
        ({"interval_s": 0}, "interval_s=0"),
        ({"interval_s": 1e-6}, "interval_s=1e-06: must be a finite number >= 0.01"),
        ({"interval_s": "fast"}, "interval_s='fast'"),
        ({"interval_s": 301}, "interval_s=301"),
        ({"pue": 0.9}, "pue=0.9"),
        ({"pue": float("nan")}, "pue=nan"),
        ({"intensity": -5}, "intensity=-5"),
        ({"budget_kg": 0}, "budget_kg=0"),
        ({"budget_kg": True}, "budget_kg=True"),
        ({"stop_on": "soon"}, "stop_on='soon'"),
        ({"meters": ["rapl", "geiger"]}, "unknown meter 'geiger'"),
        ({"gpus": "GPU0"}, "gpus="),
        ({"gpus": [-1]}, "gpus=[-1]"),
        ({"live": "maybe"}, "live='maybe'"),
        ({"zone": ""}, "zone=''"),
        ({"embodied_kg_per_hour": -0.1}, "embodied_kg_per_hour=-0.1"),
    ],
)
def test_bad_argument_names_parameter_and_value(kwargs, needle):
    with pytest.raises(ValueError) as err:
        Tracker(log_dir="off", **kwargs)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("var", "value"),
    [("CARBON_INTERVAL_S", "-2"), ("CARBON_PUE", "abc"), ("CARBON_LIVE", "perhaps"), ("CARBON_GPUS", "x,y")],
)
def test_bad_environment_variable_is_named(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=f"{var}={value!r}"):
        Tracker(log_dir="off")


def test_arguments_override_environment(monkeypatch):
    monkeypatch.setenv("CARBON_PUE", "1.4")
    monkeypatch.setenv("CARBON_INTERVAL_S", "2.5")
    monkeypatch.setenv("CARBON_GPUS", "0,GPU-abc")
    monkeypatch.setenv("CARBON_LOG_DIR", "off")
    cfg = load({"pue": 1.2})
    assert (cfg.pue, cfg.interval_s, cfg.gpus, cfg.log_dir) == (1.2, 2.5, (0, "GPU-abc"), None)


def test_token_never_in_repr_or_error(monkeypatch):
    secret = "em-secret-token-123"
    cfg = load({"electricitymaps_token": secret})
    assert secret not in repr(cfg) and secret not in str(cfg.public())
    with pytest.raises(ValueError) as err:
        load({"electricitymaps_token": "   "})
    assert "electricitymaps_token" in str(err.value)
    t = Tracker(electricitymaps_token=secret, zone="DE", log_dir="off")
    assert secret not in repr(t) and secret not in repr(t.config)


def test_unknown_keyword_is_rejected():
    with pytest.raises(TypeError):
        Tracker(intervall_s=1)  # type: ignore[call-arg]


# -- config.load, pure: every option from an argument and from its variable -------------------

OPTION = {o.name: o for o in OPTIONS}
GOOD: list[tuple[str, Any, Any]] = [
    ("interval_s", "2.5", 2.5),
    ("pue", "1.4", 1.4),
    ("zone", " de ", "de"),  # canonical keys are the resolver's business
    ("intensity", "55.5", 55.5),
    ("live", "yes", True),
    ("live", "none", False),  # "none" is off, for live as for log_dir
    ("gpus", "0,GPU-abc", (0, "GPU-abc")),
    ("log_dir", "none", None),
    ("log_dir", "runs", "runs"),
    ("budget_kg", "0.5", 0.5),
    ("stop_on", "predicted", "predicted"),
    ("meters", "rapl,nvml", ("rapl", "nvml")),
    ("electricitymaps_token", " tok-123 ", "tok-123"),
    ("export", " OTLP, pushgateway,otlp", ("otlp", "pushgateway")),
    ("prometheus_port", "9877", "127.0.0.1:9877"),
    ("prometheus_port", " [::]:9877", "[::]:9877"),
    ("pushgateway_url", "http://127.0.0.1:9091/", "http://127.0.0.1:9091"),
    ("embodied_kg_per_hour", "0.05", 0.05),
    ("electricitymaps_url", "http://127.0.0.1:8080/em/v3/", "http://127.0.0.1:8080/em/v3"),
    ("uk_url", "https://example.org/uk", "https://example.org/uk"),
    ("energidataservice_url", " http://[::1]:9/eds ", "http://[::1]:9/eds"),
    ("energycharts_url", "http://127.0.0.1:9/ec/", "http://127.0.0.1:9/ec"),
    ("eco2mix_url", "https://odre.example.org", "https://odre.example.org"),
    ("refresh_s", "60", 60.0),
    ("timeout_s", "0.25", 0.25),
]


def test_good_table_covers_every_option():
    assert {name for name, _, _ in GOOD} == set(OPTION)


@pytest.mark.parametrize(("name", "given", "expected"), GOOD)
def test_each_option_from_argument_and_from_environment(name, given, expected):
    env_name = OPTION[name].env
    from_arg = load({name: given}, {env_name: "ignored: the argument wins"})
    from_env = load({name: None}, {env_name: given})  # None: not given
    assert getattr(from_arg, name) == getattr(from_env, name) == expected
    assert from_arg.origin == {name: name} and from_env.origin == {name: env_name}
    assert (from_arg.named(name), from_env.named(name)) == (name, env_name)


BAD: list[tuple[str, Any]] = [
    ("interval_s", "0"),
    ("interval_s", "0.005"),
    ("interval_s", "301"),
    ("pue", "0.9"),
    ("zone", "  "),
    ("intensity", "2001"),
    ("intensity", "lots"),
    ("live", "maybe"),
    ("gpus", "x,y"),
    ("log_dir", "a\x00b"),
    ("budget_kg", "-1"),
    ("stop_on", "never"),
    ("meters", "geiger"),
    ("export", "statsd"),
    ("prometheus_port", "0"),
    ("prometheus_port", "127.0.0.1:x"),
    ("refresh_s", "0"),
    ("refresh_s", "1e9"),
    ("timeout_s", "nan"),
    ("timeout_s", "-3"),
]


@pytest.mark.parametrize(("name", "given"), BAD)
def test_bad_value_names_parameter_or_variable_and_value(name, given):
    with pytest.raises(ValueError) as err:
        load({name: given}, {})
    assert f"{name}={given!r}" in str(err.value)
    env_name = OPTION[name].env
    with pytest.raises(ValueError) as err:
        load({}, {env_name: given})
    assert f"{env_name}={given!r}" in str(err.value)


@pytest.mark.parametrize(
    ("given", "shown"),
    [("ftp://x", "'ftp://x'"), ("ftp://user:pa55@host/p?q=pa55", "'ftp://host/p'"), ("http://", "'http://'"),
     ("nowhere", "'nowhere'"), ("http://[::1", "'http://[::1' (Invalid IPv6 URL)"),
     ("http://127.0.0.1:99999/em", "'http://127.0.0.1:99999/em' (Port out of range 0-65535)"),
     ("http://u:pa55@127.0.0.1:0/em?k=pa55", "'http://127.0.0.1:0/em' (port 0)"),
     ("http://127.0.0.1:8O/em", "'http://127.0.0.1:8O/em' (Port could not be cast to integer value as '8O')"),
     ("http://grid .org/em", "'http://grid .org/em' (a space or control character)")],
)  # fmt: skip
def test_bad_url_names_the_variable_and_hides_credentials(given, shown):
    for kwargs, env, where in (
        ({"uk_url": given}, {}, "uk_url"),
        ({}, {"CARBON_UK_URL": given}, "CARBON_UK_URL"),
    ):
        with pytest.raises(ValueError) as err:
            load(kwargs, env)
        assert str(err.value) == f"{where} must be an http:// or https:// URL; got {shown}"
        assert "pa55" not in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "env", "where"),
    [
        ({"electricitymaps_token": bad}, {}, "electricitymaps_token")
        for bad in ("has space", "t\u00f6k", "  ", 5)
    ]
    + [
        ({}, {"CARBON_ELECTRICITYMAPS_TOKEN": bad}, "CARBON_ELECTRICITYMAPS_TOKEN")
        for bad in ("tab\there", "\x7f", " ")
    ],
)
def test_bad_token_names_the_parameter_never_the_value(kwargs, env, where):
    with pytest.raises(ValueError) as err:
        load(kwargs, env)
    message = str(err.value)
    assert message.startswith(where) and "value not shown" in message
    bad = str(next(iter({**kwargs, **env}.values()))).strip()
    assert not bad or bad not in message.replace(where, "")


def test_defaults_and_blank_variables():
    blank = {o.env: "" for o in OPTIONS}
    assert load({}, {}) == load({}, blank) == Config()
    assert load({}, {}).origin == {}
    assert {o.name: o.default for o in OPTIONS} == {f: getattr(Config(), f) for f in OPTION}
    assert (Config().refresh_s, Config().timeout_s) == (900.0, 3.0)
    assert load({}, {"CARBON_UK_URL": "   "}).uk_url is None  # blank: the provider's own URL


def test_unknown_parameter_is_rejected_by_load():
    with pytest.raises(ValueError, match="unknown parameter"):
        load({"intervall_s": 1}, {})


def test_public_keeps_the_tracker_arguments_and_hides_secrets():
    cfg = load({"electricitymaps_token": "tok-123"}, {"CARBON_UK_URL": "http://u:pw@127.0.0.1/uk"})
    public = cfg.public()
    assert list(public) == [o.name for o in OPTIONS if o.argument]
    assert public["electricitymaps_token"] == "***" and Config().public()["electricitymaps_token"] is None
    assert "pw" not in repr(cfg) and "tok-123" not in repr(cfg)


def test_options_describe_the_tracker_cli_and_secrets():
    assert all(o.help and "\n" not in o.help and o.env == "CARBON_" + o.name.upper() for o in OPTIONS)
    assert {o.name: o.flag for o in OPTIONS if o.flag} == {
        "interval_s": "--interval", "pue": "--pue", "zone": "--zone", "intensity": "--intensity",
        "live": "--live", "gpus": "--gpus", "log_dir": "--log-dir", "export": "--export",
        "prometheus_port": "--prometheus-port", "pushgateway_url": "--pushgateway-url",
        "embodied_kg_per_hour": "--embodied-kg-per-hour",
    }  # fmt: skip
    assert [o.name for o in OPTIONS if o.secret] == ["electricitymaps_token"]
    params = inspect.signature(Tracker).parameters.values()
    assert [o.name for o in OPTIONS if o.argument] == [
        p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD
    ]
