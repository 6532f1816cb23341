"""A local fake of the live grid-intensity APIs, for tests (127.0.0.1 only).

One threaded stdlib HTTP server speaks all three providers under separate prefixes, so a
test points the base-URL overrides at it (:meth:`FakeGridServer.env`)::

    CARBON_ELECTRICITYMAPS_URL   = {url}/em/v3     -> /em/v3/carbon-intensity/latest
    CARBON_UK_URL                = {url}/uk        -> /uk/intensity, /uk/regional/regionid/N
    CARBON_ENERGIDATASERVICE_URL = {url}/eds       -> /eds/dataset/CO2Emis, /eds/dataset/CO2EmisProg
    CARBON_ENERGYCHARTS_URL      = {url}/ec        -> /ec/co2eq
    CARBON_ECO2MIX_URL           = {url}/odre      -> /odre/api/explore/v2.1/catalog/datasets/
                                                      eco2mix-national-tr/records

Forecast and history paths that carry a time (``/uk/intensity/{from}/fw48h``,
``/uk/regional/intensity/{from}/{to}/regionid/N``) are routed by prefix
(:meth:`FakeGridServer.route_prefix`): the longest prefix that matches answers.

Each route answers with a :class:`Reply`, a sequence of replies (one per request, the last
repeats: a value that changes between refreshes), or a callable ``(Request) -> Reply``.
A reply can be any status and body, carry headers (``Retry-After``), or misbehave:
``mode="hang"`` (never answers until the server closes), ``delay_s`` (sleep first),
``"reset"`` (TCP RST, no answer), ``"truncated"`` (Content-Length promises more than is
sent), ``"huge"`` (a body of ``huge_bytes``), ``"trickle"`` (one byte of the body every
``delay_s``), ``"trickle-headers"`` (the status line and headers, padded to ``huge_bytes``,
one byte every ``delay_s``), ``"raw"`` (the body's bytes are the whole answer, status line
and all: a malformed one). ``FakeGridServer("::1")`` listens on IPv6 loopback.
Builders for each provider's real shapes: :func:`em_latest`, :func:`em_zone_not_allowed`,
:func:`uk_national`, :func:`uk_regional`, :func:`eds_co2emis`, and their error bodies; for
forecasts and history :func:`em_series`, :func:`uk_window`, :func:`uk_regional_window`,
:func:`eds_rows`, :func:`ec_co2eq`, :func:`odre_records`, from ``(epoch s, value)`` rows.

Sleeping handlers wake when the server closes, so tests never wait on them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union
from urllib.parse import parse_qs, urlsplit

EM_LATEST = "/em/v3/carbon-intensity/latest"
UK_NATIONAL = "/uk/intensity"
UK_REGIONAL = "/uk/regional/regionid/{}"
EDS_CO2EMIS = "/eds/dataset/CO2Emis"
EDS_PROG = "/eds/dataset/CO2EmisProg"
EM_FORECAST = "/em/v3/carbon-intensity/forecast"
EM_HISTORY = "/em/v3/carbon-intensity/history"
UK_WINDOW = "/uk/intensity/"  # + {from}/fw48h or {from}/{to}
UK_REGIONAL_WINDOW = "/uk/regional/intensity/"  # + {from}/fw48h/regionid/N
EC_CO2EQ = "/ec/co2eq"
ODRE_RECORDS = "/odre/api/explore/v2.1/catalog/datasets/eco2mix-national-tr/records"
EC_UNKNOWN_COUNTRY = (
    "'xx' is not the code for an available country. Please refer to the API doc for information "
    "about available countries"
)


# -- the providers' real shapes (see shared/api-shapes.md) --------------------------------


def em_latest(
    value: Any, zone: str = "DE", *, estimated: bool = False, factor: str = "lifecycle"
) -> dict[str, Any]:
    """Electricity Maps v3 ``/carbon-intensity/latest`` (``factor``: ``emissionFactorType``)."""
    return {
        "zone": zone,
        "carbonIntensity": value,
        "datetime": "2024-03-06T19:00:00.000Z",
        "updatedAt": "2024-03-06T18:48:27.926Z",
        "createdAt": "2024-03-03T19:47:16.265Z",
        "emissionFactorType": factor,
        "isEstimated": estimated,
        "estimationMethod": "TIME_SLICER_AVERAGE" if estimated else None,
    }


EM_INVALID_TOKEN = {
    "error": "Invalid auth-token",
    "message": "The provided token is invalid. If this token used to work, it may have expired.",
}


def em_zone_not_allowed(zone: str = "DK-DK2") -> dict[str, Any]:
    """Electricity Maps' 401 body for a valid token asking for a zone outside its plan
    (recorded in shared/api-shapes.md, section 5): not the same ``error`` as a bad token."""
    return {
        "error": f"Request unauthorized for zoneKey={zone},requestType=latest,dataType=carbon-intensity.",
        "message": "You do not have access to this specific endpoint for this specific zone. "
        "Please visit https://help.electricitymaps.com if this is a mistake",
    }


def uk_national(actual: Any, forecast: Any = None) -> dict[str, Any]:
    """UK Carbon Intensity ``/intensity`` (``actual`` may be None: forecast is used)."""
    return {
        "data": [
            {
                "from": "2018-01-20T12:00Z",
                "to": "2018-01-20T12:30Z",
                "intensity": {
                    "forecast": actual if forecast is None else forecast,
                    "actual": actual,
                    "index": "moderate",
                },
            }
        ]
    }


def uk_regional(forecast: Any, regionid: int = 13) -> dict[str, Any]:
    """UK Carbon Intensity ``/regional/regionid/N`` (a list with one region)."""
    return {
        "data": [
            {
                "regionid": regionid,
                "dnoregion": "UKPN London",
                "shortname": "London",
                "data": [
                    {
                        "from": "2018-01-20T12:00Z",
                        "to": "2018-01-20T12:30Z",
                        "intensity": {"forecast": forecast, "index": "moderate"},
                        "generationmix": [
                            {"fuel": "gas", "perc": 43.6},
                            {"fuel": "wind", "perc": 6.8},
                        ],
                    }
                ],
            }
        ]
    }


def uk_error(code: int = 500, message: str = "Internal Server Error") -> dict[str, Any]:
    reason = {400: "Bad Request", 500: "Internal Server Error"}.get(code, "Error")
    return {"error": {"code": f"{code} {reason}", "message": message}}


def eds_co2emis(value: Any, area: str = "DK1", *, other: Any = None) -> dict[str, Any]:
    """Energi Data Service ``dataset/CO2Emis`` (newest first); ``other`` adds a row of the
    other price area, which a client must ignore."""
    records = [
        {
            "Minutes5UTC": "2026-01-20T16:30:00",
            "Minutes5DK": "2026-01-20T17:30:00",
            "PriceArea": area,
            "CO2Emission": value,
        }
    ]
    if other is not None:
        records.insert(
            0,
            {
                "Minutes5UTC": "2026-01-20T16:35:00",
                "Minutes5DK": "2026-01-20T17:35:00",
                "PriceArea": "DK2" if area == "DK1" else "DK1",
                "CO2Emission": other,
            },
        )
    return {"total": 1903306, "limit": 1, "dataset": "CO2Emis", "records": records}


def _utc(t: float, fmt: str) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).strftime(fmt)


Rows = Sequence[tuple[float, Any]]


def em_series(zone: str, rows: Rows, key: str = "forecast") -> dict[str, Any]:
    """Electricity Maps ``/carbon-intensity/forecast`` (``key="forecast"``) or ``/history``
    (``key="history"``, rows shaped like ``latest``): hourly rows, oldest first."""
    items: list[dict[str, Any]] = []
    for t, v in rows:
        item: dict[str, Any] = {"carbonIntensity": v, "datetime": _utc(t, "%Y-%m-%dT%H:%M:%S.000Z")}
        if key == "history":
            item.update(zone=zone, emissionFactorType="lifecycle", isEstimated=False, estimationMethod=None)
        items.append(item)
    out: dict[str, Any] = {"zone": zone, key: items}
    if key == "forecast":
        out["updatedAt"] = "2026-08-22T17:34:24.392Z"
    return out


def _uk_rows(rows: Rows, step_s: float, actual: bool) -> list[dict[str, Any]]:
    fmt = "%Y-%m-%dT%H:%MZ"
    out = []
    for t, v in rows:
        intensity: dict[str, Any] = {"forecast": v, "index": "moderate"}
        if actual:
            intensity["actual"] = None
        out.append({"from": _utc(t, fmt), "to": _utc(t + step_s, fmt), "intensity": intensity})
    return out


def uk_window(rows: Rows, step_s: float = 1800.0) -> dict[str, Any]:
    """UK national ``/intensity/{from}/fw48h`` or ``/{from}/{to}``: half hours, ``actual`` null."""
    return {"data": _uk_rows(rows, step_s, actual=True)}


def uk_regional_window(rows: Rows, regionid: int = 13, *, as_list: bool = False) -> dict[str, Any]:
    """UK ``/regional/intensity/{from}/fw48h/regionid/N``: ``data`` an object (or a one-item list)."""
    region = {"regionid": regionid, "dnoregion": "UKPN London", "shortname": "London"}
    periods = _uk_rows(rows, 1800.0, actual=False)
    for p in periods:
        p["generationmix"] = [{"fuel": "gas", "perc": 43.6}, {"fuel": "wind", "perc": 6.8}]
    body = {**region, "data": periods}
    return {"data": [body] if as_list else body}


def eds_rows(rows: Rows, area: str = "DK1", dataset: str = "CO2EmisProg") -> dict[str, Any]:
    """Energi Data Service ``CO2EmisProg``/``CO2Emis`` rows, newest first (``sort=... DESC``)."""
    records = [
        {
            "Minutes5UTC": _utc(t, "%Y-%m-%dT%H:%M:%S"),
            "Minutes5DK": _utc(t + 3600, "%Y-%m-%dT%H:%M:%S"),
            "PriceArea": area,
            "CO2Emission": v,
        }
        for t, v in sorted(rows, key=lambda r: r[0], reverse=True)
    ]
    return {"total": len(records), "limit": len(records), "dataset": dataset, "records": records}


def ec_co2eq(measured: Rows, forecast: Rows = (), *, deprecated: bool = False) -> dict[str, Any]:
    """Energy-Charts ``/co2eq``: parallel arrays over every slot given; ``co2eq`` set where
    ``measured`` has the slot, ``co2eq_forecast`` where ``forecast`` has it, else null."""
    m, f = dict(measured), dict(forecast)
    times = sorted(set(m) | set(f))
    return {
        "unix_seconds": [int(t) for t in times],
        "co2eq": [m.get(t) for t in times],
        "co2eq_forecast": [f.get(t) for t in times],
        "deprecated": deprecated,
    }


def odre_records(rows: Rows, *, perimetre: str = "France", as_text: bool = False) -> dict[str, Any]:
    """ODRE ``eco2mix-national-tr/records`` (Opendatasoft Explore v2.1): ``results`` rows with
    ``date_heure`` (UTC, with its offset) and ``taux_co2`` (a string when ``as_text``)."""
    results = [
        {
            "perimetre": perimetre,
            "nature": "Données temps réel",
            "date_heure": _utc(t, "%Y-%m-%dT%H:%M:%S+00:00"),
            "taux_co2": str(v) if as_text and v is not None else v,
        }
        for t, v in rows
    ]
    return {"total_count": len(results), "results": results}


# -- server ---------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> sent as is; None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    mode: str = "normal"  # normal | hang | reset | truncated | huge | trickle | trickle-headers | raw
    huge_bytes: int = 8 << 20
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float


Responder = Union[Reply, Sequence[Reply], Callable[[Request], Reply]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class FakeGridServer:
    """Threaded fake of the three providers on 127.0.0.1 or ``host`` (an ephemeral port)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._routes: dict[str, Responder] = {}
        self._prefixes: list[str] = []
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self.closing = threading.Event()
        self.requests: list[Request] = []
        self._received = threading.Condition(self._lock)
        self._httpd = (_Server6 if ":" in host else _Server)((host, 0), self._handler_class())
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # routes
    def route(self, path: str, responder: Responder) -> None:
        with self._lock:
            self._routes[path] = responder
            self._served[path] = 0

    def route_prefix(self, prefix: str, responder: Responder) -> None:
        """Answer every path that starts with ``prefix`` (and has no route of its own)."""
        self.route(prefix, responder)
        with self._lock:
            if prefix not in self._prefixes:
                self._prefixes.append(prefix)
                self._prefixes.sort(key=len, reverse=True)

    def em(self, responder: Responder) -> None:
        self.route(EM_LATEST, responder)

    def uk(self, responder: Responder, regionid: int | None = None) -> None:
        self.route(UK_NATIONAL if regionid is None else UK_REGIONAL.format(regionid), responder)

    def eds(self, responder: Responder) -> None:
        self.route(EDS_CO2EMIS, responder)

    def env(self, **extra: str) -> dict[str, str]:
        """``CARBON_*`` variables pointing every provider here (for ``config.load(..., env)``)."""
        env = {
            "CARBON_ELECTRICITYMAPS_URL": f"{self.url}/em/v3",
            "CARBON_UK_URL": f"{self.url}/uk",
            "CARBON_ENERGIDATASERVICE_URL": f"{self.url}/eds",
            "CARBON_ENERGYCHARTS_URL": f"{self.url}/ec",
            "CARBON_ECO2MIX_URL": f"{self.url}/odre",
        }
        env.update(extra)
        return env

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def wait_for_requests(self, n: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._received:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._received.wait(left)
            return True

    def close(self) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeGridServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # internals
    def _next_reply(self, req: Request) -> Reply:
        with self._received:
            self.requests.append(req)
            self._received.notify_all()
            key = req.path
            if key not in self._routes:
                key = next((p for p in self._prefixes if req.path.startswith(p)), key)
            responder = self._routes.get(key)
            n = self._served.get(key, 0)
            self._served[key] = n + 1
        if responder is None:
            return Reply(404, {"error": "not routed", "message": req.path})
        if isinstance(responder, Reply):
            return responder
        if callable(responder):
            return responder(req)
        replies = list(responder)
        return replies[min(n, len(replies) - 1)]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                req = Request(
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    time.monotonic(),
                )
                reply = server._next_reply(req)
                with contextlib.suppress(OSError):  # the client went away: fine
                    self._answer(reply)

            def _answer(self, reply: Reply) -> None:
                if reply.delay_s and reply.mode != "trickle" and server.closing.wait(reply.delay_s):
                    return
                if reply.mode == "hang":
                    server.closing.wait(120)
                    return
                if reply.mode == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                body = reply.payload()
                if reply.mode == "raw":
                    self.wfile.write(body)
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.mode == "huge":
                    self.send_header("Content-Length", str(reply.huge_bytes))
                    self.end_headers()
                    chunk = b" " * 65536
                    sent = 0
                    while sent < reply.huge_bytes and not server.closing.is_set():
                        self.wfile.write(chunk)
                        sent += len(chunk)
                    return
                if reply.mode == "truncated":
                    self.send_header("Content-Length", str(len(body) + 100))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                if reply.mode == "trickle-headers":
                    self.send_header("X-Pad", "." * reply.huge_bytes)
                    head, self._headers_buffer = b"".join(self._headers_buffer) + b"\r\n", []
                    if self._trickle(head, reply.delay_s):
                        self.wfile.write(body)
                    return
                self.end_headers()
                if reply.mode == "trickle":
                    self._trickle(body, reply.delay_s)
                    return
                self.wfile.write(body)

            def _trickle(self, data: bytes, delay_s: float) -> bool:
                """Send ``data`` a byte every ``delay_s``; False when the server closed first."""
                for i in range(len(data)):
                    if server.closing.wait(delay_s):
                        return False
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                return True

        return Handler


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
