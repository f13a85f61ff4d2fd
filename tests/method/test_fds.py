"""FDS against a per-bucket numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np

from regcls_jax.method import fds


def _np_smooth(stats, w):
  half = len(w) // 2
  padded = np.pad(stats, ((half, half), (0, 0)), mode="reflect")
  return np.stack([(w[:, None] * padded[j : j + len(w)]).sum(0) for j in range(len(stats))])


def _np_stats(features, buckets, num_buckets):
  mean, var = np.zeros((num_buckets, features.shape[1])), np.ones((num_buckets, features.shape[1]))
  seen = np.zeros(num_buckets, bool)
  for b in range(num_buckets):
    f = features[buckets == b]
    if len(f):
      seen[b] = True
      mean[b] = f.mean(0)
      var[b] = f.var(0, ddof=1) if len(f) > 1 else 0.0
  return mean, var, seen


def test_update_and_calibrate_match_numpy():
  rng = np.random.default_rng(0)
  nb, d = 6, 3
  feats1, b1 = rng.normal(size=(40, d)), rng.integers(0, 5, 40)  # bucket 5 stays empty
  feats2, b2 = rng.normal(2, 3, size=(40, d)), rng.integers(0, 6, 40)
  w = fds.smoothing_window("triang", 3)
  np.testing.assert_allclose(w, [0.25, 0.5, 0.25])
  state = fds.update(fds.init(nb, d), jnp.asarray(feats1), jnp.asarray(b1), window=w)
  state = fds.update(state, jnp.asarray(feats2), jnp.asarray(b2), window=w)
  m1, v1, s1 = _np_stats(feats1, b1, nb)  # first update copies
  run_m = np.where(s1[:, None], m1, 0.0)
  run_v = np.where(s1[:, None], v1, 1.0)
  m2, v2, s2 = _np_stats(feats2, b2, nb)
  run_m = np.where(s2[:, None], 0.1 * m2 + 0.9 * run_m, run_m)
  run_v = np.where(s2[:, None], 0.1 * v2 + 0.9 * run_v, run_v)
  np.testing.assert_allclose(state.running_mean, run_m, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state.running_var, run_v, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state.smoothed_mean, _np_smooth(run_m, w), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state.smoothed_var, _np_smooth(run_v, w), rtol=1e-5, atol=1e-6)
  z, zb = rng.normal(size=(5, d)), np.array([0, 1, 2, 3, 5])
  ratio = np.clip(_np_smooth(run_v, w)[zb] / run_v[zb], 0.1, 10)
  want = (z - run_m[zb]) * np.sqrt(ratio) + _np_smooth(run_m, w)[zb]
  got = jax.jit(fds.calibrate)(state, jnp.asarray(z), jnp.asarray(zb))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_calibrate_is_identity_before_the_first_update_and_differentiable():
  state = fds.init(4, 2)
  z = jnp.ones((3, 2))
  np.testing.assert_array_equal(fds.calibrate(state, z, jnp.array([0, 1, 3])), z)
  state = fds.update(state, jnp.arange(8.0).reshape(4, 2), jnp.array([0, 0, 1, 1]))
  g = jax.grad(lambda z: fds.calibrate(state, z, jnp.array([0, 1, 3])).sum())(z)
  assert np.all(np.isfinite(g))
