"""Pure loss functions of the paper (Pintea et al., ICCV 2023).

* Eq. 3, regression: mean squared error (or L1, the DIR image code's default).
* Eq. 4, regression + classification: ``lam * reg + CE`` over binned targets, the form of the
  authors' code (the paper's text writes the weight on the CE instead; the code is what
  produced the results, so ``lam`` weights the regression term here).
* The reference's hyper-parameter study multiplies the whole objective by a scale ``s``.

Every loss takes an optional per-sample ``weight`` (0/1 validity, e.g. padding) and the CE an
optional per-sample keep ``mask`` (paper Eq. 13). Means are over the samples that count; a batch
in which none counts has loss 0 (not NaN), so it leaves the parameters untouched.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


def masked_mean(values: jax.Array, weight: jax.Array | None) -> jax.Array:
  """``sum(values * weight) / sum(weight)``, the plain mean without ``weight``; 0 (with zero
  gradients) when no weight is positive. Every weighted mean of the package is this one."""
  if weight is None:
    return jnp.mean(values)
  weight = weight.astype(values.dtype)
  return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1e-12)


def regression_loss(
  pred: jax.Array,
  target: jax.Array,
  weight: jax.Array | None = None,
  kind: str = "mse",
  reduction: str = "mean",
) -> jax.Array:
  """Mean squared (``kind='mse'``, Eq. 3) or absolute (``'l1'``) error.

  Args:
    pred, target: ``[batch, ...]``, the same shape.
    weight: optional ``[batch, ...]`` per-element weights (0 drops an element).
    kind: ``'mse'`` or ``'l1'``.
    reduction: ``'mean'`` over the counted elements, or ``'sum'`` (the Breakfast reference's
      ``MSELoss(reduction='sum')``).

  Returns:
    scalar float32.
  """
  if pred.shape != target.shape:
    raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
  err = pred.astype(jnp.float32) - target.astype(jnp.float32)
  if kind == "mse":
    values = jnp.square(err)
  elif kind == "l1":
    values = jnp.abs(err)
  else:
    raise ValueError(f"unknown regression loss {kind!r}; expected 'mse' or 'l1'")
  if reduction == "sum":
    return jnp.sum(values if weight is None else values * weight.astype(values.dtype))
  if reduction != "mean":
    raise ValueError(f"unknown reduction {reduction!r}; expected 'mean' or 'sum'")
  return masked_mean(values, weight)


def cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Softmax cross-entropy over bins, averaged over the kept samples.

  Args:
    logits: ``[batch, ..., K]``, or a `LinearLogits` head (``[batch]`` labels then).
    labels: ``[batch, ...]`` integer classes in ``[0, K)``.
    mask: optional ``[batch, ...]`` keep mask (bool or 0/1); a masked sample contributes
      nothing and the mean runs over kept samples only (the reference's ignore label -1).

  Returns:
    scalar float32; 0 when nothing is kept.
  """
  if isinstance(logits, LinearLogits):
    return linear_cross_entropy(logits.x, logits.kernel, labels, mask)
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  picked = jnp.take_along_axis(logits, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return masked_mean(log_z - picked, mask)


@dataclasses.dataclass(frozen=True)
class LinearLogits:
  """Logits ``[x, 1] @ kernel`` of a linear head (its bias the kernel's last row), not yet
  computed: `cross_entropy` of them runs `linear_cross_entropy`, the head fused into the CE.

  ``x`` is ``[batch, D]``, ``kernel`` ``[D + 1, K]``. A pytree, so it crosses ``jax.jit`` /
  ``vmap`` boundaries like the arrays it holds.
  """

  x: jax.Array
  kernel: jax.Array


jax.tree_util.register_dataclass(LinearLogits, data_fields=["x", "kernel"], meta_fields=[])


def _augment(x: jax.Array) -> jax.Array:
  return jnp.concatenate([x, jnp.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)


@jax.custom_vjp
def _linear_ce_rows(x: jax.Array, kernel: jax.Array, labels: jax.Array) -> jax.Array:
  return _linear_ce_fwd(x, kernel, labels)[0]


def _linear_ce_fwd(x, kernel, labels):
  xa = _augment(x)
  logits = xa @ kernel
  top = jax.lax.stop_gradient(jnp.max(logits, axis=-1))
  e = jnp.exp(logits - top[:, None])
  if jax.default_backend() == "cpu":
    # One matmul gives both ``e @ W^T`` (the features' gradient up to scale, for the backward
    # pass) and, in the bias row's column (whose gradient is dropped: the input there is the
    # constant 1), the softmax's normaliser ``sum_k e``: one pass over ``e`` fewer than a
    # separate row sum (the K=1024 step's op time -6%). CPU only: an accelerator's default
    # matmul precision (TF32, bf16) would round the normaliser to ~1e-3.
    e_kernel = e @ jnp.concatenate([kernel[:-1], jnp.ones_like(kernel[-1:])]).T
    total = e_kernel[:, -1]
  else:
    e_kernel, total = e @ kernel.T, jnp.sum(e, axis=-1)
  picked = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  return top + jnp.log(total) - picked, (xa, kernel, e, e_kernel, total, labels)


def _linear_ce_bwd(residuals, g):
  """With ``p = e / total`` (softmax) and ``d logits = g (p - onehot)``:
  ``d kernel = (xa g / total)^T e - sum_b g_b xa_b onehot_b`` and
  ``d xa = (g / total) (e kernel^T) - g kernel[:, labels]^T``; both read ``e`` itself (the
  second through the forward pass's ``e @ kernel^T``), so no ``[batch, K]`` gradient array is
  ever formed."""
  xa, kernel, e, e_kernel, total, labels = residuals
  c = g / total
  hit = jnp.zeros_like(kernel).at[:, labels].add((g[:, None] * xa).T)
  d_kernel = (xa * c[:, None]).T @ e - hit
  d_xa = c[:, None] * e_kernel - g[:, None] * kernel[:, labels].T
  return d_xa[:, :-1], d_kernel, None


_linear_ce_rows.defvjp(_linear_ce_fwd, _linear_ce_bwd)


def linear_cross_entropy(
  x: jax.Array, kernel: jax.Array, labels: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
  """``cross_entropy([x, 1] @ kernel, labels, mask)`` with the linear head fused into the CE.

  The same value and gradients up to float rounding (their sums run in another order). Autodiff
  of the unfused form writes the softmax, then its gradient ``softmax - onehot`` as a second
  ``[batch, K]`` array, then feeds that to the two matmuls of the head's backward pass; this
  custom gradient (`_linear_ce_bwd`) feeds them the exponentials directly, one pass over the
  ``[batch, K]`` logits fewer per step. On a CPU that makes the 1D grid's K=1024 models 6-9%
  faster (`benchmarks/sweep1d.py`).

  Args:
    x: ``[batch, D]`` features; kernel: ``[D + 1, K]`` (bias row last).
    labels: ``[batch]`` integer classes; mask: optional ``[batch]`` keep mask.
  """
  if x.ndim != 2 or labels.shape != x.shape[:1] or kernel.shape[0] != x.shape[1] + 1:
    raise ValueError(
      f"linear_cross_entropy: x {x.shape}, kernel {kernel.shape}, labels {labels.shape}; "
      "expected [batch, D], [D + 1, K], [batch]"
    )
  x, kernel = x.astype(jnp.float32), kernel.astype(jnp.float32)  # in float32, as cross_entropy
  return masked_mean(_linear_ce_rows(x, kernel, labels.astype(jnp.int32)), mask)


def reg_cls_loss(
  pred: jax.Array,
  target: jax.Array,
  logits: jax.Array | None,
  labels: jax.Array | None,
  *,
  lam: float | jax.Array,
  scale: float | jax.Array = 1.0,
  weight: jax.Array | None = None,
  cls_mask: jax.Array | None = None,
  reg_kind: str = "mse",
  reg_reduction: str = "mean",
  small_lam_divides_ce: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The reference objective ``s * (lam * reg + CE)``; ``s * reg`` when ``logits`` is None.

  Args:
    pred, target: regression output and target ``[batch, ...]``.
    logits, labels: classification logits ``[batch, ..., K]`` and classes, or None for the
      regression-only model (Eq. 3).
    lam: weight of the regression term (Eq. 4, as in the authors' code). Unused without logits.
    scale: the global loss scale ``s``.
    weight: per-sample validity for both terms (padding, or re-balanced data); for the CE
      only where it has the labels' shape.
    cls_mask: per-sample keep mask for the CE only (Eq. 13). Combined with ``weight``.
    reg_kind: ``'mse'`` or ``'l1'``.
    reg_reduction: ``'mean'`` or ``'sum'`` of the regression term over the batch.
    small_lam_divides_ce: the authors' image code's form: ``lam * reg + CE`` when lam > 1,
      else ``reg + CE / lam`` (the same ratio of the two terms, the regression term's weight
      kept at 1 for small lambdas).

  Returns:
    ``(loss, {'reg': ..., 'ce': ...})``; ``ce`` is 0 for the regression-only model.
  """
  reg = regression_loss(pred, target, weight, reg_kind, reg_reduction)
  if logits is None:
    return scale * reg, {"reg": reg, "ce": jnp.zeros_like(reg)}
  mask = cls_mask
  # Per-sample validity masks the CE too; a per-pixel weight at another resolution than the
  # class labels (depth: 114 x 152 target, 228 x 304 logits) leaves the CE to its cls_mask.
  if weight is not None and weight.shape == labels.shape:
    mask = weight if mask is None else jnp.logical_and(mask, weight > 0)
  ce = cross_entropy(logits, labels, mask)
  if small_lam_divides_ce:
    big = lam > 1
    reg_weight = jnp.where(big, lam, 1.0)
    ce_weight = jnp.where(big, 1.0, 1.0 / jnp.maximum(lam, 1e-12))
    return scale * (reg_weight * reg + ce_weight * ce), {"reg": reg, "ce": ce}
  return scale * (lam * reg + ce), {"reg": reg, "ce": ce}
