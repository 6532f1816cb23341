"""The exporters by name, the extra each needs, and whether it is installed (without importing it)."""

from __future__ import annotations

import importlib.util
from typing import Optional

#: exporter -> (the extra that installs it, the modules it imports)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "prometheus": ("prometheus", ("prometheus_client",)),
    "pushgateway": ("prometheus", ("prometheus_client",)),
    "otlp": ("otel", ("opentelemetry.sdk.metrics", "opentelemetry.exporter.otlp.proto.http.metric_exporter")),
}
EXPORTERS: tuple[str, ...] = tuple(EXTRAS)
#: what the extras install, for the message that says what to install
_PACKAGES = {
    "prometheus": "prometheus_client",
    "otel": "opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http",
}


def listen_address(text: str) -> Optional[tuple[str, int]]:
    """``PORT`` (on 127.0.0.1) or ``ADDRESS:PORT`` (``[v6]:PORT``) as (address, port); None if neither."""
    address, colon, port = text.strip().rpartition(":")
    address = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    if colon and (not address or any(c.isspace() or not c.isprintable() or c in "/[]@" for c in address)):
        return None
    return (address if colon else "127.0.0.1", int(port))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent missing; a module set to None in sys.modules
        return False


def unusable(name: str) -> Optional[str]:
    """Why exporter ``name`` cannot run here (what to install), or None."""
    extra, modules = EXTRAS[name]
    missing = [m for m in modules if not _installed(m)]
    if not missing:
        return None
    return (
        f"the {name} exporter needs {_PACKAGES[extra]} ({missing[0]} is not installed): "
        f"pip install 'carbon-core[{extra}]'"
    )
