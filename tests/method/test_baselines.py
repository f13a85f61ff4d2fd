"""The imbalanced-regression baselines against hand-computed values and numpy references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regcls_jax.method import baselines as ib


def test_lds_kernels_by_hand():
  np.testing.assert_allclose(ib.lds_kernel("triang", 3), [0.5, 1.0, 0.5])
  np.testing.assert_allclose(
    ib.lds_kernel("laplace", 3, sigma=1.0), [math.exp(-1), 1, math.exp(-1)]
  )
  g = ib.lds_kernel("gaussian", 5, sigma=2.0)
  assert g[2] == 1.0 and np.allclose(g, g[::-1]) and np.all(np.diff(g[:3]) > 0)


def test_lds_weights_by_hand():
  # Counts per bin: [4, 0, 1]; sqrt -> [2, 0, 1]; triang [0.5, 1, 0.5], zero padding:
  # smoothed = [2 + 0, 0.5*2 + 0 + 0.5*1, 0 + 1] = [2, 1.5, 1].
  bins = np.array([0, 0, 0, 0, 2])
  w = ib.lds_weights(bins, 3, kernel="triang", size=3)
  raw = np.array([1 / 2] * 4 + [1 / 1])
  np.testing.assert_allclose(w, raw * 5 / raw.sum())
  assert w.mean() == pytest.approx(1.0)
  # inverse: counts clipped to [5, 1000] -> [5, 5, 5]; equal weights.
  np.testing.assert_allclose(ib.lds_weights(bins, 3, "triang", 3, reweight="inverse"), 1.0)
  # reflect padding at the ends: smoothed[0] = 2 + 0.5 * 2 (mirror) + 0.5 * 0 = 3.
  w = ib.lds_weights(bins, 3, "triang", 3, padding="reflect")
  smoothed = np.array([3.0, 1.5, 1.5])
  raw = 1 / smoothed[bins]
  np.testing.assert_allclose(w, raw * 5 / raw.sum())


def test_lds_handles_empty_bins_and_single_values():
  w = ib.lds_weights(np.full(10, 7), 100)  # one label value, 99 empty bins
  np.testing.assert_allclose(w, 1.0)
  with pytest.raises(ValueError, match="bins"):
    ib.lds_weights(np.array([100]), 100)


def test_focal_r_by_hand():
  pred, target = jnp.array([1.0, 4.0]), jnp.array([0.0, 0.0])
  f = lambda e: e * (2 / (1 + math.exp(-0.2 * e)) - 1)
  assert float(ib.focal_r(pred, target)) == pytest.approx((f(1) + f(4)) / 2, rel=1e-6)
  g = lambda e: e * e * (2 / (1 + math.exp(-0.2 * e)) - 1)
  assert float(ib.focal_r(pred, target, kind="mse")) == pytest.approx((g(1) + g(4)) / 2, rel=1e-6)


def _np_bmc(p, y, s):
  logits = -((p[:, None] - y[None, :]) ** 2) / (2 * s * s)
  lse = np.log(np.exp(logits).sum(1))
  return np.mean(lse - np.diag(logits)) * 2 * s * s


def _np_gai(p, y, s, pi, mu, v):
  out = []
  for pi_, yi in zip(p, y):
    mix = np.log(
      np.sum(pi * np.exp(-0.5 * np.log(v + s * s) - (pi_ - mu) ** 2 / (2 * (v + s * s))))
    )
    out.append((pi_ - yi) ** 2 / (2 * s * s) + 0.5 * np.log(s * s) + mix)
  return np.mean(out) * 2 * s * s


def _np_bni(p, y, s, c, w):
  out = []
  for pi_, yi in zip(p, y):
    mix = np.log(np.sum(w * np.exp(-((pi_ - c) ** 2) / (2 * s * s))))
    out.append((pi_ - yi) ** 2 / (2 * s * s) + mix)
  return np.mean(out) * 2 * s * s


def test_balanced_mse_losses_match_numpy():
  rng = np.random.default_rng(0)
  p, y = rng.normal(size=6), rng.normal(size=6)
  s = 0.7
  np.testing.assert_allclose(
    float(ib.bmc_loss(jnp.asarray(p), jnp.asarray(y), s)), _np_bmc(p, y, s), rtol=1e-5
  )
  pi, mu, v = np.array([0.3, 0.7]), np.array([-1.0, 0.5]), np.array([0.2, 1.5])
  got = ib.gai_loss(jnp.asarray(p), jnp.asarray(y), s, (pi, mu, v))
  np.testing.assert_allclose(float(got), _np_gai(p, y, s, pi, mu, v), rtol=1e-5)
  c, w = np.linspace(-2, 2, 5), np.array([0.1, 0.0, 0.4, 0.3, 0.2])
  got = ib.bni_loss(jnp.asarray(p), jnp.asarray(y), s, jnp.asarray(c), jnp.asarray(w))
  np.testing.assert_allclose(float(got), _np_bni(p, y, s, c, w), rtol=1e-5)


@pytest.mark.parametrize("sigma", [1e-3, 1.0, 30.0])
def test_balanced_mse_gradients_finite_for_small_sigma(sigma):
  p, y = jnp.array([0.1, 2.0, -3.0]), jnp.array([0.0, 2.5, 1.0])
  gmm = (jnp.ones(1), jnp.zeros(1), jnp.ones(1))
  assert np.all(np.isfinite(jax.grad(lambda p: ib.bmc_loss(p, y, sigma))(p)))
  assert np.all(np.isfinite(jax.grad(lambda p: ib.gai_loss(p, y, sigma, gmm))(p)))
  assert np.isfinite(jax.grad(lambda s: ib.bmc_loss(p, y, s))(sigma))  # sigma learnable


def test_fit_gmm_recovers_two_components():
  rng = np.random.default_rng(1)
  y = np.concatenate([rng.normal(20, 2, 3000), rng.normal(60, 5, 1000)])
  pi, mu, var = ib.fit_gmm(y, 2, seed=3)
  order = np.argsort(mu)
  np.testing.assert_allclose(mu[order], [20, 60], atol=0.5)
  np.testing.assert_allclose(np.sqrt(var[order]), [2, 5], rtol=0.1)
  np.testing.assert_allclose(pi[order], [0.75, 0.25], atol=0.02)
  pi, mu, var = ib.fit_gmm(np.full(50, 4.0), 3)  # one repeated label: still proper
  assert np.all(var > 0) and np.allclose(mu, 4.0) and pi.sum() == pytest.approx(1.0)


def test_two_hot_by_hand():
  centres = jnp.array([0.0, 1.0, 2.0, 3.0])
  t = ib.two_hot(jnp.array([1.25, 3.0, -5.0, 0.0]), centres)
  np.testing.assert_allclose(t[0], [0, 0.75, 0.25, 0])
  np.testing.assert_allclose(t[1], [0, 0, 0, 1])
  np.testing.assert_allclose(t[2], [1, 0, 0, 0])
  np.testing.assert_allclose(t[3], [1, 0, 0, 0])
  # Decoding the two-hot distribution exactly gives the (clipped) target back.
  logits = jnp.log(jnp.maximum(t, 1e-30))
  np.testing.assert_allclose(ib.histogram_decode(logits, centres), [1.25, 3.0, 0.0, 0.0], atol=1e-5)


def test_hl_gauss_is_normal_cdf_differences():
  edges = jnp.linspace(0.0, 4.0, 5)
  got = np.asarray(ib.hl_gauss(jnp.array([1.3]), edges, 0.75))[0]
  cdf = [0.5 * (1 + math.erf((e - 1.3) / (0.75 * math.sqrt(2)))) for e in np.linspace(0, 4, 5)]
  want = np.diff(cdf) / (cdf[-1] - cdf[0])
  np.testing.assert_allclose(got, want, rtol=1e-5)
  logits = jnp.zeros((1, 4))
  ce = float(ib.histogram_loss(logits, jnp.asarray(want)[None]))
  assert ce == pytest.approx(math.log(4), rel=1e-6)  # uniform prediction: CE = log M
  target = ib.hl_gauss(jnp.array([0.0]), edges, 1e-3)
  g = jax.grad(lambda z: ib.histogram_loss(z, target))(logits)
  assert np.all(np.isfinite(g))  # sigma -> small: a one-hot target, finite gradient
