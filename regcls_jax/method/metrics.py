"""Evaluation metrics of the DIR protocol (Yang et al., ICML 2021) as the paper reports them.

* Age (IMDB-WIKI-DIR, paper Tab. 3): MAE, MSE and geometric mean (GM) of the absolute errors,
  overall and per shot group. A test sample's group comes from the number of TRAINING samples
  with its integer label: many > 100, few < 20, medium otherwise. Also the "balanced" MAE of
  Balanced MSE's repository (mean over test labels of the per-label MAE), under that name.
* Any continuous target (the tabular family): shot groups over uniform bins of the training
  range with DIR's thresholds (`binned_shot_groups`), and the paired confidence interval of a
  method's difference to a reference over seeds (`paired_interval`, `verdict`).
* Depth (NYUD2-DIR, paper Tab. 2): MSE, RMSE, MAE, AbsRel, log10 and delta_1..3 over valid
  pixels, pooled over the test set, overall and per shot group of 0.1 m depth bins (DIR's
  fixed lists, or lists derived from a training histogram).

An empty group is reported with count 0 and NaN metrics, never an error (the DIR evaluator
crashes there). Everything is numpy on the host: evaluation runs once per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

GROUPS = ("many", "medium", "few")
MANY_THRESHOLD = 100  # more training samples than this: many-shot
FEW_THRESHOLD = 20  # fewer than this: few-shot

# DIR's depth shot groups over 0.1 m bins (0..99) of NYUD2-DIR.
NYUD2_BINS = {
  "many": (*range(9, 46), 47, 49),
  "medium": (7, 8, 46, 48, *range(50, 57), 58, 60, 61, 63),
  "few": (*range(0, 7), 57, 59, 62, *range(64, 100)),
}


def geometric_mean(values: np.ndarray, eps: float = 0.0) -> float:
  """``exp(mean(log(values + eps)))``; NaN for no values.

  With ``eps=0`` (the default and DIR's definition, scipy's ``gmean``) a single exact zero
  error makes the result 0. Pass a small ``eps`` to keep it informative; the age report states
  which it used.
  """
  v = np.asarray(values, np.float64).ravel() + eps
  if v.size == 0:
    return math.nan
  if np.any(v <= 0):
    return 0.0
  return float(np.exp(np.mean(np.log(v))))


def shot_groups(labels: np.ndarray, train_labels: np.ndarray) -> np.ndarray:
  """``'many' | 'medium' | 'few'`` of each label by its integer label's training count."""
  train = np.floor(np.asarray(train_labels)).astype(np.int64)
  keys = np.floor(np.asarray(labels)).astype(np.int64)
  values, counts = np.unique(train, return_counts=True)
  count = dict(zip(values.tolist(), counts.tolist()))
  n = np.array([count.get(k, 0) for k in keys.tolist()], np.int64)
  return np.where(n > MANY_THRESHOLD, "many", np.where(n < FEW_THRESHOLD, "few", "medium"))


