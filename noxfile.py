"""Sessions: tests, tests_tf, lint, typecheck, demo, bench.

Every session installs what it needs into its own virtualenv, so each works on a fresh
machine with nothing but Python and pip. PyTorch is pinned to the CPU build
(``torch==2.13.0``); a plain ``torch`` would pull several GB of CUDA packages.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"
#: prometheus and otel: the exporters' extras (their tests also run Debian's prometheus and
#: prometheus-pushgateway, which .ci/run installs)
FRAMEWORKS = ".[dev,lightning,keras,transformers,pyrapl,prometheus,otel,amd]"  # amd: fake libamd_smi.so tests
ENV = {"KERAS_BACKEND": "torch", "CARBON_LOG_DIR": "off", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _pytest_args(marker: str, posargs: list[str]) -> list[str]:
    """``marker`` and-ed with any ``-m EXPR`` the caller passes (``nox -s tests -- -m "not slow"``),
    and the ten slowest tests printed at the end."""
    args, expr = [], marker
    it = iter(posargs)
    for arg in it:
        if arg == "-m":
            expr = f"({marker}) and ({next(it)})"
        elif arg.startswith("-m="):
            expr = f"({marker}) and ({arg[3:]})"
        else:
            args.append(arg)
    return ["-m", expr, "--durations=10", *args]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite but the TensorFlow-only test (see tests_tf).

    ``nox -s tests -- -m "not slow"`` is the fast loop: it leaves out the dozen tests (real
    distributed jobs, the benchmark smoke run, 1,000 start/stop cycles, ...) that take most of
    the time; CI runs them all.
    """
    session.install(TORCH)
    session.install("-e", FRAMEWORKS)
    session.run("pytest", *_pytest_args("not tensorflow", session.posargs), env=ENV)


@nox.session
def tests_tf(session: nox.Session) -> None:
    """keras.callbacks.TensorBoard needs TensorFlow on every backend: its test runs here."""
    session.install("tensorflow-cpu", "keras>=3", "tensorboardX")
    session.install("-e", ".[dev]")
    tf_env = {**ENV, "KERAS_BACKEND": "tensorflow"}
    session.run("pytest", *_pytest_args("tensorflow", session.posargs), "tests/test_keras.py", env=tf_env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, and the layering contracts (integrations -> core, never back)."""
    session.install("ruff>=0.5", "import-linter>=2.0")
    session.install("-e", ".", "--no-deps")
    paths = ("carbon_core", "integrations", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("mypy>=1.8", "types-requests", "types-psutil", "requests", "psutil")
    session.run("mypy", "carbon_core")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: a short real Lightning training run with the callback, offline."""
    session.install(TORCH)
    session.install("-e", ".[lightning]")
    session.run("python", "examples/lightning_example.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks against CodeCarbon and Carbontracker; writes benchmarks/RESULTS.md."""
    session.install(TORCH)
    session.install("-e", ".[dev,lightning,amd]", "codecarbon", "carbontracker")
    session.run("python", "benchmarks/run_all.py", *session.posargs, env={"CARBON_LOG_DIR": "off"})
