"""The bundled tables (CSV) and their provenance (``SOURCES.md``), read at run time."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent


def read_text(name: str) -> str:
    """The text of one bundled file (e.g. ``cpu_tdp_watts.csv``)."""
    return (DATA_DIR / name).read_text(encoding="utf-8")
