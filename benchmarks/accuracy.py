"""Compare every estimate and table carbon-core ships with published measurements or the
primary source, and write ``benchmarks/ACCURACY.md``.

python benchmarks/accuracy.py [--out PATH]

Each part is a module with ``section() -> str`` (a Markdown section, tables with the error in
per cent). Nothing here contacts the network: the published figures are written in the part
modules beside their sources, and carbon-core's figures are computed by the installed package
from fake ``/proc/cpuinfo`` and cgroup files, exactly as a user's machine would be read.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import accuracy_cpu  # noqa: E402
import accuracy_grid  # noqa: E402

PARTS = (accuracy_cpu, accuracy_grid)


def render() -> str:
    import carbon_core

    head = (
        "# How close carbon-core's numbers are to published measurements\n\n"
        f"Written by `python benchmarks/accuracy.py` on {datetime.date.today().isoformat()} "
        f"(carbon-core {carbon_core.__version__}). Rerun it to check; every published figure "
        "below names its source. Error = (carbon-core - published) / published.\n"
    )
    return "\n".join([head, *(part.section() for part in PARTS)])


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--out", type=Path, default=HERE / "ACCURACY.md")
    out = args.parse_args(argv).out
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