def binned_shot_groups(
  labels: np.ndarray,
  train_labels: np.ndarray,
  bins: int,
  many: int = MANY_THRESHOLD,
  few: int = FEW_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Shot groups of a continuous target: DIR's rule over ``bins`` uniform bins.

  The training range is cut into ``bins`` equal bins (labels outside it fall in the end bins);
  a label is many-shot when its bin holds more than ``many`` training labels, few-shot under
  ``few``, medium otherwise.

  Returns:
    ``(group of each label, its bin's training count, its bin index)``.
  """
  train = np.asarray(train_labels, np.float64)
  edges = np.linspace(train.min(), train.max(), bins + 1)
  index = lambda v: np.clip(np.searchsorted(edges, v, side="right") - 1, 0, bins - 1)  # noqa: E731
  counts = np.bincount(index(train), minlength=bins)
  b = index(np.asarray(labels, np.float64))
  n = counts[b]
  return np.where(n > many, "many", np.where(n < few, "few", "medium")), n, b


def grouped_errors(pred: np.ndarray, label: np.ndarray, groups: np.ndarray) -> dict:
  """``{'all' | 'many' | 'medium' | 'few': {'count', 'mae', 'mse', 'rmse'}}`` of ``pred -
  label``, the shot groups from `binned_shot_groups` (an empty group: count 0, NaN errors)."""
  err = np.asarray(pred, np.float64) - np.asarray(label, np.float64)

  def block(e):
    if not e.size:
      return {"count": 0, "mae": math.nan, "mse": math.nan, "rmse": math.nan}
    mse = float(np.mean(e**2))
    return {"count": int(e.size), "mae": float(np.mean(np.abs(e))), "mse": mse,
            "rmse": math.sqrt(mse)}  # fmt: skip

  return {"all": block(err)} | {g: block(err[groups == g]) for g in GROUPS}


def paired_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
  """``(mean, low, high)``: Student's t interval of the mean of paired differences.

  With one difference the interval is unbounded (``-inf, inf``); with identical differences it
  is the point itself.
  """
  from scipy import stats

  d = np.asarray(diffs, np.float64)
  if d.size == 0:
    return math.nan, math.nan, math.nan
  mean = float(d.mean())
  if d.size == 1:
    return mean, -math.inf, math.inf
  half = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
  return mean, mean - half, mean + half


def verdict(low: float, high: float) -> str:
  """Of a method's error minus the reference's: ``helps`` (the interval lies below 0),
  ``hurts`` (above 0) or ``no clear difference``."""
  if high < 0:
    return "helps"
  if low > 0:
    return "hurts"
  return "no clear difference"


def _age_block(err: np.ndarray, gm_eps: float) -> dict[str, float]:
  if err.size == 0:
    return {"count": 0, "mae": math.nan, "mse": math.nan, "gm": math.nan}
  return {
    "count": int(err.size),
    "mae": float(np.mean(np.abs(err))),
    "mse": float(np.mean(np.square(err))),
    "gm": geometric_mean(np.abs(err), gm_eps),
  }


def age_metrics(
  pred: np.ndarray, label: np.ndarray, train_labels: np.ndarray, gm_eps: float = 0.0
) -> dict[str, dict[str, float]]:
  """DIR age metrics.

  Args:
    pred, label: ``[N]`` test predictions and labels.
    train_labels: the training set's labels (defines the shot groups).
    gm_eps: added to the absolute errors inside GM (0 = DIR's definition).

  Returns:
    ``{'all' | 'many' | 'medium' | 'few': {'count', 'mae', 'mse', 'gm'}, 'balanced':
    {'count': number of distinct test labels, 'mae': mean over labels of per-label MAE}}``.
  """
  pred, label = np.asarray(pred, np.float64).ravel(), np.asarray(label, np.float64).ravel()
  if pred.shape != label.shape:
    raise ValueError(f"pred {pred.shape} and label {label.shape} differ")
  err = pred - label
  groups = shot_groups(label, train_labels)
  out = {"all": _age_block(err, gm_eps)}
  for g in GROUPS:
    out[g] = _age_block(err[groups == g], gm_eps)
  keys = np.floor(label).astype(np.int64)
  per_label = [np.mean(np.abs(err[keys == k])) for k in np.unique(keys)]
  out["balanced"] = {
    "count": len(per_label),
    "mae": float(np.mean(per_label)) if per_label else math.nan,
  }
  return out


def depth_bin_groups(
  train_bin_counts: np.ndarray, many_above: float = 2.83e7, few_below: float = 9.66e6
) -> dict[str, tuple[int, ...]]:
  """Shot groups of depth bins from a training histogram (pixels per 0.1 m bin).

  DIR's NYUD2-DIR lists (`NYUD2_BINS`) put bins with more than 2.83e7 training pixels in many
  and fewer than 9.66e6 in few; the defaults are those absolute counts.
  For another dataset pass thresholds on its own histogram's scale.
  """
  counts = np.asarray(train_bin_counts, np.float64)
  many, few = counts > many_above, counts < few_below
  return {
    "many": tuple(np.flatnonzero(many).tolist()),
    "medium": tuple(np.flatnonzero(~many & ~few).tolist()),
    "few": tuple(np.flatnonzero(few).tolist()),
  }


_DEPTH_SUMS = ("count", "se", "ae", "absrel", "log10", "d1", "d2", "d3")


class DepthMetrics:
  """Streaming depth metrics over batches of maps, pooled over pixels (DIR's NYUD2 evaluator).

  ``update(pred, target, mask)`` adds a batch; ``result()`` returns ``{'all' | 'many' |
  'medium' | 'few': {'count', 'mse', 'rmse', 'mae', 'absrel', 'log10', 'delta1', 'delta2',
  'delta3'}}``. Pixels count when the mask is True and the target is finite and > 0; the group
  of a pixel is its target's 0.1 m bin, ``min(int(10 t), 99)``.
  """

  def __init__(self, bins: dict[str, Sequence[int]] | None = None, num_bins: int = 100):
    bins = NYUD2_BINS if bins is None else bins
    self._group_of_bin = np.full(num_bins, -1, np.int64)
    for i, g in enumerate(GROUPS):
      self._group_of_bin[list(bins[g])] = i
    self._num_bins = num_bins
    self._sums = np.zeros((len(GROUPS), len(_DEPTH_SUMS)), np.float64)

  def update(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Adds a batch: ``pred`` and ``target`` in metres, any equal shapes; ``mask`` bool."""
    p = np.asarray(pred, np.float64).ravel()
    t = np.asarray(target, np.float64).ravel()
    if p.shape != t.shape:
      raise ValueError(f"pred {np.shape(pred)} and target {np.shape(target)} differ")
    valid = np.isfinite(t) & (t > 0)
    if mask is not None:
      valid &= np.asarray(mask, bool).ravel()
    p, t = p[valid], t[valid]
    group = self._group_of_bin[np.minimum((t * 10).astype(np.int64), self._num_bins - 1)]
    ratio = np.maximum(p / t, t / np.maximum(p, 1e-12))
    err = p - t
    values = np.stack(
      [
        np.ones_like(t),
        err**2,
        np.abs(err),
        np.abs(err) / t,
        np.abs(np.log10(np.maximum(p, 1e-12)) - np.log10(t)),
        ratio <= 1.25,
        ratio <= 1.25**2,
        ratio <= 1.25**3,
      ],
      axis=1,
    )
    for i in range(len(GROUPS)):
      self._sums[i] += values[group == i].sum(axis=0)

  def result(self) -> dict[str, dict[str, float]]:
    def block(s: np.ndarray) -> dict[str, float]:
      n = s[0]
      if n == 0:
        keys = ("mse", "rmse", "mae", "absrel", "log10", "delta1", "delta2", "delta3")
        return {"count": 0, **{k: math.nan for k in keys}}
      mse = s[1] / n
      return {
        "count": int(n),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": s[2] / n,
        "absrel": s[3] / n,
        "log10": s[4] / n,
        "delta1": s[5] / n,
        "delta2": s[6] / n,
        "delta3": s[7] / n,
      }

    out = {"all": block(self._sums.sum(axis=0))}
    out.update({g: block(self._sums[i]) for i, g in enumerate(GROUPS)})
    return out


def markdown_table(metrics: dict[str, dict[str, float]], keys: Sequence[str]) -> str:
  """One row per group (all, many, medium, few, ...), one column per metric, plus the count."""
  lines = ["| group | count | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
  for group, values in metrics.items():
    cells = [f"{values[k]:.4g}" if k in values else "-" for k in keys]
    lines.append(f"| {group} | {values['count']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
