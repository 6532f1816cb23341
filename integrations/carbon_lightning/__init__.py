"""Energy and kgCO2eq beside the loss in Lightning, and a carbon budget.

``trainer = Trainer(callbacks=[CarbonCallback(budget_kg=0.5)])``: works with
``lightning.pytorch.Trainer`` and ``pytorch_lightning.Trainer`` alike, in a list or alone.
See :class:`CarbonCallback`.
"""

from carbon_lightning.callback import CarbonCallback

__all__ = ["CarbonCallback"]
