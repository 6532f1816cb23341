"""The ``carbon-core`` command: ``run`` any program under a tracker, ``report`` on run logs,
list ``zones``, ``demo``, and ``when`` to run for the cleanest grid.

``run`` measures the command and every process it starts (the CPU and RAM estimates follow
this process's descendants; GPUs as ``--gpus`` says) and forwards signals to it
(:mod:`carbon_core.child`); with ``--json`` the final snapshot is the last line on stdout.
``report`` reads one or several logs (each joule once: the nodes of one job added up, a resumed
run's parts joined, unrelated runs added up; a directory stands for its newest log; a log
without a final record is totalled to its last interval) and prints them ``--format`` text,
json, csv, model-card, paper or html.
Exit codes: :data:`EXIT_CODES`, the epilog of every ``--help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from carbon_core import child

if TYPE_CHECKING:
    from carbon_core.config import Option
    from carbon_core.tracker import Tracker

PROG = "carbon-core"
EXIT_CODES = """exit codes:
  0    success
  1    error: a run log missing, unreadable or not a run log; --plot without
       matplotlib; a model card to fill without huggingface_hub; an output file
       that cannot be written; zones found nothing
  2    usage error (bad arguments or option values)
  run: the command's exit code; 128+N if it was killed by signal N;
       126 if it cannot be executed, 127 if it is not found"""
EXAMPLE = Path("examples") / "lightning_example.py"


def _err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _reader_gone() -> None:
    """stdout's reader has gone (``| head``): what is left goes nowhere, quietly (Python would
    complain when it flushes at exit)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


# -- run ----------------------------------------------------------------------------------
def _flagged() -> list[Option]:
    """The tracker options that ``run`` and ``demo`` take as flags (:data:`config.OPTIONS`)."""
    from carbon_core.config import OPTIONS

    return [o for o in OPTIONS if o.flag]


def _tracker_options(p: argparse.ArgumentParser) -> None:
    from typing import get_args, get_type_hints

    from carbon_core.config import Config

    hints = get_type_hints(Config)
    g = p.add_argument_group("tracker options (default: the CARBON_* variables, then the defaults)")
    for o in _flagged():
        hint = hints[o.name]
        kind: dict[str, Any] = {"metavar": o.metavar}
        if hint is bool:
            kind = {"action": "store_true"}
        elif float in (hint, *get_args(hint)):
            kind["type"] = float
        shown = "" if o.default is None or o.default is False else f"; default {o.default}"
        help_text = f"{o.help} ({o.env}{shown})".replace("%", "%%")
        g.add_argument(str(o.flag), dest=o.name, default=None, help=help_text, **kind)


