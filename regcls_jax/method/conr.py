"""ConR (Keramati, Meng, Evans, ICLR 2024): a contrastive regulariser over two augmented views.

On a batch of 2B samples (two views of B inputs, labels repeated) with L2-normalised features f
and predictions p: label distance d_ij = |y_i - y_j|, prediction distance q_ij = |p_i - p_j|.
Positives of anchor i: d_ij <= w, j != i. Negatives: d_ij > w and q_ij <= w (predicted close
although the labels are far). With s_ij = f_i . f_j / t, anchor i's loss is the mean over its
positives j of ``-log(exp(s_ij) / (A_i + sum_neg_k v_ik exp(s_ik)))`` with the pushing weight
``v_ik = weight_i exp(e d_ik)``; an anchor without negatives contributes 0, and the loss is the
mean over anchors of ``weight_i loss_i``.

As the authors' code: ``A_i = sum_j exp(s_ij [j positive])`` over ALL j, so every
non-positive column (the anchor itself included) adds exp(0) = 1 to the denominator. Beyond it:
padding samples (``valid == 0``) are neither anchors nor pairs and the mean runs over valid
anchors; an anchor with no positive (impossible with two views, where its twin is one)
contributes 0 instead of 0 / 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def conr_loss(
  features: jax.Array,
  y: jax.Array,
  pred: jax.Array,
  window: float = 1.0,
  temperature: float = 0.07,
  push: float = 0.01,
  weight: jax.Array | None = None,
  valid: jax.Array | None = None,
) -> jax.Array:
  """ConR's loss of one two-view batch (before its weight beta).

  Args:
    features: ``[N, ...]`` features of both views (flattened per sample).
    y: ``[N]`` labels; pred: ``[N]`` predictions (only compared, never differentiated).
    window: w, in label units; temperature: t; push: e.
    weight: optional ``[N]`` per-sample weights (the authors' LDS weights; 1 by default).
    valid: optional ``[N]`` validity (0: padding).
  """
  n = features.shape[0]
  f = features.reshape(n, -1).astype(jnp.float32)
  f = f * jax.lax.rsqrt(jnp.maximum(jnp.sum(f * f, axis=1, keepdims=True), 1e-24))
  y = y.reshape(n).astype(jnp.float32)
  p = jax.lax.stop_gradient(pred.reshape(n).astype(jnp.float32))
  w = jnp.ones(n) if weight is None else weight.reshape(n).astype(jnp.float32)
  ok = jnp.ones(n, bool) if valid is None else valid.reshape(n) > 0
  pair = ok[:, None] & ok[None, :]
  label_dist = jnp.abs(y[:, None] - y[None, :])
  pred_dist = jnp.abs(p[:, None] - p[None, :])
  pos = (label_dist <= window) & pair & ~jnp.eye(n, dtype=bool)
  neg = (label_dist > window) & (pred_dist <= window) & pair
  s = (f @ f.T) / temperature
  pos_logits = jnp.where(pos, s, 0.0)
  # The reference's denominator: every column of the row, non-positives as exp(0) = 1 (padding
  # columns excluded here), plus the weighted negatives.
  a = jnp.sum(jnp.where(pair, jnp.exp(pos_logits), 0.0), axis=1)
  pushing = w[:, None] * jnp.exp(label_dist * push)
  negatives = jnp.sum(jnp.where(neg, pushing * jnp.exp(s), 0.0), axis=1)
  log_ratio = pos_logits - jnp.log(a + negatives)[:, None]
  num_pos = jnp.sum(pos, axis=1)
  per_anchor = -jnp.sum(jnp.where(pos, log_ratio, 0.0), axis=1) / jnp.maximum(num_pos, 1)
  per_anchor = jnp.where(jnp.any(neg, axis=1) & (num_pos > 0) & ok, per_anchor, 0.0)
  return jnp.sum(w * per_anchor) / jnp.maximum(jnp.sum(ok), 1)
