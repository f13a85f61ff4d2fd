"""Paper Fig. 8 for a dataset: its training distribution, the keep probabilities of 100
equalised classes (Eq. 12 / 13), and the distribution the classification loss then sees.

`rebalanced` is the pure part: the expected count of each histogram bin that enters the CE,
each training target weighted by the keep probability of its class. `plot_classes` draws the
three panels; `python -m regcls_jax.data.prepare --plot_classes=PATH` calls it for a real-data
config, and the 1D grid's datasets can be drawn the same way from their training targets.
"""

from __future__ import annotations

import numpy as np

from regcls_jax.method import binning
from regcls_jax.train_lib import metric_writers

FIG8_CLASSES = 100


def rebalanced(
  values: np.ndarray,
  counts: np.ndarray | None,
  edges: np.ndarray,
  keep: np.ndarray,
  bins: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
  """``(before, after)``: the training targets' histogram over ``bins`` and the same with each
  target weighted by the keep probability of its class (what the CE sees on average, Eq. 13).

  Args:
    values: training targets (or histogram values with ``counts``).
    counts: the count of each value, or None for one each.
    edges, keep: the classes, as `binning.make_classes` returns them.
    bins: the histogram's bin edges.
  """
  values = np.asarray(values, np.float64)
  w = np.ones_like(values) if counts is None else np.asarray(counts, np.float64)
  before, _ = np.histogram(values, bins=bins, weights=w)
  after, _ = np.histogram(
    values, bins=bins, weights=w * keep[binning.assign_classes(values, edges)]
  )
  return before, after


def plot_classes(
  values: np.ndarray,
  counts: np.ndarray | None,
  value_range: tuple[float, float],
  rounding: str,
  title: str,
  path: str,
  num_classes: int = FIG8_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
  """Writes the three panels of Fig. 8 to ``path`` (atomically); returns ``(edges, keep)`` of
  the equalised classes drawn."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  edges, keep = binning.make_classes(
    values, num_classes, True, weights=counts, value_range=value_range, rounding=rounding
  )
  bins = np.linspace(value_range[0], value_range[1], 101)
  before, after = rebalanced(values, counts, edges, keep, bins)
  centres = 0.5 * (bins[:-1] + bins[1:])
  width = bins[1] - bins[0]
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
  axes[0].bar(centres, before, width=width, color="tab:blue")
  axes[0].set_title("training distribution")
  axes[0].set_ylabel("count")
  axes[1].stairs(keep, edges, color="tab:red", lw=1.5)
  axes[1].set_ylim(0, 1.05)
  axes[1].set_title(f"keep probability of {len(keep)} equalised classes (Eq. 12, 13)")
  axes[1].set_ylabel("keep probability")
  axes[2].bar(centres, before, width=width, color="0.85", label="all targets")
  axes[2].bar(centres, after, width=width, color="tab:green", label="expected in the CE")
  axes[2].set_title("re-balanced distribution")
  axes[2].set_ylabel("count")
  axes[2].legend(fontsize=8)
  for ax in axes:
    ax.set_xlabel("target")
    ax.set_xlim(*value_range)
    ax.grid(alpha=0.3)
  fig.suptitle(title)
  metric_writers.save_figure(fig, path, dpi=110)
  return edges, keep
