"""Grain samplers that re-sample any dataset by its targets.

* `peak_weights`: the paper's controlled imbalance (Sec. 2.1), the same rule as the 1D generator:
  a share of the samples (the 1D generator's 58,971 of 65,115, about 90.6%) is drawn evenly from
  the non-empty sub-bins of a peak ``centre +- ratio * (max - min)`` (ratio 0.3 / 0.1 / 0.03 for
  mild / moderate / severe), the rest evenly from the non-empty bins of the full target range.
  Turns any real dataset into a controlled imbalanced one to rerun the paper's study on.
* `inverse_frequency_weights`: every non-empty target bin gets the same share (re-sampling
  instead of the paper's masking; the classic remedy for imbalance).

`EpochSampler` shuffles (a permutation per epoch) or draws ``epoch_size`` records per epoch with
replacement from such weights, a new draw every epoch, reproducible from the seed.
"""

from __future__ import annotations

import hashlib

import grain
import numpy as np

from regcls_jax.data import synthetic1d

SAMPLINGS = ("none", "mild", "moderate", "severe", "inverse")
_SIZES = synthetic1d.Sizes()
# The 1D generator's peak draws vs its background draws (min_spls + 1 per full-range bin).
PEAK_FRACTION = (_SIZES.all_samples - _SIZES.max_bins - _SIZES.min_spls) / (
  _SIZES.all_samples - _SIZES.max_bins - _SIZES.min_spls + _SIZES.max_bins * (_SIZES.min_spls + 1)
)


def _even_over_bins(targets: np.ndarray, lo: float, hi: float, num_bins: int) -> np.ndarray:
  """Weights summing to 1 that give every non-empty bin of ``[lo, hi]`` the same share."""
  inside = (targets >= lo) & (targets <= hi)
  w = np.zeros(targets.size)
  if not np.any(inside):
    return w
  span = max(hi - lo, np.finfo(np.float64).tiny)
  bins = np.clip(((targets[inside] - lo) / span * num_bins).astype(np.int64), 0, num_bins - 1)
  counts = np.bincount(bins, minlength=num_bins)
  w[inside] = 1.0 / (counts[bins] * np.count_nonzero(counts))
  return w


def _checked(targets) -> np.ndarray:
  t = np.asarray(targets, np.float64).ravel()
  if t.size == 0 or not np.all(np.isfinite(t)):
    raise ValueError("sampler targets must be a non-empty array of finite numbers")
  return t


def peak_weights(
  targets: np.ndarray,
  sampling: str,
  centre: float | None = None,
  seed: int = 0,
  num_bins: int = _SIZES.max_bins,
) -> tuple[np.ndarray, float]:
  """Per-record probabilities of the paper's peak sampling.

  Args:
    targets: ``[N]`` one target per record.
    sampling: ``mild``, ``moderate`` or ``severe`` (peak half-width 0.3, 0.1, 0.03 of the range).
    centre: the peak's centre; None draws it uniformly in the target range from ``seed``.
    seed: seed of the centre draw.
    num_bins: sub-bins of the peak and bins of the full range (1024, as in 1D).

  Returns:
    ``(probabilities [N] summing to 1, centre)``.
  """
  ratio = synthetic1d.SAMPLINGS.get(sampling)
  if ratio is None:
    raise ValueError(f"peak sampling {sampling!r}: expected one of mild, moderate, severe")
  t = _checked(targets)
  lo, hi = t.min(), t.max()
  if centre is None:
    centre = float(np.random.default_rng(seed).uniform(lo, hi))
  half = ratio * (hi - lo)
  peak = _even_over_bins(t, centre - half, centre + half, num_bins)
  background = _even_over_bins(t, lo, hi, num_bins)
  if not peak.any():
    raise ValueError(f"no target lies in the peak {centre:g} +- {half:g}; choose another centre")
  return PEAK_FRACTION * peak + (1 - PEAK_FRACTION) * background, centre


def inverse_frequency_weights(targets: np.ndarray, num_bins: int = 100) -> np.ndarray:
  """Per-record probabilities giving each non-empty bin of ``num_bins`` the same share."""
  t = _checked(targets)
  return _even_over_bins(t, t.min(), t.max(), num_bins)


