"""Bad configuration fails at construction, naming the parameter and the value."""

from __future__ import annotations

import pytest

from carbon_core import Tracker
from carbon_core.config import load


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"interval_s": -1}, "interval_s=-1"),
        ({"interval_s": 0}, "interval_s=0"),
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
