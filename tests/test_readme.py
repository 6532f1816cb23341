"""The README's configuration table is derived from :data:`carbon_core.config.OPTIONS`.

``python tests/test_readme.py`` rewrites the table in README.md from the options; the test
fails when the README and the options have drifted apart (a new option, a changed default,
help text or flag).
"""

from __future__ import annotations

import sys
from pathlib import Path

from carbon_core.config import OPTIONS, Option

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- options table: generated from carbon_core.config.OPTIONS by `python tests/test_readme.py` -->"
END = "<!-- end of options table -->"


def _default(option: Option) -> str:
    if option.default is None or option.default is False:
        return "off" if option.default is False else ""
    return f"`{option.default}`"


def options_table() -> str:
    rows = [
        "| argument | variable | `carbon-core run` | default | |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in OPTIONS:
        argument = f"`{o.name}`" if o.argument else "(environment only)"
        flag = f"`{o.flag}`" if o.flag else ""
        rows.append(f"| {argument} | `{o.env}` | {flag} | {_default(o)} | {o.help} |")
    return "\n".join([BEGIN, *rows, END])


def _current() -> tuple[str, int, int]:
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text, start, end


def test_readme_configuration_table_is_the_options() -> None:
    text, start, end = _current()
    assert text[start:end] == options_table(), "README is stale: run `python tests/test_readme.py`"


def test_every_option_is_one_row_with_its_variable() -> None:
    table = options_table().splitlines()[3:-1]
    assert len(table) == len(OPTIONS)
    assert all(row.count(f"`CARBON_{o.name.upper()}`") == 1 for row, o in zip(table, OPTIONS))


if __name__ == "__main__":
    text, start, end = _current()
    README.write_text(text[:start] + options_table() + text[end:])
    sys.exit(0)
