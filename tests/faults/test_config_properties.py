"""Configuration: every Tracker argument and CARBON_* variable, property-tested.

For any value hypothesis comes up with, the Tracker either rejects it at construction
with a ``ValueError`` that names the parameter (or variable) and the value (never a
token's value), or accepts it, and then ``start()``, ``snapshot()`` and ``stop()`` never
raise and the tracker really measures (nothing is rejected later).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbon_core import Tracker
from carbon_core.config import METER_NAMES

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SECRET = "electricitymaps_token"
BASE: dict[str, Any] = {"interval_s": 0.01, "gpus": "none", "log_dir": "off", "intensity": 100.0}

# text an environment can hold (no NUL, no lone surrogates)
env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(), any_text, st.binary(max_size=8), st.lists(st.integers(-3, 3), max_size=3),
    st.just(object()), st.just({}), st.just(()), st.complex_numbers(max_magnitude=10),
)  # fmt: skip
numeric = st.one_of(
    st.floats(), st.integers(-10, 10**6), st.floats(-1, 400),
    st.sampled_from(["1", "0.5", " 2 ", "1e3", "nan", "inf", "-0"]),
)  # fmt: skip

ARGS: dict[str, Any] = {
    "interval_s": st.one_of(numeric, junk),
    "pue": st.one_of(numeric, st.floats(0.5, 11), junk),
    "zone": st.one_of(
        st.sampled_from(
            ["DE", "de", "GB", "SE-SE3", "US-CA", "europe-west1", "eu-west-1", "XX", "DK-DK1", " DE "]
        ),
        junk,
    ),
    "intensity": st.one_of(numeric, st.floats(-10, 6000), junk),
    "live": st.one_of(st.booleans(), st.sampled_from(["yes", "1", 1, 0]), junk),
    "gpus": st.one_of(
        st.sampled_from(["auto", "all", "none", "ALL", "0", "0,1", "GPU-abc", "MIG-x", "²", "-1", ""]),
        st.lists(st.one_of(st.integers(-2, 20), st.sampled_from(["GPU-1", "x", "3", True])), max_size=3),
        junk,
    ),
    "log_dir": st.one_of(
        st.sampled_from(["off", "OFF", "none", "runs", "a/b/c", "", " ", "x\x00y"]),
        any_text.filter(lambda s: ".." not in s and not s.startswith(("/", "~"))),
        st.just(Path("runs")),
        st.just(b"runs-bytes"),
        junk,
    ),
    "budget_kg": st.one_of(numeric, junk),
    "stop_on": st.one_of(st.sampled_from(["spent", "predicted", "SPENT", "never"]), junk),
    "meters": st.one_of(
        st.sampled_from(["auto", "rapl", "cpu-estimate,ram-estimate", "nvml", "bogus", ","]),
        st.lists(st.sampled_from([*METER_NAMES, "bogus", 3]), max_size=4),
        junk,
    ),
    SECRET: st.one_of(st.sampled_from(["tok-123", " tok ", "has space", "tök", "\x7f"]), junk),
}
ENV = {f"CARBON_{name.upper()}": name for name in ARGS} | {
    "CARBON_ELECTRICITYMAPS_URL": None, "CARBON_UK_URL": None, "CARBON_ENERGIDATASERVICE_URL": None,
    "CARBON_REFRESH_S": None, "CARBON_TIMEOUT_S": None, "CARBON_POWERCAP_ROOT": None,
}  # fmt: skip
ENV_VALUES = st.one_of(
    env_text,
    st.sampled_from(["1", "0", "true", "off", "none", "auto", "all", "DE", "GB", "0.5", "1e9", "nan", "-1",
                     "http://127.0.0.1:9/x", "ftp://x", "http://", "spent", "rapl,nvml"]),
)  # fmt: skip


@contextmanager
def sandbox() -> Iterator[None]:
    """A scratch working directory (relative log_dir values land there)."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def _shown(value: Any) -> list[str]:
    forms = [repr(value)]
    if isinstance(value, str):
        forms += [value, repr(value.strip()), value.strip()]
    if isinstance(value, (bytes, os.PathLike)):
        forms.append(repr(os.fsdecode(value)))
    return forms


def check(kwargs: dict[str, Any], name: str, value: Any) -> None:
    """Accepted and then never failing, or rejected now naming ``name`` and ``value``."""
    try:
        tracker = Tracker(**kwargs)
    except ValueError as exc:
        message = str(exc)
        assert name in message, f"{message!r} does not name {name}"
        if "TOKEN" in name.upper():
            assert not (isinstance(value, str) and value.strip() and value.strip() in message), "secret shown"
        elif name.endswith("_URL"):
            pass  # shown as scheme://host/path only: a URL may carry credentials
        elif not isinstance(value, (str, bytes)) or value.strip():  # type: ignore[union-attr]
            assert any(form in message for form in _shown(value)), f"{message!r} does not show {value!r}"
        return
    except Exception as exc:  # anything else at construction is a defect
        raise AssertionError(f"{name}={value!r}: {type(exc).__name__}: {exc} (not a ValueError)") from exc
    tracker.start()
    snap = tracker.snapshot()
    snap.to_metrics()
    repr(tracker)
    final = tracker.stop()
    tracker.stop()
    assert not [w for w in final.warnings if "could not start" in w or "failed while stopping" in w], (
        final.warnings
    )
    assert tracker.run_id and final.duration_s > 0, "the tracker measured"
    assert all(math.isfinite(v) for v in final.to_metrics().values())


@pytest.mark.parametrize("name", list(ARGS))
def test_every_argument_is_accepted_or_rejected_at_construction(name: str) -> None:
    @SETTINGS
    @given(value=ARGS[name])
    def run(value: Any) -> None:
        kwargs = {**BASE, name: value}
        if name in ("zone", "live", SECRET):
            kwargs.pop("intensity")
        with sandbox():
            check(kwargs, name, value)

    run()


@pytest.mark.parametrize("var", list(ENV))
def test_every_environment_variable_is_accepted_or_rejected_at_construction(var: str) -> None:
    @SETTINGS
    @given(value=ENV_VALUES)
    def run(value: Any) -> None:
        kwargs = {k: v for k, v in BASE.items() if k != ENV[var]}
        if (
            var in ("CARBON_ZONE", "CARBON_LIVE", "CARBON_ELECTRICITYMAPS_TOKEN", "CARBON_INTENSITY")
            or "URL" in var
        ):
            kwargs.pop("intensity", None)
            kwargs.setdefault("zone", "GB" if "UK" in var else "DK-DK1" if "ENERGI" in var else None)
            if "ELECTRICITYMAPS_URL" in var:
                kwargs["electricitymaps_token"] = "tok-123"
            if "URL" in var:
                kwargs["live"] = True
            kwargs = {k: v for k, v in kwargs.items() if v is not None}
        with sandbox(), pytest.MonkeyPatch.context() as mp:
            mp.setenv(var, value)
            check(kwargs, var, value)

    run()
