"""Reference rows beside the MLPs: what a tabular user would fit instead.

* ``ols``: ordinary least squares with an intercept on the standardised features (numpy).
* ``hgb``: scikit-learn's ``HistGradientBoostingRegressor``, a small grid (learning rate x
  leaves) chosen on validation; absent when scikit-learn is not installed (the optional
  ``tabular`` extra), with a note in the report.

Each returns its predictions in the target's units for val and test, so the report scores
them on the same splits and shot groups as the selected MLPs.
"""

from __future__ import annotations

import itertools

import numpy as np

from regcls_jax.data import tabular

HGB_GRID = {"learning_rate": (0.05, 0.1), "max_leaf_nodes": (15, 31)}
HGB_ITERATIONS = 300


def ols(table: tabular.Table) -> dict:
  """``{"val": pred, "test": pred, "params": ""}`` of least squares fitted on train."""
  design = lambda x: np.concatenate([x, np.ones((len(x), 1), x.dtype)], axis=1)  # noqa: E731
  train = table.splits["train"]
  coef, *_ = np.linalg.lstsq(design(train.x.astype(np.float64)), train.y_raw, rcond=None)
  out = {s: design(table.splits[s].x.astype(np.float64)) @ coef for s in ("val", "test")}
  return out | {"params": ""}


def hgb_available() -> bool:
  try:
    import sklearn.ensemble  # noqa: F401
  except ImportError:
    return False
  return True


def hgb(table: tabular.Table, seed: int) -> dict:
  """Gradient-boosted trees, the grid's best on validation RMSE; ``params`` names the choice."""
  from sklearn.ensemble import HistGradientBoostingRegressor

  train, val = table.splits["train"], table.splits["val"]
  best = None
  for lr, leaves in itertools.product(*HGB_GRID.values()):
    model = HistGradientBoostingRegressor(
      learning_rate=lr, max_leaf_nodes=leaves, max_iter=HGB_ITERATIONS, early_stopping=False,
      random_state=seed,
    )  # fmt: skip
    model.fit(train.x, train.y_raw)
    rmse = float(np.sqrt(np.mean((model.predict(val.x) - val.y_raw) ** 2)))
    if best is None or rmse < best[0]:
      best = (rmse, model, f"learning_rate={lr}, max_leaf_nodes={leaves}")
  _, model, params = best
  return {s: model.predict(table.splits[s].x) for s in ("val", "test")} | {"params": params}
