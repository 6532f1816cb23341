"""What a server sent, made fit for a message: a short excerpt that holds no secret.

A server may echo a token back, and not always as it was sent: JSON-escaped (``\\"``,
``\\/``, ``\\u0065``), percent-encoded (``%2F``, ``%2f``, ``+`` for a space), as HTML
entities, split across lines, in any field. :func:`excerpt` reads the whole text every way
a server may have encoded it, and where any reading holds a secret, or any
:data:`WINDOW` characters of one in a row, it gives no excerpt at all (in doubt, nothing
is shown: the caller's message keeps the status). Otherwise the excerpt is the JSON
``error``/``message`` (else the text) on one line of printable characters, at most
``limit`` long.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from urllib.parse import quote, unquote, unquote_plus

#: this many characters of a secret in a row, in any reading of a text, and it is not shown
WINDOW = 8
#: what a message says in place of an excerpt that had to be dropped
WITHHELD = "(the answer is not shown: it quotes the token)"
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_CONTROL = {"n": "\n", "r": "\r", "t": "\t"}


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret (raw or URL-encoded) replaced by ``***``."""
    for s in secrets:
        if s:
            for form in {s, quote(s, safe=""), quote(s)}:
                text = text.replace(form, "***")
    return text


def _unescape(text: str) -> str:
    """JSON and C-style escapes decoded (``\\u0065``, ``\\x65``, ``\\/``, ``\\n``)."""

    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        if len(s) > 1:
            return chr(int(s[1:], 16))
        return _CONTROL.get(s, s)

    return _ESCAPE.sub(one, text)


def readings(text: str) -> list[str]:
    """``text`` as it reads once decoded, layer after layer, without white space, case-folded."""
    out = [text]
    for _ in range(3):  # escapes inside percent-encoding inside entities...
        nxt = html.unescape(unquote(_unescape(out[-1])))
        if nxt == out[-1]:
            break
        out.append(nxt)
    out += [unquote_plus(t) for t in out]
    return ["".join(t.split()).casefold() for t in out]


def quotes_secret(text: str, secrets: Sequence[str]) -> bool:
    """Whether any reading of ``text`` holds a secret or :data:`WINDOW` characters of one."""
    pieces: set[str] = set()
    for s in secrets:
        s = "".join(s.split()).casefold()
        n = min(WINDOW, len(s))
        pieces.update(s[i : i + n] for i in range(len(s) - n + 1) if n)
    if not pieces:
        return False
    return any(p in r for r in readings(text) for p in pieces)


def excerpt(body: bytes | str, secrets: Sequence[str], limit: int = 120) -> str:
    """A short, one-line, printable excerpt of ``body``; ``""`` when empty, :data:`WITHHELD`
    when any reading of the body quotes a secret."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if quotes_secret(text, secrets):
        return WITHHELD
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        for key in ("error", "message"):
            v = data.get(key)
            if isinstance(v, dict):
                v = v.get("message") or v.get("code")
            if isinstance(v, str) and v.strip():
                text = v
                break
    text = " ".join("".join(c if c.isprintable() else " " for c in text[: 4 * limit]).split())
    text = scrub(text, secrets)
    return text[:limit] + ("..." if len(text) > limit else "")
