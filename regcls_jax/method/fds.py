"""Feature distribution smoothing (FDS; Yang et al., ICML 2021) as a functional state update.

Per target bucket, running mean and variance of the penultimate features, updated once per
epoch from all training features (momentum 0.9; the first update copies), then smoothed across
buckets with a kernel normalised by its sum (reflect padding). In training, a feature vector of
bucket b is re-calibrated before the last linear layer:
``(z - mu_b) * sqrt(clip(var~_b / var_b, lo, hi)) + mu~_b`` (clip [0.1, 10]; DIR's NYUD2 code
uses [0.2, 5]). Every function returns a new state: no in-place updates, so none of the
PyTorch version's autograd breakage.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from regcls_jax.method import baselines


@flax.struct.dataclass
class FDSState:
  """Statistics ``[buckets, dim]``; ``updated`` is False until the first epoch's update."""

  running_mean: jax.Array
  running_var: jax.Array
  smoothed_mean: jax.Array
  smoothed_var: jax.Array
  updated: jax.Array


def init(num_buckets: int, dim: int) -> FDSState:
  zeros, ones = jnp.zeros((num_buckets, dim)), jnp.ones((num_buckets, dim))
  return FDSState(zeros, ones, zeros, ones, jnp.asarray(False))


def smoothing_window(kernel: str = "gaussian", size: int = 5, sigma: float = 2.0) -> np.ndarray:
  """The LDS window normalised by its sum (FDS smooths statistics, not counts)."""
  w = baselines.lds_kernel(kernel, size, sigma)
  return w / w.sum()


def _smooth(stats: jax.Array, window: np.ndarray) -> jax.Array:
  """Cross-correlates every feature's statistic across buckets with ``window``; reflect
  padding without repeating the edge (torch's and numpy's ``reflect``)."""
  half = len(window) // 2
  padded = jnp.pad(stats, ((half, half), (0, 0)), mode="reflect")
  w = jnp.asarray(window, stats.dtype)
  return sum(w[i] * padded[i : i + stats.shape[0]] for i in range(len(window)))


def update(
  state: FDSState,
  features: jax.Array,
  buckets: jax.Array,
  momentum: float = 0.9,
  window: np.ndarray | None = None,
) -> FDSState:
  """One epoch's update from all training ``features [N, D]`` and their ``buckets [N]``.

  Buckets without samples this epoch keep their running statistics; a bucket with one sample
  gets variance 0 (the unbiased estimate is undefined there; PyTorch's gives NaN).
  """
  num_buckets = state.running_mean.shape[0]
  window = smoothing_window() if window is None else window
  count = jax.ops.segment_sum(jnp.ones(buckets.shape[0]), buckets, num_buckets)[:, None]
  total = jax.ops.segment_sum(features, buckets, num_buckets)
  mean = total / jnp.maximum(count, 1.0)
  sq = jax.ops.segment_sum(jnp.square(features - mean[buckets]), buckets, num_buckets)
  var = sq / jnp.maximum(count - 1.0, 1.0)  # unbiased, as torch.var
  factor = jnp.where(state.updated, momentum, 0.0)
  seen = count > 0
  running_mean = jnp.where(
    seen, (1 - factor) * mean + factor * state.running_mean, state.running_mean
  )
  running_var = jnp.where(seen, (1 - factor) * var + factor * state.running_var, state.running_var)
  return FDSState(
    running_mean,
    running_var,
    _smooth(running_mean, window),
    _smooth(running_var, window),
    jnp.asarray(True),
  )


def calibrate(
  state: FDSState, features: jax.Array, buckets: jax.Array, clip: tuple[float, float] = (0.1, 10.0)
) -> jax.Array:
  """Re-calibrated ``features [B, D]`` (identity before the first update)."""
  mu, var = state.running_mean[buckets], state.running_var[buckets]
  mu_s, var_s = state.smoothed_mean[buckets], state.smoothed_var[buckets]
  ratio = jnp.clip(var_s / jnp.maximum(var, 1e-12), *clip)
  out = (features - mu) * jnp.sqrt(ratio) + mu_s
  return jnp.where(state.updated, out, features)
