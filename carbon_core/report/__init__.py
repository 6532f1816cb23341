"""Run logs, or a running tracker's figures, as reports a person reads or publishes.

Formats (:data:`FORMATS`), each in its own module: ``text`` (:mod:`.table`: a table and the
summary), ``json`` and ``csv`` (:mod:`.data`), ``model-card`` (:mod:`.model_card`: the
Hugging Face ``co2_eq_emissions`` metadata), ``paper`` (:mod:`.paper`: a compute and emissions
statement) and ``html`` (:mod:`.html`: one self-contained page with the figure of
:mod:`.figure`). What they all state (hardware, location, methods, version) is worked out
once, in :mod:`.facts`. Several logs are put together by the merge rules of
:mod:`carbon_core.runlog.merge`, and every report says which it applied.

:func:`render` makes a report of logs read with :func:`carbon_core.runlog.load`;
:func:`of_run` makes one for a callback (``callback.report("model-card")``) from its run log,
or from its figures alone when the log is off.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from carbon_core.report.data import as_csv, as_json
from carbon_core.report.figure import PlotUnavailable, check_plot_available, plot
from carbon_core.report.table import COLUMNS, NUMERIC_COLUMNS, plain_table, rows, text
from carbon_core.runlog.merge import LoadedRun
from carbon_core.runlog.reader import RunLogError
from carbon_core.snapshot import Snapshot

__all__ = [
    "COLUMNS",
    "FORMATS",
    "NUMERIC_COLUMNS",
    "PlotUnavailable",
    "as_csv",
    "as_json",
    "check_plot_available",
    "of_run",
    "plain_table",
    "plot",
    "render",
    "rows",
    "text",
]

FORMATS = ("text", "json", "csv", "model-card", "paper", "html")


def check_format(fmt: str) -> str:
    """``fmt`` when it is one of :data:`FORMATS`; ``ValueError`` naming it otherwise."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def render(
    run: LoadedRun, fmt: str = "text", *, training_type: Optional[str] = None, fancy: bool = False
) -> str:
    """The report of ``run`` in ``fmt`` (``training_type``: for the model card and the page)."""
    check_format(fmt)
    from carbon_core.report import facts

    facts.check_training_type(training_type)
    if fmt == "text":
        return text(run, fancy=fancy) + "\n"
    if fmt == "json":
        return json.dumps(as_json(run), indent=2, default=str) + "\n"
    if fmt == "csv":
        return as_csv(run)
    if fmt == "model-card":
        from carbon_core.report.model_card import yaml_block

        return yaml_block(run, training_type)
    if fmt == "paper":
        from carbon_core.report.paper import statement

        return statement(run) + "\n"
    from carbon_core.report.html import page

    return page(run, training_type=training_type)


def figures_only(snapshot: Snapshot, rule: str) -> LoadedRun:
    """A report of figures without a log (no rows, no series): ``rule`` says where they are from."""
    return LoadedRun(snapshot, (), rules=(rule,))


def of_run(
    fmt: str,
    snapshot: Snapshot,
    log_path: Optional[str | os.PathLike[str]] = None,
    *,
    path: Optional[str | os.PathLike[str]] = None,
    training_type: Optional[str] = None,
) -> str:
    """A callback's report: ``snapshot`` (the run's figures, a resumed run's whole run; the
    job's in a distributed job) with the detail of its run log ``log_path`` when there is one
    (hardware, location, the figure). With ``path`` it is also written there; for
    ``model-card``, ``path`` is a model card (README.md, or its folder) that gets the block,
    its other content kept. Returns the report."""
    check_format(fmt)
    run = figures_only(snapshot, "the tracker's own figures (no run log)")
    if log_path is not None:
        try:
            from carbon_core.runlog.merge import load

            loaded = load(log_path)
        except RunLogError:
            pass
        else:
            run = LoadedRun(snapshot, loaded.nodes, loaded.notes, loaded.runs, loaded.rows, loaded.rules)
    out = render(run, fmt, training_type=training_type)
    if path is not None:
        if fmt == "model-card":
            from carbon_core.report.model_card import fill

            fill(path, run, training_type)
        else:
            Path(path).write_text(out, encoding="utf-8")
    return out
