"""The callbacks' keyword parameters, derived from the one configuration.

A callback takes exactly the tracker's keyword options (:data:`carbon_core.config.OPTIONS`).
Its ``__init__`` is written once as ``def __init__(self, **options)``; :func:`tracker_options`
gives it, once at class creation, a real signature (each option keyword-only, typed from
:class:`~carbon_core.config.Config`, default ``None`` = "from ``CARBON_*``, else the
default") and a Google-style docstring holding each option's help. Tools that configure
objects from their signature then see typed parameters: LightningCLI/jsonargparse
(``--trainer.callbacks.init_args.zone=FR``, a YAML config, ``--help``) and Hydra's
``instantiate``. Python itself still calls the ``**options`` body, which checks the names
(:class:`~carbon_core.callbacks.session.CallbackSession`): an unknown one raises
``ValueError`` naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from carbon_core.config import OPTIONS, argument_types

F = TypeVar("F", bound=Callable[..., None])


def _doc(summary: str) -> str:
    lines = [summary, "", "Args:"]
    for option in OPTIONS:
        if option.argument:
            default = "" if option.default is None else f" Default {option.default!r}."
            lines.append(
                f"    {option.name}: {option.help}. None: ``{option.env}``, else the default.{default}"
            )
    return "\n".join(lines)


def tracker_options(init: F) -> F:
    """``init`` (``def __init__(self, **options)``) with the signature and docstring of the
    tracker's keyword options; the function itself is returned, not wrapped."""
    types = argument_types()
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=t)
        for n, t in types.items()
    ]
    init.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    init.__annotations__ = {**types, "return": None}
    init.__doc__ = _doc((init.__doc__ or "Measure this training run.").strip().splitlines()[0])
    return init
