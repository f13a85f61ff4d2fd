"""Losses against numpy and hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regcls_jax.method import losses


def np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_regression_losses():
  pred = jnp.array([1.0, 2.0, 4.0])
  y = jnp.array([1.5, 2.0, 1.0])
  assert float(losses.regression_loss(pred, y)) == pytest.approx((0.25 + 0 + 9) / 3)
  assert float(losses.regression_loss(pred, y, kind="l1")) == pytest.approx((0.5 + 0 + 3) / 3)
  w = jnp.array([1.0, 1.0, 0.0])
  assert float(losses.regression_loss(pred, y, w)) == pytest.approx(0.25 / 2)
  with pytest.raises(ValueError, match="shape"):
    losses.regression_loss(pred, y[:2])
  with pytest.raises(ValueError, match="huber"):
    losses.regression_loss(pred, y, kind="huber")


def test_cross_entropy_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, 5)).astype(np.float32) * 3
  labels = rng.integers(0, 5, 6)
  mask = np.array([1, 0, 1, 1, 0, 1], bool)
  per = -np_log_softmax(logits.astype(np.float64))[np.arange(6), labels]
  np.testing.assert_allclose(losses.cross_entropy(logits, labels), per.mean(), rtol=1e-5)
  # Masked samples contribute nothing; the mean is over kept samples.
  np.testing.assert_allclose(
    losses.cross_entropy(logits, labels, mask), per[mask].mean(), rtol=1e-5
  )


def test_cross_entropy_hand_value():
  # Two classes with equal logits: CE = log 2.
  assert float(losses.cross_entropy(jnp.zeros((3, 2)), jnp.array([0, 1, 0]))) == pytest.approx(
    np.log(2), rel=1e-6
  )


def test_everything_masked_is_zero_with_zero_gradient():
  logits = jnp.ones((4, 3))
  labels = jnp.array([0, 1, 2, 0])
  mask = jnp.zeros(4, bool)
  assert float(losses.cross_entropy(logits, labels, mask)) == 0.0
  g = jax.grad(lambda z: losses.cross_entropy(z, labels, mask))(logits)
  assert np.all(np.isfinite(g)) and np.all(g == 0)


@pytest.mark.parametrize("backend", ["cpu", "accelerator"])
def test_linear_cross_entropy_value_and_gradients_match_numpy(backend, monkeypatch):
  """The fused head + CE against the softmax CE of ``[x, 1] @ kernel`` and its gradient in
  float64 numpy: d logits = (softmax - onehot) * mask / kept, chained through the head.
  Repeated labels exercise the scatter of the one-hot part; large logits the max shift. Both
  forms of the softmax's normaliser: a matmul's column on a CPU, a row sum elsewhere."""
  if backend != "cpu":
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  rng = np.random.default_rng(3)
  b, d, k = 12, 5, 7
  x = rng.normal(size=(b, d)).astype(np.float32)
  kernel = (rng.normal(size=(d + 1, k)) * 4).astype(np.float32)
  labels = np.array([0, 3, 3, 6, 1, 3, 0, 2, 6, 5, 4, 3])
  mask = rng.random(b) < 0.7
  xa = np.concatenate([x, np.ones((b, 1), np.float32)], 1).astype(np.float64)
  logits = xa @ kernel.astype(np.float64)
  per = -np_log_softmax(logits)[np.arange(b), labels]
  want = per[mask].mean()
  p = np.exp(np_log_softmax(logits))
  d_logits = (p - np.eye(k)[labels]) * mask[:, None] / mask.sum()
  want_dkernel = xa.T @ d_logits
  want_dx = (d_logits @ kernel.astype(np.float64).T)[:, :d]

  fused = lambda x, kern: losses.linear_cross_entropy(x, kern, jnp.asarray(labels), mask)  # noqa: E731
  value, (dx, dkernel) = jax.value_and_grad(fused, (0, 1))(x, kernel)
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(dkernel, want_dkernel, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(dx, want_dx, rtol=1e-4, atol=1e-6)
  # The lazy head through `cross_entropy` is the same function; vmapped over models too.
  lazy = losses.cross_entropy(losses.LinearLogits(x, kernel), labels, mask)
  np.testing.assert_allclose(lazy, value, rtol=1e-6)
  many = jax.vmap(jax.grad(fused, 1))(np.stack([x, x]), np.stack([kernel, 2 * kernel]))
  np.testing.assert_allclose(many[0], dkernel, rtol=1e-6)
  assert not np.allclose(many[1], dkernel)


def test_linear_cross_entropy_with_nothing_kept_is_zero_with_zero_gradient():
  x, kernel = jnp.ones((3, 2)), jnp.ones((3, 4))
  grads = jax.grad(
    lambda *a: losses.linear_cross_entropy(*a, jnp.array([0, 1, 2]), jnp.zeros(3)), (0, 1)
  )(x, kernel)
  assert float(losses.linear_cross_entropy(x, kernel, jnp.array([0, 1, 2]), jnp.zeros(3))) == 0.0
  assert all(np.all(g == 0) for g in grads)


def test_reg_cls_loss_combination():
  rng = np.random.default_rng(1)
  pred, y = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
  logits, labels = rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 4, 8)
  keep = rng.random(8) < 0.6
  keep[0] = True
  weight = np.ones(8, np.float32)
  weight[-1] = 0
  lam, s = 100.0, 0.5
  loss, parts = losses.reg_cls_loss(
    pred, y, logits, labels, lam=lam, scale=s, weight=weight, cls_mask=keep
  )
  mse = np.sum(weight * (pred - y) ** 2) / weight.sum()
  kept = keep & (weight > 0)
  ce = -np_log_softmax(logits.astype(np.float64))[np.arange(8), labels][kept].mean()
  np.testing.assert_allclose(parts["reg"], mse, rtol=1e-5)
  np.testing.assert_allclose(parts["ce"], ce, rtol=1e-5)
  np.testing.assert_allclose(loss, s * (lam * mse + ce), rtol=1e-5)
  # Regression-only model: s * MSE.
  loss_reg, parts_reg = losses.reg_cls_loss(pred, y, None, None, lam=lam, scale=s)
  np.testing.assert_allclose(loss_reg, s * np.mean((pred - y) ** 2), rtol=1e-5)
  assert float(parts_reg["ce"]) == 0.0


def test_summed_regression_loss_by_hand():
  pred = jnp.array([1.0, 2.0, 4.0])
  target = jnp.array([0.0, 0.0, 1.0])
  weight = jnp.array([1.0, 1.0, 0.0])
  assert float(losses.regression_loss(pred, target, reduction="sum")) == 1 + 4 + 9
  assert float(losses.regression_loss(pred, target, weight, reduction="sum")) == 5
  loss, parts = losses.reg_cls_loss(
    pred, target, None, None, lam=2.0, scale=0.5, weight=weight, reg_reduction="sum"
  )
  assert float(loss) == 0.5 * 5 and float(parts["reg"]) == 5


def test_the_image_codes_small_lambda_form_by_hand():
  """lam * reg + CE for lam > 1, reg + CE / lam otherwise (the authors' image code)."""
  pred, target = jnp.array([1.0, 3.0]), jnp.array([0.0, 1.0])  # MSE = (1 + 4) / 2 = 2.5
  logits, labels = jnp.zeros((2, 4)), jnp.array([0, 3])  # CE = log 4
  ce = math.log(4)
  for lam, want in ((10.0, 10 * 2.5 + ce), (1.0, 2.5 + ce), (0.1, 2.5 + ce / 0.1)):
    loss, _ = losses.reg_cls_loss(
      pred, target, logits, labels, lam=lam, scale=2.0, small_lam_divides_ce=True
    )
    np.testing.assert_allclose(float(loss), 2.0 * want, rtol=1e-6)
  loss, _ = losses.reg_cls_loss(pred, target, logits, labels, lam=0.1)  # the 1D / video form
  np.testing.assert_allclose(float(loss), 0.1 * 2.5 + ce, rtol=1e-6)


def test_linear_cross_entropy_refuses_other_shapes_and_runs_in_float32():
  x, kernel, labels = jnp.ones((2, 3, 4)), jnp.ones((5, 6)), jnp.zeros((2, 3), jnp.int32)
  with pytest.raises(ValueError, match=r"expected \[batch, D\], \[D \+ 1, K\], \[batch\]"):
    losses.linear_cross_entropy(x, kernel, labels)
  with pytest.raises(ValueError, match="kernel"):
    losses.linear_cross_entropy(jnp.ones((2, 3)), jnp.ones((3, 6)), jnp.zeros(2, jnp.int32))
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(4, 3)), jnp.bfloat16)
  kernel = jnp.asarray(rng.normal(size=(4, 5)), jnp.bfloat16)
  value, grads = jax.value_and_grad(losses.linear_cross_entropy, (0, 1))(
    x, kernel, jnp.array([0, 1, 4, 4])
  )
  assert value.dtype == jnp.float32 and [g.dtype for g in grads] == [jnp.bfloat16] * 2
  plain = losses.cross_entropy(losses._augment(x) @ kernel, jnp.array([0, 1, 4, 4]))
  np.testing.assert_allclose(value, plain, rtol=2e-2)
