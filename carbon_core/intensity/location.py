"""Where the machine is, without the network.

A zone given by the configuration (``zone`` / ``CARBON_ZONE``, read by
:mod:`carbon_core.config`) comes first; without one, these rules, in order (the first
that gives an answer wins):

1. A cloud region named in the environment, read in this order:
   ``AWS_REGION``, ``AWS_DEFAULT_REGION`` (AWS SDKs, Lambda, ECS, SageMaker),
   ``GOOGLE_CLOUD_REGION``, ``CLOUD_ML_REGION`` (Vertex AI training jobs),
   ``CLOUDSDK_COMPUTE_REGION``, ``CLOUDSDK_COMPUTE_ZONE`` (gcloud; ``europe-west1-b`` is
   read as ``europe-west1``), ``FUNCTION_REGION`` (Cloud Functions, 1st gen),
   ``REGION_NAME`` (Azure ML / App Service; ``West Europe`` is read as ``westeurope``),
   ``AZURE_REGION``, ``AZURE_LOCATION``. A value that no bundled table knows is skipped.
   AWS and Azure regions become the grid zone that supplies them (``eu-west-1`` -> ``IE``,
   ``us-east-1`` -> ``US-MIDA-PJM``);
   Google regions keep their own name (``europe-west1``), whose figure Google publishes.
   Caveat: a laptop with ``AWS_DEFAULT_REGION`` set for the CLI is located there; set
   ``CARBON_ZONE`` to override.
2. The system time zone mapped to its country through the tz database's ``zone.tab``:
   ``TZ`` (``Europe/Copenhagen``, ``:Europe/Copenhagen``, or a path, with or without the
   ``:``: a file under a zoneinfo directory (``TZDIR``, ``/usr/share/zoneinfo``, ...) or a
   symlink to one gives its name there, ``posix/`` and ``right/`` copies the plain name;
   ``/etc/localtime`` is the system zone), then, with ``TZ`` unset or empty, the target of
   the ``/etc/localtime`` symlink, then ``/etc/timezone``. Links (``US/Pacific``,
   ``Asia/Calcutta``) are followed through ``tzdata.zi``. ``Etc/UTC``, ``UTC``, other zones
   without a country and a ``TZ`` file that names no zone give no answer.
3. Nothing: ``(None, "world-average")``; the caller warns and uses the world average.

:func:`describe` puts where the zone came from in words (the summary and the run log say it).

IP geolocation and cloud instance-metadata endpoints are not used: they would need the
network, which is opt-in only; neither is implemented yet.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from carbon_core.intensity import tables

CLOUD_REGION_ENV_VARS = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "GOOGLE_CLOUD_REGION",
    "CLOUD_ML_REGION",
    "CLOUDSDK_COMPUTE_REGION",
    "CLOUDSDK_COMPUTE_ZONE",
    "FUNCTION_REGION",
    "REGION_NAME",
    "AZURE_REGION",
    "AZURE_LOCATION",
)

# Module-level so tests (and odd systems) can point them elsewhere.
LOCALTIME = Path("/etc/localtime")
TIMEZONE_FILE = Path("/etc/timezone")
ZONEINFO_DIRS: tuple[Path, ...] = (
    Path("/usr/share/zoneinfo"),
    Path("/usr/lib/zoneinfo"),
    Path("/usr/share/lib/zoneinfo"),
    Path("/etc/zoneinfo"),
)

_GCP_ZONE_SUFFIX = re.compile(r"^([a-z]+-[a-z]+\d+)-[a-z]$")


def _cloud_zone(value: str) -> str | None:
    v = value.strip()
    if not v:
        return None
    candidates = [v, v.lower().replace(" ", "")]
    m = _GCP_ZONE_SUFFIX.match(v.lower())
    if m:
        candidates.append(m.group(1))
    for c in candidates:
        hit = tables.cloud_region(c)
        if hit is not None:
            provider, region = hit
            if provider == "gcp":
                return region
            return tables.grid_zone(region)
    return None


def _zone_name_of_path(path: str, env: Mapping[str, str]) -> str | None:
    """The tz name of a zoneinfo file from its path, the path a symlink names, or its real path.

    A path under a zoneinfo directory (``TZDIR``, the known ones, any ``.../zoneinfo/``) gives
    its name there; the ``posix/`` and ``right/`` copies of the database give the plain name.
    """
    dirs = [os.path.abspath(env["TZDIR"])] if env.get("TZDIR") else []
    dirs += [str(d) for d in ZONEINFO_DIRS]
    dirs += [os.path.realpath(d) for d in dirs]
    candidates = [path]
    with contextlib.suppress(OSError, ValueError):  # not a symlink, or not there
        candidates.append(os.path.join(os.path.dirname(path), os.readlink(path)))
    candidates.append(os.path.realpath(path))
    for text in candidates:
        text = os.path.abspath(text)
        names = [os.path.relpath(text, d) for d in dirs if text.startswith(d.rstrip("/") + "/")]
        if "/zoneinfo/" in text:
            names.append(text.split("/zoneinfo/", 1)[1])
        for name in names:
            for variant in ("posix/", "right/"):
                name = name.removeprefix(variant)
            if name and not name.startswith(".."):
                return name
    return None


def _tz_name_from_env(v: str, env: Mapping[str, str]) -> str | None:
    """The tz name ``TZ`` (without its leading ``:``) gives: a name (``Europe/Berlin``) or a
    path (``/usr/share/zoneinfo/Europe/Berlin``; ``/etc/localtime`` is the system zone)."""
    if not v.startswith(("/", "./", "../")):
        return v.removeprefix("posix/").removeprefix("right/") or None
    if os.path.abspath(v) == os.path.abspath(LOCALTIME):
        found = _system_tz_name(env)
        return found[0] if found else None
    return _zone_name_of_path(v, env)


def _system_tz_name(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(tz name, where it was read) from /etc/localtime or /etc/timezone."""
    try:
        if LOCALTIME.is_symlink():
            name = _zone_name_of_path(str(LOCALTIME), env)
            if name:
                return name, str(LOCALTIME)
    except (OSError, ValueError):
        pass
    try:
        lines = TIMEZONE_FILE.read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if lines and lines[0].strip():
        return lines[0].strip(), str(TIMEZONE_FILE)
    return None