class EpochSampler:
  """A Grain sampler that draws each epoch's record order at once from ``(seed, epoch)``.

  Without ``probabilities`` an epoch is a permutation of all records (a plain shuffle); with
  them, ``epoch_size`` draws with replacement (re-sampling). The global index ``i`` maps to
  position ``i % epoch_size`` of epoch ``i // epoch_size``, drawn by
  ``numpy.random.default_rng([seed, epoch])``. One epoch costs one numpy call instead of Grain's
  per-index shuffle (about 0.5 ms per record here, more than decoding a 224 px JPEG). The
  DataLoader's shard options stride this one global sequence, so hosts see disjoint parts of
  it. Records carry the same per-record rng as Grain's `IndexSampler`.
  """

  def __init__(
    self,
    num_records: int,
    seed: int,
    num_epochs: int | None = None,
    probabilities: np.ndarray | None = None,
    epoch_size: int | None = None,
  ):
    if num_records <= 0:
      raise ValueError(f"cannot sample from {num_records} records")
    if probabilities is not None:
      p = np.asarray(probabilities, np.float64)
      if p.shape != (num_records,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError(f"probabilities must be {num_records} non-negatives summing to 1")
      probabilities = p / p.sum()
    self._n = int(num_records)
    self._p = probabilities
    self._epoch_size = int(epoch_size or num_records)
    if self._epoch_size <= 0:
      raise ValueError(f"epoch_size must be positive, got {epoch_size}")
    self._seed = int(seed)
    self._num_epochs = num_epochs
    # Grain checks a restored iterator's sampler by its repr: keep it stable but distinct per
    # weighting.
    digest = "none" if probabilities is None else hashlib.sha1(probabilities.tobytes()).hexdigest()
    self._repr = (
      f"EpochSampler(num_records={self._n}, epoch_size={self._epoch_size}, seed={self._seed}, "
      f"num_epochs={num_epochs}, weights={digest[:8]})"
    )
    self._cached = (-1, None)

  def __len__(self) -> int:
    if self._num_epochs is None:
      return np.iinfo(np.int64).max
    return self._num_epochs * self._epoch_size

  def __repr__(self) -> str:
    return self._repr

  def epoch_keys(self, epoch: int) -> np.ndarray:
    """The record keys of ``epoch`` in order, ``[epoch_size]`` (the last epoch is cached)."""
    if self._cached[0] != epoch:
      rng = np.random.default_rng([self._seed, epoch])
      if self._p is None:
        keys = rng.permutation(self._n)
      else:
        keys = rng.choice(self._n, size=self._epoch_size, replace=True, p=self._p)
      self._cached = (epoch, keys)
    return self._cached[1]

  def __getitem__(self, index: int) -> grain.RecordMetadata:
    if index < 0 or index >= len(self):
      raise IndexError(f"index {index} outside the sampler's {len(self)} records")
    epoch, pos = divmod(index, self._epoch_size)
    key = int(self.epoch_keys(epoch)[pos])
    rng = np.random.Generator(np.random.Philox(key=self._seed + index))
    return grain.RecordMetadata(index=index, record_key=key, rng=rng)


class ProcessBlockSampler:
  """One process's view of a global sampler: block ``process_index`` of every global batch.

  Global batch ``b`` is positions ``[b * B, (b + 1) * B)`` of the global sequence; process ``p``
  of ``P`` reads ``[b * B + p * B / P, b * B + (p + 1) * B / P)`` of it. Concatenating the
  processes' local batches in process order (`jax.make_array_from_process_local_data`) so gives
  exactly the batch one process would read, with every row on the same device of the global
  mesh: a run's batches do not depend on how many hosts feed it. (Grain's `ShardByJaxProcess`
  strides the sequence instead, which changes each device's rows with the process count.)
  """

  def __init__(self, sampler, global_batch: int, process_index: int, process_count: int):
    if global_batch % process_count:
      raise ValueError(
        f"global batch {global_batch} is not divisible by the {process_count} processes"
      )
    self._inner = sampler
    self._global = global_batch
    self._local = global_batch // process_count
    self._offset = process_index * self._local
    self._repr = (
      f"ProcessBlockSampler({sampler!r}, {global_batch}, {process_index}/{process_count})"
    )

  def __len__(self) -> int:
    return len(self._inner) // self._global * self._local

  def __repr__(self) -> str:
    return self._repr

  def __getitem__(self, index: int) -> grain.RecordMetadata:
    batch, pos = divmod(index, self._local)
    return self._inner[batch * self._global + self._offset + pos]
