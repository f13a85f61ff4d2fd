"""RankSim (Gong, Mori, Tung, ICML 2022): the ranking of each sample's feature similarities
to the batch should match the ranking of its label similarities.

For the batch's features z (flattened, L2-normalised) S = z z^T; for a sample i, its label
ranks are the normalised ranks of -|y_i - y_j| over j, its feature ranks those of S_i; the
regulariser is the SUM over samples of the mean squared difference of the two rank vectors
(as the authors' code: a sum over rows, a mean within a row). Ranks are piecewise constant; their
gradient is the blackbox combinatorial-solver one (Vlastelica et al., ICLR 2020): for an
incoming gradient g, ``-(rank(s) - rank(s + lambda g)) / lambda``.

Ties: the authors keep one randomly chosen sample per distinct label. Here the batch is
already in random order (a fresh shuffle every epoch), so the first sample of each label in
batch order is that random choice; the kept samples enter as a fixed-shape mask, which is what
jit and vmap need. Padding (``weight == 0``) is never kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Masked-out entries sort below every cosine similarity and label similarity.
_MASKED = -1e30


def rank_normalised(s: jax.Array, n: jax.Array | int | None = None) -> jax.Array:
  """``(rank + 1) / n`` along the last axis (``n``: its length unless given); the LARGEST
  value has rank 0.

  ``rank = argsort(argsort(s) reversed)`` as the authors' code; with a stable ascending sort
  and the reversal, of tied values the later one ranks first.
  """
  n = s.shape[-1] if n is None else n
  order = jnp.flip(jnp.argsort(s, axis=-1, stable=True), axis=-1)
  # argsort(order) is the inverse permutation: a scatter of 0..L-1 to the positions in
  # ``order`` gives it without a second sort.
  flat = order.reshape(-1, order.shape[-1])
  rows = jnp.arange(flat.shape[0])[:, None]
  positions = jnp.broadcast_to(jnp.arange(flat.shape[1], dtype=jnp.float32), flat.shape)
  ranks = jnp.zeros(flat.shape, jnp.float32).at[rows, flat].set(positions)
  return (ranks.reshape(order.shape) + 1.0) / n


@jax.custom_vjp
def _blackbox_rank(s: jax.Array, lam: jax.Array, n: jax.Array) -> jax.Array:
  return rank_normalised(s, n)


def _rank_fwd(s, lam, n):
  r = rank_normalised(s, n)
  return r, (s, r, lam, n)


def _rank_bwd(res, g):
  s, r, lam, n = res
  r_prime = rank_normalised(s + lam * g, n)
  return -(r - r_prime) / (lam + 1e-8), jnp.zeros_like(lam), jnp.zeros_like(n)


_blackbox_rank.defvjp(_rank_fwd, _rank_bwd)


def blackbox_rank(s: jax.Array, interpolation: float, n: jax.Array | None = None) -> jax.Array:
  """`rank_normalised` of ``s`` with the blackbox gradient of strength ``interpolation`` (the
  authors' ``--interpolation_lambda``)."""
  n = jnp.float32(s.shape[-1]) if n is None else jnp.asarray(n, jnp.float32)
  return _blackbox_rank(s, jnp.asarray(interpolation, jnp.float32), n)


def first_of_each_label(y: jax.Array, valid: jax.Array) -> jax.Array:
  """Bool ``[B]``: valid samples whose label no earlier valid sample of the batch has."""
  same = (y[:, None] == y[None, :]) & valid[None, :]
  earlier = jnp.tril(jnp.ones_like(same), k=-1)  # [i, j]: j < i
  return valid & ~jnp.any(same & earlier, axis=1)


def ranksim_loss(
  features: jax.Array,
  y: jax.Array,
  interpolation: float,
  weight: jax.Array | None = None,
) -> jax.Array:
  """The RankSim regulariser of one batch (before its weight gamma).

  Args:
    features: ``[B, ...]`` the batch's features (flattened per sample).
    y: ``[B]`` labels.
    interpolation: lambda of the blackbox rank gradient.
    weight: optional ``[B]`` validity (0: padding).

  Returns:
    the sum over kept samples of the mean over kept samples of (feature rank - label rank)^2.
  """
  b = features.shape[0]
  z = features.reshape(b, -1).astype(jnp.float32)
  z = z * jax.lax.rsqrt(jnp.maximum(jnp.sum(z * z, axis=1, keepdims=True), 1e-24))  # F.normalize
  y = y.reshape(b).astype(jnp.float32)
  valid = jnp.ones(b, bool) if weight is None else weight.reshape(b) > 0
  kept = first_of_each_label(y, valid)
  n_kept = jnp.maximum(jnp.sum(kept), 1).astype(jnp.float32)
  pair = kept[:, None] & kept[None, :]
  sims = jnp.where(pair, z @ z.T, _MASKED)
  label_sims = jnp.where(pair, -jnp.abs(y[:, None] - y[None, :]), _MASKED)
  # Ranks within the kept subset: masked columns sort last, so the kept ones hold ranks
  # 0 .. n_kept - 1, normalised by the subset's size as the reference's smaller batch.
  feature_ranks = blackbox_rank(sims, interpolation, n_kept)
  label_ranks = jax.lax.stop_gradient(rank_normalised(label_sims, n_kept))
  sq = jnp.where(pair, (feature_ranks - label_ranks) ** 2, 0.0)
  return jnp.sum(jnp.sum(sq, axis=1) / n_kept)