def _zone_tab() -> tuple[dict[str, str], dict[str, str]]:
    """(tz name -> country code, link name -> target) from the first zoneinfo dir found."""
    countries: dict[str, str] = {}
    links: dict[str, str] = {}
    for d in ZONEINFO_DIRS:
        try:
            text = (d / "zone.tab").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) >= 3:
                countries[cols[2].strip()] = cols[0].strip().upper()
        try:
            zi = (d / "tzdata.zi").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            zi = ""
        for line in zi.splitlines():
            if line.startswith("L "):
                parts = line.split()
                if len(parts) == 3:
                    links[parts[2]] = parts[1]
        break
    return countries, links


def tz_country(tz_name: str) -> str | None:
    """ISO alpha-2 country of a tz database name, or None (``Etc/UTC``, unknown)."""
    countries, links = _zone_tab()
    name = tz_name
    for _ in range(4):  # links may chain
        if name in countries:
            return countries[name]
        if name not in links:
            return None
        name = links[name]
    return None


def describe(zone: str | None, how: str) -> str:
    """Where the zone came from and how to change it, in words, for the summary and the run
    log: ``zone DK, from the time zone Europe/Copenhagen; set CARBON_ZONE to change it``.

    ``how`` is what :func:`detect_zone` (or the configuration) said: ``argument``,
    ``env:CARBON_ZONE``, ``env:AWS_REGION=us-east-1``, ``timezone:Europe/Copenhagen->DK``
    or ``world-average``. A cloud region named as the zone also names its grid zone."""
    change = "set CARBON_ZONE to change it"
    if zone is None:
        return (
            "zone unknown (no zone argument, no CARBON_ZONE, no cloud region in the environment, "
            f"no time zone with a country), so the world average; {change}"
        )
    grid = tables.grid_zone(zone)
    named = f"zone {zone}" + (f" (grid zone {grid})" if grid and grid != zone else "")
    if how == "argument":
        return f"{named}, from the zone argument"
    kind, _, detail = how.partition(":")
    if kind == "env" and "=" in detail:
        var, _, value = detail.partition("=")
        return f"{named}, from the cloud region {value} in {var}; {change}"
    if kind == "env":
        return f"{named}, from {detail}"
    if kind == "timezone":
        return f"{named}, from the time zone {detail.partition('->')[0]}; {change}"
    return f"{named}, from {how}; {change}"


def detect_zone(env: Mapping[str, str]) -> tuple[str | None, str]:
    """``(zone, how it was found)`` from the environment and the system time zone.

    ``how`` is one of ``env:AWS_REGION=eu-west-1``, ``timezone:Europe/Copenhagen->DK``
    or ``world-average`` (zone None).
    """
    for var in CLOUD_REGION_ENV_VARS:
        value = env.get(var, "")
        zone = _cloud_zone(value) if value else None
        if zone is not None:
            return zone, f"env:{var}={value.strip()}"
    tz_env = env.get("TZ", "").strip().removeprefix(":").strip()
    if tz_env:
        tz = _tz_name_from_env(tz_env, env)
    else:  # TZ unset or empty: the system zone
        found = _system_tz_name(env)
        tz = found[0] if found else None
    if tz:
        country = tz_country(tz)
        if country is not None and tables.lookup(country) is not None:
            return country, f"timezone:{tz}->{country}"
    return None, "world-average"
