"""A small TensorBoard event-file reader for the adapter tests.

Event files are TFRecords: ``<Q`` payload length, 4-byte CRC of the length, the payload (a
serialised ``Event`` protobuf), 4-byte CRC of the payload. Payloads are decoded with
``tensorboardX``'s copy of the ``Event`` proto (no TensorFlow, no tensorboard needed).
Scalars written by torch/tensorboardX are ``simple_value``; Keras' ``tf.summary.scalar``
writes a scalar tensor, read here too.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path
from typing import Union


def _records(path: Path) -> list[bytes]:
    data, out, at = path.read_bytes(), [], 0
    while at + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        out.append(data[at + 12 : at + 12 + length])
        at += 12 + length + 4
    return out


def _value(value: object) -> Union[float, None]:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    if kind == "simple_value":
        return float(value.simple_value)  # type: ignore[attr-defined]
    if kind == "tensor":
        tensor = value.tensor  # type: ignore[attr-defined]
        for field in ("float_val", "double_val"):
            if getattr(tensor, field):
                return float(getattr(tensor, field)[0])
        if tensor.tensor_content:
            fmt = "<d" if tensor.dtype == 2 else "<f"  # DT_DOUBLE = 2, DT_FLOAT = 1
            return float(struct.unpack_from(fmt, tensor.tensor_content)[0])
    return None


def scalars(root: Union[str, Path]) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value), ...]`` from every event file under ``root``, by step."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in sorted(Path(root).rglob("events.out.tfevents.*")):
        for record in _records(path):
            event = Event.FromString(record)
            for value in event.summary.value:
                number = _value(value)
                if number is not None:
                    out[value.tag].append((int(event.step), number))
    return {tag: sorted(points) for tag, points in out.items()}


def find(tags: dict[str, list[tuple[int, float]]], name: str) -> list[tuple[int, float]]:
    """The points of the one tag equal to ``name`` or ending in ``/name`` (``train/loss``)."""
    hits = [t for t in tags if t == name or t.endswith("/" + name)]
    assert len(hits) == 1, f"expected one tag for {name!r}, found {hits} in {sorted(tags)}"
    return tags[hits[0]]


def assert_cumulative(points: list[tuple[int, float]]) -> None:
    """Positive values that never decrease along the steps (kg and kWh are run totals)."""
    assert points, "no points logged"
    values = [v for _, v in points]
    assert all(v > 0 for v in values), values
    assert all(b >= a for a, b in zip(values, values[1:])), values


def assert_beside(points: list[tuple[int, float]], loss: list[tuple[int, float]]) -> None:
    """Logged at every step the loss is, from the tracker's first reading on (before it
    there is no measurement to log), at three steps at least."""
    steps = {s for s, _ in points}
    assert len(steps) >= 3, points
    assert {s for s, _ in loss if s >= min(steps)} <= steps, (sorted(steps), loss)
