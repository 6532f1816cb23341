"""Grid intensity tables against their published sources (a part of ``accuracy.py``).

For each bundled table, the figure carbon-core uses (``carbon_core.intensity.lookup``, as a
tracker would) is compared with the primary source it was taken from, and, where one exists,
with an independent published figure for the same grid. The published figures are in
``benchmarks/grid_reference.json`` with their sources; nothing here uses the network.

python benchmarks/accuracy_grid.py   # prints the Markdown section
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

from carbon_core.intensity import lookup, zones
from carbon_core.intensity.tables import _tables, grid_zone

REFERENCE = Path(__file__).resolve().parent / "grid_reference.json"

#: the cloud regions the issue names, and the Google region on the same grid (if any)
CLOUD_REGIONS: tuple[tuple[str, str | None], ...] = (
    ("aws:us-east-1", "us-east4"),
    ("azure:eastus", "us-east4"),
    ("aws:us-east-2", "us-east5"),
    ("aws:us-west-1", None),
    ("aws:us-west-2", "us-west1"),
    ("azure:westus2", None),
    ("azure:southcentralus", "us-south1"),
    ("azure:centralus", "us-central1"),
    ("aws:ca-central-1", "northamerica-northeast1"),
    ("azure:canadaeast", "northamerica-northeast1"),
    ("azure:canadacentral", "northamerica-northeast2"),
    ("aws:ca-west-1", None),
)
#: countries whose figure comes from Electricity Maps, like their zones (SOURCES.md)
EM_FAMILIES = ("US", "CA", "SE", "NO", "DK")


def _reference() -> dict[str, object]:
    data: dict[str, object] = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return data


def _err(ours: float, published: float) -> float | None:
    return None if published == 0 else (ours - published) / published * 100.0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} %"


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _summary(errors: Iterable[float | None]) -> str:
    abs_errors = [abs(e) for e in errors if e is not None]
    if not abs_errors:
        return "no rows compared"
    over = sum(1 for e in abs_errors if e > 5.0)
    return (
        f"{len(abs_errors)} rows; |error| median {statistics.median(abs_errors):.1f} %, "
        f"max {max(abs_errors):.1f} %; {over} rows off by more than 5 %"
    )


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _used(zone: str) -> tuple[float, str]:
    found = lookup(zone)
    if found is None:
        raise SystemExit(f"accuracy_grid: carbon-core has no figure for {zone}")
    return found.gco2eq_per_kwh, found.source


def cloud_regions(ref: dict[str, object]) -> str:
    em = ref["electricitymaps"]["2025"]  # type: ignore[index]
    google = ref["google"]["2024"]  # type: ignore[index]
    before = ref["before"]["figures"]  # type: ignore[index]
    rows, now_err, old_err = [], [], []
    for region, same_grid in CLOUD_REGIONS:
        value, _ = _used(region)
        zone = grid_zone(region) or "?"
        published = em.get(zone)
        old_row, old_value = before[region]
        e_now = _err(value, published) if published is not None else None
        e_old = _err(old_value, published) if published is not None else None
        now_err.append(e_now)
        old_err.append(e_old)
        g = google.get(same_grid) if same_grid else None
        rows.append(
            (
                f"`{region}`",
                f"`{zone}`",
                f"{old_value:g} (`{old_row}`)",
                _g(value),
                _g(published),
                _pct(e_old),
                _pct(e_now),
                f"{g:g} (`{same_grid}`)" if g is not None else "-",
            )
        )
    head = (
        "region",
        "grid zone now",
        "before",
        "carbon-core",
        "Electricity Maps 2025",
        "error before",
        "error now",
        "Google 2024, same grid (direct)",
    )
    return "\n\n".join(
        [
            "### Cloud regions: the grid that supplies them",
            "The regions the issue names. *Before*: the figure carbon-core used until now (the "
            "state's generation rate, or Canada's national figure). *Published*: Electricity "
            "Maps' 2025 life-cycle figure for the grid region (balancing area or province) "
            "that supplies the site, the table's primary source; Google's 2024 figure for its "
            "own region on the same grid is an independent check (direct emissions, so lower "
            "by the life-cycle share).",
            _table(head, rows),
            f"Before: {_summary(old_err)}. Now: {_summary(now_err)}.",
        ]
    )


def countries(ref: dict[str, object]) -> str:
    ember = ref["ember"]["figures"]  # type: ignore[index]
    t = _tables()
    iso2_of = t.iso3
    errors: list[float | None] = []
    worst: list[tuple[float, str, str]] = []
    stale: list[str] = []
    missing: list[str] = []
    family_rows = []
    for iso3, (year, published) in sorted(ember.items()):
        iso2 = iso2_of.get(iso3)
        if iso2 is None:
            missing.append(iso3)
            continue
        value, source = _used(iso2)
        if iso2 in EM_FAMILIES:
            family_rows.append(
                (
                    f"`{iso2}`",
                    _g(value),
                    f"`{source}`",
                    f"{published:g} ({year})",
                    _pct(_err(value, published)),
                )
            )
            continue
        e = _err(value, published)
        errors.append(e)
        if e is not None and abs(e) > 10.0:
            worst.append((abs(e), iso2, f"{value:g} ({source.split(':')[3]}) vs {published:g} ({year})"))
    for row in t.grid.values():
        if row.kind == "country" and row.year.isdigit() and int(row.year) < 2022:
            stale.append(f"`{row.key}` ({row.year}, {row.value:g} g)")
    worst.sort(reverse=True)
    parts = [
        "### Countries (Ember / Our World in Data)",
        "The country table is Our World in Data's copy of Ember's data (as carbontracker 2.4.7 "
        "shipped it); the primary source is Ember's own yearly data as republished in August "
        "2025 (co2.js). Differences are Ember's revisions and newer years since that copy.",
        f"All countries but the five below: {_summary(errors)}. Ember rows with no country in "
        f"the table: {', '.join(missing) or 'none'}.",
    ]
    if worst:
        parts.append(
            _table(
                ("country", "|error|", "carbon-core vs Ember"),
                ((f"`{k}`", f"{e:.1f} %", text) for e, k, text in worst[:12]),
            )
        )
    parts.append(
        "Flagged: rows older than 2022, the latest year their source has: "
        + (", ".join(stale) if stale else "none")
        + ". Ember has no row for them."
    )
    parts.append(
        "The five countries whose grid zones are bundled take Electricity Maps' figure (life "
        "cycle, consumption based, 2025), like their zones; Ember's (production based) is shown "
        "for the difference in method:"
    )
    parts.append(_table(("country", "carbon-core", "source", "Ember (year)", "difference"), family_rows))
    return "\n\n".join(parts)


def em_zones(ref: dict[str, object]) -> str:
    em = ref["electricitymaps"]
    y25, y24 = em["2025"], em["2024"]  # type: ignore[index]
    before = ref["before"]["figures"]  # type: ignore[index]
    transcription = []
    year_to_year = []
    for zone, published in sorted(y25.items()):
        value, source = _used(zone)
        if not source.startswith("table:electricitymaps:"):
            raise SystemExit(f"accuracy_grid: {zone} is not from the Electricity Maps table ({source})")
        transcription.append(_err(value, published))
        if zone in y24:
            year_to_year.append(_err(published, y24[zone]))
    nordic = []
    for zone in ("SE", "SE-SE1", "SE-SE2", "SE-SE3", "SE-SE4"):
        old = before[zone][1]
        value, _ = _used(zone)
        nordic.append((f"`{zone}`", _g(old), _g(value), _g(y25[zone]), _pct(_err(old, y25[zone]))))
    return "\n\n".join(
        [
            "### Grid regions of the US, Canada and the Nordics (Electricity Maps)",
            "Copied from Electricity Maps' 2025 yearly figures; the check is that the figure "
            f"carbon-core uses is the published one: {_summary(transcription)}. How much a "
            f"yearly figure moves from one year to the next (2024 to 2025, same zones): "
            f"{_summary(year_to_year)}; that is the error of using last year's figure for "
            "this year's run, and why the table's year is in every source.",
            "Sweden and its bidding zones, before (Ember's country figure; CodeCarbon's "
            "ENTSO-E zones) and now, against Electricity Maps 2025:",
            _table(("zone", "before", "carbon-core", "Electricity Maps 2025", "error before"), nordic),
        ]
    )


def gcp(ref: dict[str, object]) -> str:
    google = ref["google"]
    g24, g23 = google["2024"], google["2023"]  # type: ignore[index]
    em = ref["electricitymaps"]["2025"]  # type: ignore[index]
    transcription, changed, basis = [], [], []
    for region, published in sorted(g24.items()):
        value, source = _used(f"gcp:{region}")
        if not source.endswith(":direct"):
            raise SystemExit(f"accuracy_grid: {region}'s source does not name its basis ({source})")
        transcription.append(_err(value, published))
        old = g23.get(region)
        if old is not None and abs(_err(published, old) or 0.0) > 5.0:
            changed.append(f"`{region}` {old:g} -> {published:g}")
        zone = grid_zone(f"gcp:{region}")
        if zone in em:
            basis.append((f"`{region}`", f"`{zone}`", _g(value), _g(em[zone]), f"{em[zone] / value:.2f}"))
    missing_2023 = sorted(set(g24) - set(g23))
    return "\n\n".join(
        [
            "### Google Cloud regions (Google, 2024)",
            f"Against Google's 2024 file: {_summary(transcription)}. Regions new since the 2023 "
            f"file: {', '.join(f'`{r}`' for r in missing_2023)}. Regions whose 2024 figure "
            f"differs from 2023 by more than 5 % ({len(changed)} of {len(set(g24) & set(g23))}): "
            + ", ".join(changed)
            + ".",
            "Google publishes direct (operational) emissions, so these figures are labelled "
            "`:direct`. Against Electricity Maps' life-cycle figure for the grid that supplies "
            "the same region (where the tables hold it), the ratio shows the basis gap a user "
            "comparing a Google region with an AWS or Azure one should expect:",
            _table(
                (
                    "region",
                    "grid zone",
                    "Google 2024 (direct)",
                    "Electricity Maps 2025 (life cycle)",
                    "ratio",
                ),
                basis,
            ),
        ]
    )


def not_compared() -> str:
    states = sum(1 for z in zones() if z.source.startswith("table:us-state:"))
    return "\n\n".join(
        [
            "### Not compared",
            f"US states ({states} rows, eGRID2023, direct): no stored copy of eGRID2023's state "
            "table was found to compare with; the rows are CodeCarbon 3.3.2's compilation. "
            "Cloud regions no longer use them.",
        ]
    )


def section() -> str:
    ref = _reference()
    return (
        "\n\n".join(
            [
                "## Grid carbon intensity",
                "Error = (carbon-core - published) / published, for the figure a tracker uses "
                "(`carbon_core.intensity.lookup`). Published figures and their sources: "
                "`benchmarks/grid_reference.json`; the tables' own sources: "
                "`carbon_core/data/SOURCES.md`.",
                cloud_regions(ref),
                em_zones(ref),
                countries(ref),
                gcp(ref),
                not_compared(),
            ]
        )
        + "\n"
    )


if __name__ == "__main__":
    print(section())
