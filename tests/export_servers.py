"""Real servers for the exporter tests, all on 127.0.0.1: Prometheus and the Pushgateway
(Debian's ``prometheus`` and ``prometheus-pushgateway`` binaries, which ``.ci/run``
installs), and an OTLP/HTTP receiver that decodes requests with the OpenTelemetry
protobuf definitions. Plus the run log, read back as the record the figures must match.

Where a binary is missing: in CI (``CI=true``) the test fails, saying what to install; on a
developer's machine it is skipped with the same words (``-ra`` shows them).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        why = f"{name} is not installed: apt-get install {package} (Debian/Ubuntu; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


def free_ports(n: int = 1) -> int:
    """The first of ``n`` consecutive ports free on 127.0.0.1 now."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        if first + n > 65535:
            continue
        socks = []
        try:
            for port in range(first, first + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free consecutive ports")


def get(url: str, timeout: float = 5.0) -> bytes:
    with _DIRECT.open(url, timeout=timeout) as response:
        return response.read()


def _up(url: str) -> bool:
    try:
        get(url, timeout=1.0)
        return True
    except OSError:
        return False


@contextmanager
def _process(cmd: list[str], ready_url: str, log: Path) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        if not wait_for(lambda: proc.poll() is not None or _up(ready_url), timeout=60):
            raise AssertionError(f"{cmd[0]} not ready within 60 s:\n{log.read_text()[-2000:]}")
        assert proc.poll() is None, f"{cmd[0]} exited:\n{log.read_text()[-2000:]}"
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Prometheus:
    """A Prometheus server scraping ``targets`` every 100 ms; :meth:`query` asks its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector: [{"metric": {labels}, "value": float}, ...]."""
        answer = json.loads(get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
        assert answer["status"] == "success", answer
        return [{"metric": r["metric"], "value": float(r["value"][1])} for r in answer["data"]["result"]]


@contextmanager
def prometheus(tmp_path: Path, targets: list[str]) -> Iterator[Prometheus]:
    exe = binary("prometheus", "prometheus")
    port = free_ports()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: carbon\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n"
    )
    url = f"http://127.0.0.1:{port}"
    cmd = [
        exe, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ]  # fmt: skip
    with _process(cmd, f"{url}/-/ready", tmp_path / "prometheus.log"):
        yield Prometheus(url)


@contextmanager
def pushgateway(tmp_path: Path) -> Iterator[str]:
    exe = binary("prometheus-pushgateway", "prometheus-pushgateway")
    port = free_ports()
    url = f"http://127.0.0.1:{port}"
    # Debian's build persists to /var/lib/prometheus by default: a file of the test's own
    data = tmp_path / "pushgateway.data"
    cmd = [exe, f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={data}",
           "--log.level=warn"]  # fmt: skip
    with _process(cmd, f"{url}/-/ready", tmp_path / "pushgateway.log"):
        yield url


def samples(metrics_url: str, name: str) -> list[Any]:
    """The samples named ``name`` at a /metrics URL, read by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = get(metrics_url).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


class OtlpReceiver:
    """An OTLP/HTTP metrics receiver on 127.0.0.1: each POST to /v1/metrics decoded with the
    opentelemetry-proto classes and kept; answers as a collector does."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse,
        )

        self.requests: list[Any] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                receiver.requests.append(request)
                answer = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def points(self, name: str) -> list[dict[str, Any]]:
        """Every data point of metric ``name`` received: resource, attributes, value, unit, kind."""
        out = []
        for request in list(self.requests):
            for rm in request.resource_metrics:
                resource = _attrs(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name != name:
                            continue
                        kind = metric.WhichOneof("data")
                        for p in getattr(metric, kind).data_points:
                            value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                            out.append(
                                {"resource": resource, "attrs": _attrs(p.attributes), "value": value,
                                 "unit": metric.unit, "kind": kind, "scope": sm.scope.name,
                                 "monotonic": getattr(getattr(metric, kind), "is_monotonic", None)}
                            )  # fmt: skip
        return out


def _attrs(kvs: Any) -> dict[str, Any]:
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def run_log(path: Path) -> dict[str, Any]:
    """A run log, by record type: header, intervals, warnings, final."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by = {"intervals": [r for r in records if r["type"] == "interval"]}
    by["header"] = next(r for r in records if r["type"] == "header")
    by["final"] = next((r for r in records if r["type"] == "final"), None)
    by["warnings"] = [r["message"] for r in records if r["type"] == "warning"]
    return by
