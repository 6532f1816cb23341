"""TensorBoard event files read back the way TensorBoard itself reads them.

``scalars(root)`` loads every event file under ``root`` with TensorBoard's own
``EventAccumulator``. Scalars written by torch/tensorboardX are plain scalar events; Keras'
``tf.summary.scalar`` writes a scalar tensor, read through ``tensor_util.make_ndarray``.
The writers are closed before a test reads (Lightning's logger ``finalize``, the HF and Keras
TensorBoard callbacks' ``on_train_end``), so what is read is what TensorBoard would show.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Union


def scalars(root: Union[str, Path]) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value), ...]`` from every event file under ``root``, by step."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in sorted(Path(root).rglob("events.out.tfevents.*")):
        acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        tags = acc.Tags()
        for tag in tags[ea.SCALARS]:
            out[tag].extend((int(e.step), float(e.value)) for e in acc.Scalars(tag))
        for tag in tags[ea.TENSORS]:
            for e in acc.Tensors(tag):
                value = tensor_util.make_ndarray(e.tensor_proto)
                if value.shape == () and value.dtype.kind == "f":
                    out[tag].append((int(e.step), float(value)))
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
