"""The reference MLP with a regression head and a train-time classification head.

1D study (paper Sec. 3.1): Linear(1 -> 6), ReLU, Linear(6 -> 15), ReLU, then Linear(15 -> 1)
for the regression output; reg+cls adds Linear(15 -> K) on the same 15-d features. Xavier-uniform
weights and zero biases, as in the authors' code. The Breakfast MLP is the same module with
``hidden=(40, 20)`` on 64-d inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def _linear(din: int, dout: int, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(
    din,
    dout,
    kernel_init=nnx.initializers.xavier_uniform(),
    bias_init=nnx.initializers.zeros_init(),
    rngs=rngs,
  )


class AugmentedLinear(nnx.Module):
  """``x @ kernel[:-1] + kernel[-1]`` computed as ``[x, 1] @ kernel``: the bias is the kernel's
  last row.

  For the wide classification heads of the 1D grid (K up to 1024 on 15 features) this folds
  the bias add into the matmul and the bias gradient into the kernel gradient, two fewer passes
  over the ``[batch, K]`` logits per step. Initialised like `_linear`: Xavier-uniform weights
  (fan-in ``din``), zero bias row.
  """

  def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs):
    weights = nnx.initializers.xavier_uniform()(rngs.params(), (din, dout))
    self.kernel = nnx.Param(jnp.concatenate([weights, jnp.zeros((1, dout), weights.dtype)]))

  def __call__(self, x: jax.Array) -> jax.Array:
    ones = jnp.ones((*x.shape[:-1], 1), x.dtype)
    return jnp.concatenate([x, ones], axis=-1) @ self.kernel[...]


class MLP(nnx.Module):
  """ReLU MLP; ``num_classes=0`` builds the regression-only model.

  The classification head is created last, so a reg and a reg+cls model built from the same
  ``rngs`` seed start with identical trunks and regression heads.
  """

  def __init__(
    self,
    in_features: int = 1,
    hidden: Sequence[int] = (6, 15),
    num_classes: int = 0,
    *,
    rngs: nnx.Rngs,
  ):
    dims = (in_features, *hidden)
    self.layers = nnx.List([_linear(a, b, rngs) for a, b in zip(dims[:-1], dims[1:])])
    self.reg_head = _linear(dims[-1], 1, rngs)
    self.cls_head = AugmentedLinear(dims[-1], num_classes, rngs=rngs) if num_classes else None

  def features(self, x: jax.Array) -> jax.Array:
    """``[batch, in_features] -> [batch, hidden[-1]]``."""
    for layer in self.layers:
      x = jax.nn.relu(layer(x))
    return x

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """Returns ``(pred [batch], logits [batch, K] or None)``."""
    h = self.features(x)
    pred = self.reg_head(h)[..., 0]
    logits = self.cls_head(h) if self.cls_head is not None else None
    return pred, logits

  def predict(self, x: jax.Array) -> jax.Array:
    """Regression output only: the cls head is not used at test time."""
    return self.reg_head(self.features(x))[..., 0]


@jax.custom_vjp
def unrolled_dense_relu(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """``relu(x @ kernel + bias)`` for ``x [B, din]`` with the matmul unrolled into ``din``
  multiply-adds over ``[B, dout]``.

  For the 1D trunk's tiny layers (1 -> 6, 6 -> 15), vmapped over hundreds of models, XLA:CPU
  runs a batched dot as one small Eigen kernel per model; multiply-adds fuse with the bias and
  the ReLU into one loop over every model's activations. The backward pass keeps the two
  matmuls (``g @ kernel.T`` and ``x.T @ g``), which ran faster than unrolled reductions. The
  same function as `nnx.Linear` + ReLU up to float rounding (the sum's order).
  """
  if x.ndim != 2 or kernel.shape[0] != x.shape[1]:
    raise ValueError(
      f"unrolled_dense_relu: x {x.shape}, kernel {kernel.shape}; expected [batch, din], [din, dout]"
    )
  return jnp.maximum(bias + sum(x[:, i, None] * kernel[i] for i in range(kernel.shape[0])), 0)


def _unrolled_fwd(x, kernel, bias):
  out = unrolled_dense_relu(x, kernel, bias)
  return out, (x, kernel, out)


def _unrolled_bwd(residuals, g):
  x, kernel, out = residuals
  g = jnp.where(out > 0, g, 0)  # ReLU's derivative, 0 at 0 as `jax.nn.relu`'s
  return g @ kernel.T, x.T @ g, g.sum(0)


unrolled_dense_relu.defvjp(_unrolled_fwd, _unrolled_bwd)

# `unrolled_features` unrolls the layers with at most this many inputs (a sum of that many terms).
UNROLL_MAX_INPUTS = 8


def unrolled_features(model: MLP, x: jax.Array) -> jax.Array:
  """`MLP.features` of ``x [B, in_features]``, its narrow layers as `unrolled_dense_relu`: on a
  CPU at the 1D study's sizes 8-18% less time per epoch (``benchmarks/sweep1d.py``)."""
  for layer in model.layers:
    if layer.in_features <= UNROLL_MAX_INPUTS:
      x = unrolled_dense_relu(x, layer.kernel[...], layer.bias[...])
    else:
      x = jax.nn.relu(layer(x))
  return x


def mlp_for_1d(num_classes: int, hidden: Sequence[int] = (6, 15), seed: int = 0) -> MLP:
  """Convenience constructor for a 1D model."""
  return MLP(1, tuple(hidden), num_classes, rngs=nnx.Rngs(params=seed))


def count_params(model: nnx.Module) -> int:
  return sum(jnp.size(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
