"""The MLP's unrolled trunk layers against a float64 NumPy reference."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from regcls_jax.models import mlp


def _reference(x, kernel, bias, g):
  """Value and gradients of ``sum(g * relu(x @ kernel + bias))`` in float64."""
  x, kernel, bias, g = (np.asarray(a, np.float64) for a in (x, kernel, bias, g))
  pre = x @ kernel + bias
  gp = g * (pre > 0)
  return np.maximum(pre, 0), gp @ kernel.T, x.T @ gp, gp.sum(0)


def test_unrolled_dense_relu_matches_numpy_value_and_gradients_under_vmap():
  keys = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(keys[0], (3, 256, 6))  # 3 models, batch 256, 6 inputs
  kernel = jax.random.normal(keys[1], (3, 6, 15))
  bias = jax.random.normal(keys[2], (3, 15))
  g = jax.random.normal(keys[3], (3, 256, 15))

  def one(x, kernel, bias, g):
    out, vjp = jax.vjp(mlp.unrolled_dense_relu, x, kernel, bias)
    return (out, *vjp(g))

  outs = jax.jit(jax.vmap(one))(x, kernel, bias, g)
  for m in range(3):
    expected = _reference(x[m], kernel[m], bias[m], g[m])
    for got, want in zip(outs, expected):
      np.testing.assert_allclose(np.asarray(got[m]), want, rtol=1e-5, atol=1e-5)
  # Some units are off (ReLU at work), so the mask is tested, not only the affine part.
  assert 0.2 < float(jnp.mean(outs[0] == 0)) < 0.8


def test_unrolled_features_equal_mlp_features_with_the_same_gradients():
  model = mlp.mlp_for_1d(num_classes=4, seed=3)
  x = jax.random.uniform(jax.random.key(1), (512, 1), minval=-3, maxval=3)

  def loss(model, features):
    return jnp.sum(jnp.sin(features(model, x)))

  plain = nnx.grad(lambda m: loss(m, lambda m, x: m.features(x)))(model)
  unrolled = nnx.grad(lambda m: loss(m, mlp.unrolled_features))(model)
  np.testing.assert_allclose(
    np.asarray(mlp.unrolled_features(model, x)), np.asarray(model.features(x)), rtol=1e-6, atol=1e-6
  )
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(unrolled)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5)
  # A wide layer (64 inputs, the Breakfast MLP's) keeps nnx.Linear.
  wide = mlp.MLP(64, (40, 20), rngs=nnx.Rngs(0))
  xw = jax.random.normal(jax.random.key(2), (8, 64))
  np.testing.assert_allclose(
    np.asarray(mlp.unrolled_features(wide, xw)), np.asarray(wide.features(xw)), rtol=1e-6
  )
