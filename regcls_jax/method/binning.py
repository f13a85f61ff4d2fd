"""Target binning: uniform classes, histogram-equalised classes, class-keep probabilities.

The paper discretises a continuous target into K classes for its auxiliary classification loss
(Pintea et al., ICCV 2023, Sec. 2.3):

* uniform classes: K equal-width bins between the smallest and largest training target;
* equalised ("balanced") classes, Eq. 12: adjacent uniform bins are merged by histogram
  equalisation so the classes hold roughly equal numbers of training samples. The number of
  classes K' can shrink below K;
* class-keep probabilities, Eq. 13: ``p(c) = min_j count(j) / count(c)``. A training sample
  enters the cross-entropy only when a fresh uniform draw falls below its class's probability.

Everything here is plain numpy: binning runs once per dataset, on the host, before training.
Edges are float64 so that class assignment does not depend on the training dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _check_num_classes(num_classes: int) -> None:
  if int(num_classes) != num_classes or num_classes < 2:
    raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")


def uniform_edges(
  targets: np.ndarray, num_classes: int, value_range: tuple[float, float] | None = None
) -> np.ndarray:
  """K + 1 equal-width edges from ``min(targets)`` to ``max(targets)``, or over ``value_range``.

  Args:
    targets: training targets, any shape.
    num_classes: K >= 2.
    value_range: a fixed ``(low, high)`` the edges span instead of the targets' range (the
      authors' image and video code: ages 0-100, depth 0-10 m, progress 0-1).

  Returns:
    float64 array ``[K + 1]``.
  """
  _check_num_classes(num_classes)
  t = np.asarray(targets, np.float64)
  if t.size == 0:
    raise ValueError("cannot bin an empty set of targets")
  if not np.all(np.isfinite(t)):
    raise ValueError("targets contain NaN or inf")
  if value_range is not None:
    low, high = (float(v) for v in value_range)
    if not low < high:
      raise ValueError(f"class value range must have low < high, got {value_range!r}")
    return np.linspace(low, high, num_classes + 1)
  return np.linspace(t.min(), t.max(), num_classes + 1)


def assign_classes(targets: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """Maps targets to classes: ``[e_k, e_k+1)`` is class k.

  Targets at or above the last edge go to the last class and targets below the first edge to
  class 0, so every target (also of val/test splits outside the training range) gets a class.

  Args:
    targets: any shape.
    edges: ``[K + 1]`` increasing edges.

  Returns:
    int32 classes in ``[0, K)``, same shape as ``targets``.
  """
  edges = np.asarray(edges, np.float64)
  k = len(edges) - 1
  cls = np.searchsorted(edges, np.asarray(targets, np.float64), side="right") - 1
  return np.clip(cls, 0, k - 1).astype(np.int32)


def assign_classes_device(targets: jax.Array, edges: jax.Array) -> jax.Array:
  """`assign_classes` in jax.numpy, for targets on the device (int32, same shape)."""
  k = edges.shape[0] - 1
  cls = jnp.searchsorted(edges, targets.astype(edges.dtype), side="right") - 1
  return jnp.clip(cls, 0, k - 1).astype(jnp.int32)


ROUNDINGS = ("ceil", "round")


def equalised_edges(
  targets: np.ndarray,
  num_classes: int,
  weights: np.ndarray | None = None,
  value_range: tuple[float, float] | None = None,
  rounding: str = "ceil",
) -> np.ndarray:
  """Histogram-equalised class edges (paper Eq. 12, as the reference code computes it).

  1. Histogram the targets into K uniform bins (`uniform_edges`).
  2. Drop leading empty bins: the first edge stays, the empty bins' upper edges go.
  3. With the cumulative count ``c_i`` of bin i, N samples and K bins left after step 2, bin i
     gets ``q_i = ceil(K * c_i / N) - 1`` (the equalisation ``floor((K - 1) cdf)`` of Eq. 12 in
     the 1D code's rounding); the image and video code round instead,
     ``q_i = max(round(K * c_i / N) - 1, 0)`` (``rounding="round"``; half to even, as Python's
     ``round`` of a numpy float; the clamp at 0 is the image code's, the video code leaves a -1
     that indexes the last class, a bug not copied). Consecutive bins with the same q form one
     class, spanning from the lower edge of its first bin to the upper edge of its last. Empty
     bins thereby merge with the bin before them, so no class is empty.

  Args:
    targets: training targets.
    num_classes: K, the number of uniform bins to start from.
    weights: optional count of each target (same shape as ``targets``), so that a histogram
      (e.g. of 3.9e9 depth pixels over their 256 distinct values) stands for the full set.
    value_range: the uniform bins' fixed range (`uniform_edges`).
    rounding: ``"ceil"`` or ``"round"``, see step 3.

  Returns:
    float64 edges ``[K' + 1]`` with ``K' <= K``.
  """
  if rounding not in ROUNDINGS:
    raise ValueError(f"rounding {rounding!r}: expected one of {ROUNDINGS}")
  t, w = _targets_and_weights(targets, weights)
  edges = uniform_edges(t, num_classes, value_range)
  counts = np.bincount(assign_classes(t, edges), weights=w, minlength=num_classes)
  first = int(np.argmax(counts > 0))
  counts = counts[first:]
  edges = np.concatenate([edges[:1], edges[first + 1 :]])
  k = len(counts)
  cum = np.cumsum(counts)
  wanted = k * cum / cum[-1]
  if rounding == "ceil":
    q = np.ceil(wanted).astype(np.int64) - 1
  else:
    q = np.maximum(np.round(wanted).astype(np.int64) - 1, 0)
  # A class ends at bin i when the next bin has a different q (and at the last bin).
  ends = np.flatnonzero(np.append(q[1:] != q[:-1], True))
  return np.concatenate([edges[:1], edges[ends + 1]])


def _targets_and_weights(targets, weights) -> tuple[np.ndarray, np.ndarray | None]:
  """Flat float64 targets; weights of zero drop their target (it is absent from the set)."""
  t = np.asarray(targets, np.float64).ravel()
  if weights is None:
    return t, None
  w = np.asarray(weights, np.float64).ravel()
  if w.shape != t.shape or np.any(w < 0):
    raise ValueError(f"weights must be non-negative with the targets' shape {t.shape}")
  return t[w > 0], w[w > 0]


def class_counts(
  classes: np.ndarray, num_classes: int, weights: np.ndarray | None = None
) -> np.ndarray:
  """Number of samples per class, ``[K]`` (int64, or float64 when ``weights`` count samples)."""
  counts = np.bincount(np.asarray(classes).ravel(), weights=weights, minlength=num_classes)
  return counts if weights is None else counts.astype(np.float64)


def keep_probabilities(counts: np.ndarray) -> np.ndarray:
  """Class-keep probabilities of paper Eq. 13: ``min_j count(j) / count(c)``.

  Empty classes (possible with uniform bins) get probability 0 and do not set the minimum;
  after `equalised_edges` no class is empty.

  Args:
    counts: ``[K]`` samples per class.

  Returns:
    float64 ``[K]`` in ``[0, 1]``; the rarest non-empty class has 1.
  """
  counts = np.asarray(counts, np.float64)
  if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0) or not np.any(counts > 0):
    raise ValueError(f"counts must be a non-empty 1-D array of non-negative numbers, got {counts}")
  nonzero = counts > 0
  probs = np.zeros_like(counts)
  probs[nonzero] = counts[nonzero].min() / counts[nonzero]
  return probs


def make_classes(
  train_targets: np.ndarray,
  num_classes: int,
  balanced: bool,
  weights: np.ndarray | None = None,
  value_range: tuple[float, float] | None = None,
  rounding: str = "ceil",
) -> tuple[np.ndarray, np.ndarray]:
  """Class edges and per-class keep probabilities for one training set.

  Args:
    train_targets: the training targets the classes are fitted to.
    num_classes: K.
    balanced: False for uniform classes with no masking (every keep probability 1); True for
      equalised classes (Eq. 12) with the keep probabilities of Eq. 13. When equalisation
      leaves fewer than 2 classes (one bin holds most targets), the uniform classes are kept,
      with their Eq. 13 keep probabilities (the authors' fallback).
    weights: optional count of each target (a histogram standing for the full training set).
    value_range: fixed ``(low, high)`` of the uniform classes (default: the targets' range).
    rounding: Eq. 12's rounding, `equalised_edges`.

  Returns:
    ``(edges [K' + 1], keep [K'])``.
  """
  t, w = _targets_and_weights(train_targets, weights)
  if balanced:
    edges = equalised_edges(t, num_classes, w, value_range, rounding)
    if len(edges) - 1 < 2:  # as the authors' image and video code: never fewer than 2 classes
      edges = uniform_edges(t, num_classes, value_range)
    keep = keep_probabilities(class_counts(assign_classes(t, edges), len(edges) - 1, w))
  else:
    edges = uniform_edges(t, num_classes, value_range)
    keep = np.ones(num_classes)
  return edges, keep