def _make_tracker(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Tracker:
    from carbon_core.tracker import Tracker

    try:
        return Tracker(**{o.name: getattr(args, o.name) for o in _flagged()})
    except ValueError as exc:
        parser.error(str(exc))  # exits 2 with the usage text


def _show_warnings_live() -> None:
    logger = logging.getLogger("carbon_core")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from carbon_core.bands import uncertainty
    from carbon_core.summary import render

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("give the command to measure after --, e.g. carbon-core run -- python train.py")
    if os.sep not in command[0] and shutil.which(command[0]) is None:
        _err(f"command not found: {command[0]}")
        return child.NOT_FOUND
    tracker = _make_tracker(args, parser)
    _show_warnings_live()
    if args.greenest_within is not None or args.duration is not None or args.dry_run:
        waited = _greenest_start(args, parser, tracker)
        if waited is not None:
            return waited
    tracker.start()
    started = time.monotonic()
    try:
        proc = child.start(command)
    except OSError as exc:
        tracker.stop()
        _err(f"cannot run {command[0]}: {exc.strerror or exc}")
        return child.start_failure_status(exc)
    rc = child.wait_forwarding(proc)
    final = tracker.stop()
    name = child.signal_name(rc) if proc.returncode < 0 else None
    what = f"killed by {name} (exit code {rc})" if name else f"exited with code {rc}"
    shown = " ".join(shlex.join(command).split())
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    log = tracker.log_path
    try:  # the exit status is the command's, even when nobody reads what follows (| head)
        _err(f"{shown} {what} after {time.monotonic() - started:.1f} s")
        print(f"{render(final, warnings=False)}\n{PROG}: run log: {log or 'off'}", file=sys.stderr)
        looked_back = _hindsight(tracker, final.pue)
        if args.json:
            out = {**final.to_dict(), "command": command, "exit_code": rc, "signal": name, "run_log": log}
            if looked_back is not None:
                out["hindsight"] = looked_back
            print(json.dumps({**out, "uncertainty": uncertainty(final)}, default=str), flush=True)
    except BrokenPipeError:
        _reader_gone()
    return rc


# -- report, zones, demo ------------------------------------------------------------------
def _cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from carbon_core import report
    from carbon_core.runlog.merge import load
    from carbon_core.runlog.reader import RunLogError

    fmt = args.format or ("json" if args.json else "text")
    if args.json and fmt != "json":
        parser.error(f"--json and --format {fmt} ask for two formats: give one")
    if args.training_type and fmt not in ("model-card", "html"):
        parser.error("--training-type goes with --format model-card or html")
    if args.plot or fmt == "html":
        try:
            report.check_plot_available()
        except report.PlotUnavailable as exc:
            if args.plot:
                _err(str(exc))
                return 1
            _err(f"warning: the page has no figure ({str(exc).replace('--plot', 'the figure')})")
    try:
        run = load(*args.logs)
    except RunLogError as exc:
        for line in str(exc).splitlines():  # one for each bad log
            _err(line)
        return 1
    for note in run.notes:
        _err(f"warning: {note}")
    fancy = fmt == "text" and args.output is None and sys.stdout.isatty()
    out = report.render(run, fmt, training_type=args.training_type, fancy=fancy)
    if args.output is None:
        print(out, end="")
    else:
        try:
            if fmt == "model-card":
                from carbon_core.report.model_card import fill

                fill(args.output, run, args.training_type)
            else:
                Path(args.output).write_text(out, encoding="utf-8")
        except ImportError:
            _err("filling a model card needs huggingface_hub: pip install huggingface_hub")
            return 1
        except OSError as exc:
            _err(f"cannot write {args.output}: {exc.strerror or exc}")
            return 1
        _err(f"{fmt} report written to {args.output}")
    if args.plot:
        try:
            path = report.plot(run, args.plot)
        except OSError as exc:
            _err(f"cannot write the plot {args.plot}: {exc.strerror or exc}")
            return 1
        _err(f"plot written to {path}")
    return 0


def _cmd_zones(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from carbon_core.intensity import zones
    from carbon_core.report.table import plain_table

    found = zones(args.query)
    if not found:
        _err(f"no bundled zone matches {args.query!r}")
        return 1
    if args.json:
        rows = [{"zone": z.zone, "gco2eq_per_kwh": z.gco2eq_per_kwh, "source": z.source} for z in found]
        print(json.dumps(rows, indent=2))
    else:
        table = [[str(z.zone), f"{z.gco2eq_per_kwh:.1f}", z.source] for z in found]
        print(plain_table(table, header=("zone", "gCO2eq/kWh", "source"), right=(1,)))
    return 0


# -- when, run --greenest-within ------------------------------------------------------------
def _plan_error(exc: Exception, flags: dict[str, str]) -> int:
    """A value no plan can be made with: one line naming the option and the value; exit 2."""
    from carbon_core.intensity.timing import PlanError

    if isinstance(exc, PlanError):
        _err(f"{flags.get(exc.param, exc.param)} {exc.value}: {exc.why}")
    else:
        _err(str(exc))
    return 2


def _plan_text(plan: Any, title: str = "when") -> str:
    from carbon_core.intensity.timing import iso

    wait = plan.wait_s / 3600.0
    when = "now" if plan.wait_s <= 0 else f"in {wait:.1f} h"
    clipped = " (the forecast ends there)" if plan.clipped else ""
    return "\n".join(
        [
            f"{PROG} {title}: zone {plan.zone}, a {plan.duration_s / 3600:g} h job, window to "
            f"{iso(plan.window_end)}{clipped}",
            f"  best start  {iso(plan.start)} ({when})",
            f"  forecast    {plan.mean_then:.1f} gCO2eq/kWh over the job then; "
            f"{plan.mean_now:.1f} if started now",
            f"  saving      {plan.saving_percent:.1f} % of the job's CO2eq",
            f"  source      {plan.source}, forecast to {iso(plan.forecast_until)}; constant power assumed",
        ]
    )


def _lookup(zone: str, duration: str, within: str, config: Any, flags: dict[str, str]) -> Any:
    """The plan, or an exit code: 2 for a bad value (named), 1 when the provider failed."""
    from carbon_core import schedule
    from carbon_core.intensity.providers.errors import ProviderError
    from carbon_core.intensity.timing import PlanError, parse_duration, parse_within

    now = schedule.CLOCK.now()
    try:
        d = parse_duration(duration, "duration")
        end = parse_within(within, now, "within")
        return schedule.plan(zone, d, end, config, now)
    except PlanError as exc:
        return _plan_error(exc, flags)
    except ProviderError as exc:
        return exc


def _cmd_when(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from carbon_core.config import load

    try:
        config = load({"zone": args.zone})
    except ValueError as exc:
        parser.error(str(exc))
    if config.zone is None:
        parser.error("--zone: give the grid zone (e.g. GB, DE, DK-DK1), or set CARBON_ZONE")
    flags = {"duration": "--duration", "within": "--within", "zone": "--zone"}
    got = _lookup(config.zone, args.duration, args.within, config, flags)
    if isinstance(got, int):
        return got
    if isinstance(got, Exception):
        _err(f"no forecast: {got}")
        return 1
    print(json.dumps(got.to_dict()) if args.json else _plan_text(got))
    return 0


def _greenest_start(
    args: argparse.Namespace, parser: argparse.ArgumentParser, tracker: Tracker
) -> Optional[int]:
    """``run --greenest-within W --duration D``: wait for the cleanest start (None: go on and
    run), or an exit code (a bad value, --dry-run done, Ctrl-C while waiting)."""
    from carbon_core import schedule

    for flag, value in (("--greenest-within", args.greenest_within), ("--duration", args.duration)):
        if value is None:
            parser.error(f"{flag} is needed with --greenest-within, --duration and --dry-run")
    zone = tracker.intensity_source.zone
    if zone is None:
        parser.error(
            "--zone: --greenest-within needs the grid zone; none was found (set --zone or CARBON_ZONE)"
        )
    flags = {"duration": "--duration", "within": "--greenest-within", "zone": "--zone"}
    got = _lookup(zone, args.duration, args.greenest_within, tracker.config, flags)
    if isinstance(got, int):
        return got
    if isinstance(got, Exception):
        if args.dry_run:
            _err(f"no forecast: {got}")
            return 1
        _err(f"warning: no forecast ({got}); starting now")
        return None
    if args.dry_run:
        print(json.dumps(got.to_dict()) if args.json else _plan_text(got, "run --dry-run"))
        return 0
    print(_plan_text(got, "run"), file=sys.stderr)
    try:
        schedule.wait_for(
            got,
            zone,
            tracker.config,
            sys.stderr,
            tty=sys.stderr.isatty(),
            warn=lambda m: _err(f"warning: {m}"),
        )
    except KeyboardInterrupt:
        _err("cancelled while waiting for the greenest start; nothing was run")
        return 130
    return None


def _hindsight(tracker: Tracker, pue: float) -> Optional[dict[str, Any]]:
    """With live look-ups on and a run log: what the cleanest start of the preceding 24 hours
    would have emitted for this run's energy profile, one line on stderr; its JSON."""
    from carbon_core import schedule
    from carbon_core.intensity.providers.errors import ProviderError
    from carbon_core.intensity.timing import PlanError, utc
    from carbon_core.summary import fmt_mass

    config, zone, log = tracker.config, tracker.intensity_source.zone, tracker.log_path
    if not (config.live or config.electricitymaps_token) or zone is None or log is None:
        return None
    try:
        found = schedule.hindsight_for(log, pue, zone, config)
    except (ProviderError, PlanError, OSError, ValueError) as exc:
        _err(f"in hindsight: no recent history ({exc})")
        return None
    if found is None:
        return None
    best = utc(found.best_start).strftime("%H:%M UTC")
    ran = "" if found.ran_g is None else f" instead of {fmt_mass(found.ran_g / 1000)} as it ran"
    saving = found.saving_percent
    pct = "" if saving is None else f" ({saving:.0f} % less)"
    _err(
        f"in hindsight: starting at {best} ({found.window_s / 3600:g} h window) would have emitted "
        f"{fmt_mass(found.best_g / 1000)} CO2eq{ran}{pct}, same energy per interval, by {found.source}"
    )
    return found.to_dict()


def _demo_example() -> Optional[Path]:
    """The README's example when it is here and Lightning is installed."""
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("lightning", "pytorch_lightning")):
        return None
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (root / EXAMPLE).is_file():
            return root / EXAMPLE
    return None


def _cmd_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    example = None if args.builtin else _demo_example()
    if example is not None:
        _err(f"running {example}")
        return child.wait_forwarding(child.start([sys.executable, str(example)]))
    from carbon_core.summary import render

    if args.interval_s is None:
        args.interval_s = 0.5
    tracker = _make_tracker(args, parser)
    _show_warnings_live()
    if not args.builtin:
        _err(f"no {EXAMPLE} (or no Lightning) here: measuring {args.seconds:g} s of CPU work instead")
    with tracker:
        deadline = time.monotonic() + args.seconds
        total = 0
        while time.monotonic() < deadline:
            total += sum(i * i for i in range(10_000))
    print(render(tracker.snapshot(), warnings=False))
    print(f"run log: {tracker.log_path or 'off'}")
    return 0


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from carbon_core._version import __version__
    from carbon_core.report import FORMATS
    from carbon_core.report.facts import TRAINING_TYPES

    #: every parser shows the exit codes under its help, line breaks kept
    common: dict[str, Any] = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": EXIT_CODES}
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Energy and kgCO2eq of any program, and of runs recorded in run logs.",
        **common,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a command under a tracker and print its footprint",
        usage=f"{PROG} run [options] -- CMD [ARGS...]",
        **common,
    )
    _tracker_options(run)
    run.add_argument(
        "--json", action="store_true", help="also print the final snapshot as one JSON line on stdout"
    )
    green = run.add_argument_group("greenest start (a forecast: see `carbon-core when`)")
    green.add_argument(
        "--greenest-within",
        metavar="WINDOW",
        help="wait for the start, within WINDOW (12h, or an ISO 8601 time with its offset), that "
        "minimises the forecast emissions of a job of --duration; a countdown shows the wait",
    )
    green.add_argument("--duration", metavar="LENGTH", help="how long the command runs (6h, 90m, 1h30m)")
    green.add_argument("--dry-run", action="store_true", help="print the plan only; run nothing")
    run.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="CMD ARGS", help="the command to measure, after --"
    )
    run.set_defaults(func=_cmd_run, parser=run)

    rep = sub.add_parser(
        "report",
        help="a report of run log(s): table, JSON, CSV, model card, paper statement, HTML page",
        description=(
            "Reads run logs and reports their footprint, each joule counted once: the nodes of one "
            "job added up, the parts of a run resumed from a checkpoint joined, unrelated runs "
            "listed and added up; the report says which rule it applied."
        ),
        **common,
    )
    rep.add_argument(
        "logs",
        nargs="+",
        metavar="LOG",
        help="run log file(s) (.jsonl): one run, the nodes of a job, the parts of a resumed run, "
        "or unrelated runs; a directory = its newest log",
    )
    rep.add_argument(
        "--format",
        choices=FORMATS,
        help="text (default): table and summary; json; csv: one row per log and the total; model-card: "
        "the Hugging Face co2_eq_emissions metadata; paper: a compute and emissions statement; "
        "html: one self-contained page with the figure",
    )
    rep.add_argument("--json", action="store_true", help="the same as --format json")
    rep.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the report to FILE instead of stdout; with --format model-card, FILE is a model "
        "card (README.md) that gets the co2_eq_emissions block, its other content kept",
    )
    rep.add_argument(
        "--training-type",
        choices=TRAINING_TYPES,
        help="for the model card: pre-training or fine-tuning (left out when not given)",
    )
    rep.add_argument(
        "--plot",
        metavar="OUT.png",
        help="write a PNG of power per component and cumulative CO2eq (needs matplotlib)",
    )
    rep.set_defaults(func=_cmd_report, parser=rep)

    zon = sub.add_parser("zones", help="the bundled grid zones with their intensity and source", **common)
    zon.add_argument("query", nargs="?", help="filter: part of a zone key or name (e.g. DE, Sweden)")
    zon.add_argument("--json", action="store_true", help="print JSON")
    zon.set_defaults(func=_cmd_zones, parser=zon)

    when = sub.add_parser(
        "when",
        help="the start time in a window that minimises a job's forecast emissions",
        description=(
            "From the forecast a provider publishes for the zone (UK Carbon Intensity API, Energi Data "
            "Service, Energy-Charts, or Electricity Maps with CARBON_ELECTRICITYMAPS_TOKEN), the start "
            "within the window that gives a job of --duration the lowest forecast emissions (the "
            "intensity integrated over the job's span, constant power assumed), the intensity then "
            "and now, and the saving. Looks up the forecast over the network."
        ),
        **common,
    )
    when.add_argument("--zone", help="grid zone, e.g. GB, GB-13, DE, DK-DK1 (default: CARBON_ZONE)")
    when.add_argument(
        "--duration", required=True, metavar="LENGTH", help="how long the job runs: 6h, 90m, 1h30m"
    )
    when.add_argument(
        "--within",
        default="24h",
        metavar="WINDOW",
        help="the job must end within this: a length from now (default 24h) or an ISO 8601 time with "
        "its offset; clipped to the forecast's end",
    )
    when.add_argument("--json", action="store_true", help="print JSON (start in ISO 8601 with its offset)")
    when.set_defaults(func=_cmd_when, parser=when)

    demo = sub.add_parser(
        "demo", help=f"run the README's example ({EXAMPLE}) or a short CPU workload", **common
    )
    _tracker_options(demo)
    demo.add_argument(
        "--builtin", action="store_true", help="measure the built-in CPU workload even where the example is"
    )
    demo.add_argument("--seconds", type=float, default=3.0, help="length of the CPU workload")
    demo.set_defaults(func=_cmd_demo, parser=demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``carbon-core``; returns the exit code (:data:`EXIT_CODES`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.func(args, args.parser)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _reader_gone()
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
