"""Methods selectable by name (method/registry.py): priors and objectives against numpy,
predictions, finite gradients, switching under vmap, settings errors."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regcls_jax.method import baselines, losses, registry

S = registry.Settings()


def _labels(n=400, seed=0):
  rng = np.random.default_rng(seed)
  return np.concatenate([rng.normal(2.0, 0.3, n - n // 8), rng.uniform(0, 10, n // 8)])


def test_fit_priors_match_numpy():
  y = _labels()
  settings = registry.Settings(bins=20)
  edges = np.linspace(y.min(), y.max(), 21)
  bins = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, 19)
  lds = registry.fit_priors("lds", y, settings)
  np.testing.assert_allclose(lds["edges"], edges, rtol=1e-6)
  # Per-sample LDS weights are the table looked up at each label's bin; they average 1.
  per_sample = lds["lds"][bins]
  np.testing.assert_allclose(per_sample, baselines.lds_weights(bins, 20), rtol=1e-5)
  assert per_sample.mean() == pytest.approx(1.0, rel=1e-5)
  bni = registry.fit_priors("bni", y, settings)["bni"]
  np.testing.assert_allclose(bni, np.bincount(bins, minlength=20) / len(y), rtol=1e-6)
  gai = registry.fit_priors("gai", y, settings)
  assert gai["gmm_pi"].sum() == pytest.approx(1.0, rel=1e-5) and gai["gmm_pi"].shape == (8,)
  # Placeholders for methods that do not need an array: uniform weights, a standard GMM.
  reg = registry.fit_priors("reg", y, settings, num_classes=16)
  np.testing.assert_allclose(reg["lds"], 1.0)
  np.testing.assert_allclose(reg["gmm_var"], 1.0)
  np.testing.assert_allclose(reg["hist_edges"], np.linspace(y.min(), y.max(), 17), rtol=1e-6)
  # Every method's priors have the same shapes, so they stack along a model axis.
  shapes = {
    m: jax.tree.map(np.shape, registry.fit_priors(m, y, settings, 16)) for m in registry.METHODS
  }
  assert len({str(s) for s in shapes.values()}) == 1
  # A histogram given as values and counts equals its expansion.
  values, counts = np.array([1.0, 2.0, 5.0]), np.array([10, 3, 1])
  a = registry.fit_priors("lds", values, settings, counts=counts)
  b = registry.fit_priors("lds", np.repeat(values, counts), settings)
  np.testing.assert_allclose(a["lds"], b["lds"], rtol=1e-6)


def _np_objective(method, p, y, w, priors, s):
  """Independent numpy references of the published formulas (their papers and code)."""
  v = w > 0
  p, y = p.astype(np.float64), y.astype(np.float64)
  if method == "lds":
    edges = priors["edges"].astype(np.float64)
    b = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, len(edges) - 2)
    return np.sum(priors["lds"][b] * (p - y) ** 2 * v) / v.sum()
  if method == "focal_r":
    e = np.abs(p - y)
    return np.sum(e * (2 / (1 + np.exp(-s.focal_beta * e)) - 1) ** s.focal_gamma * v) / v.sum()
  sig2 = s.bmse_sigma**2
  if method == "bmc":
    pv, yv = p[v], y[v]
    logits = -((pv[:, None] - yv[None, :]) ** 2) / (2 * sig2)
    lse = np.log(np.exp(logits).sum(1))
    return np.mean(lse - np.diag(logits)) * 2 * sig2
  mse = (p - y) ** 2 / (2 * sig2)
  if method == "gai":
    pi, mu, var = (priors[k].astype(np.float64) for k in ("gmm_pi", "gmm_mu", "gmm_var"))
    tot = var[None] + sig2
    mix = np.log(np.sum(pi * np.exp(-0.5 * np.log(tot) - (p[:, None] - mu) ** 2 / (2 * tot)), 1))
    return np.sum((mse + 0.5 * np.log(sig2) + mix) * v) / v.sum() * 2 * sig2
  if method == "bni":
    edges = priors["edges"].astype(np.float64)
    c = 0.5 * (edges[1:] + edges[:-1])
    with np.errstate(divide="ignore"):
      mix = np.log(np.sum(priors["bni"] * np.exp(-((p[:, None] - c) ** 2) / (2 * sig2)), 1))
    return np.sum((mse + mix) * v) / v.sum() * 2 * sig2
  raise AssertionError(method)


@pytest.mark.parametrize("method", ["lds", "focal_r", "bmc", "gai", "bni"])
def test_baseline_objectives_match_numpy(method):
  y_train = _labels()
  priors = registry.fit_priors(method, y_train, registry.Settings(bins=25))
  rng = np.random.default_rng(1)
  y = rng.choice(y_train, 12).astype(np.float32)
  p = (y + rng.normal(0, 0.5, 12)).astype(np.float32)
  w = (np.arange(12) < 9).astype(np.float32)  # the last three are padding
  hp = {"lam": 0.0, "scale": 2.0}
  batch = {"y": jnp.asarray(y), "weight": jnp.asarray(w)}
  got = registry.objective(method, jnp.asarray(p), None, batch, priors, hp, S)
  want = 2.0 * _np_objective(method, p, y, w, priors, S)
  np.testing.assert_allclose(float(got), want, rtol=2e-5)
  # Padding does not count: the loss of the 9 valid samples alone is the same.
  alone = registry.objective(
    method, jnp.asarray(p[:9]), None, {"y": jnp.asarray(y[:9])}, priors, hp, S
  )
  np.testing.assert_allclose(float(alone), float(got), rtol=2e-5)


def test_focal_r_by_hand():
  # |e| = 2: 2 * (2 sigmoid(0.4) - 1) = 2 * tanh(0.2).
  got = registry.objective(
    "focal_r", jnp.array([3.0]), None, {"y": jnp.array([1.0])}, {}, {"scale": 1.0}, S
  )
  assert float(got) == pytest.approx(2 * math.tanh(0.2), rel=1e-6)


def test_reg_and_regcls_objectives_are_the_papers():
  rng = np.random.default_rng(2)
  p, y = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
  logits = rng.normal(size=(8, 4)).astype(np.float32)
  batch = {"y": y, "cls": rng.integers(0, 4, 8), "weight": np.ones(8, bool)}
  hp = {"lam": 10.0, "scale": 0.5}
  want, _ = losses.reg_cls_loss(
    p, y, logits, batch["cls"], lam=10.0, scale=0.5, weight=batch["weight"]
  )
  got = registry.objective("regcls", p, logits, batch, {}, hp, S)
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
  got = registry.objective("reg", p, None, batch, {}, hp, S)
  np.testing.assert_allclose(float(got), 0.5 * np.mean((p - y) ** 2), rtol=1e-6)


@pytest.mark.parametrize("method", ["two_hot", "hl_gauss"])
def test_histogram_objective_and_prediction(method):
  y_train = np.linspace(0.0, 4.0, 50)
  priors = registry.fit_priors(method, y_train, S, num_classes=4)  # centres 0.5 .. 3.5
  centres = np.array([0.5, 1.5, 2.5, 3.5])
  y = np.array([1.0, 3.5, 2.2], np.float32)
  logits = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
  if method == "two_hot":
    target = np.array([[0.5, 0.5, 0, 0], [0, 0, 0, 1], [0, 0.3, 0.7, 0]])
  else:
    sd = 0.75 * 1.0
    cdf = np.array(
      [[0.5 * (1 + math.erf((e - t) / (sd * math.sqrt(2)))) for e in range(5)] for t in y]
    )
    target = np.diff(cdf, axis=1) / (cdf[:, -1:] - cdf[:, :1])
  log_sm = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  want = -np.mean(np.sum(target * log_sm, 1))
  got = registry.objective(method, None, jnp.asarray(logits), {"y": y}, priors, {"scale": 1.0}, S)
  np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-6)
  pred = registry.predict(method, jnp.zeros(3), jnp.asarray(logits), priors)
  sm = np.exp(log_sm)
  np.testing.assert_allclose(pred, sm @ centres, rtol=1e-5)
  assert np.all(registry.predict("regcls", jnp.ones(3), jnp.asarray(logits), priors) == 1.0)


@pytest.mark.parametrize("method", registry.METHODS)
def test_gradients_finite_at_the_edges(method):
  """All-padding batch, a single training label value, labels outside the training range."""
  k = 4
  priors = registry.fit_priors(method, np.full(30, 3.0), registry.Settings(bins=10), k)
  batch = {
    "y": jnp.array([3.0, 3.0, 100.0, -50.0]),
    "cls": jnp.zeros(4, jnp.int32),
    "weight": jnp.zeros(4),
  }
  hp = {"lam": 1.0, "scale": 1.0}

  def loss(p, z, w, f):
    return registry.objective(method, p, z, {**batch, "weight": w}, priors, hp, S, features=f)

  p, z = jnp.array([0.0, 3.0, 5.0, -2.0]), jnp.zeros((4, k))
  f = jnp.array([[0.0, 0.0], [1.0, 2.0], [1.0, 2.0], [-3.0, 0.5]])  # a zero and a repeated row
  for w in (jnp.zeros(4), jnp.ones(4)):
    grads = jax.grad(loss, argnums=(0, 1, 3))(p, z, w, f)
    assert all(np.all(np.isfinite(g)) for g in grads), method
    assert np.isfinite(float(loss(p, z, w, f)))


def test_switch_under_vmap_equals_each_method():
  names = ("reg", "lds", "focal_r", "bmc", "gai", "bni")
  y_train = _labels()
  priors = [registry.fit_priors(m, y_train, S) for m in names]
  stacked = jax.tree.map(lambda *a: np.stack(a), *priors)
  rng = np.random.default_rng(4)
  y = jnp.asarray(rng.choice(y_train, 16).astype(np.float32))
  p = y + 0.3
  batch = {"y": y, "weight": jnp.ones(16)}
  hp = {"lam": 0.0, "scale": 1.0}

  def one(index, pri):
    fn = functools.partial(
      registry.objective, pred=p, logits=None, batch=batch, priors=pri, hparams=hp, settings=S
    )
    return registry.switch(names, index, lambda m: fn(m))

  got = jax.vmap(one)(jnp.arange(len(names)), stacked)
  for i, m in enumerate(names):
    want = registry.objective(m, p, None, batch, priors[i], hp, S)
    np.testing.assert_allclose(float(got[i]), float(want), rtol=1e-5)


def test_bad_settings_name_the_key():
  with pytest.raises(ValueError, match="config.peers.lds_kernel"):
    registry.Settings.from_config({"lds_kernel": "box"})
  with pytest.raises(ValueError, match="config.peers.gamma"):
    registry.Settings.from_config({"gamma": 1.0})
  with pytest.raises(ValueError, match="config.method: unknown method 'ranksym'"):
    registry.check_method("ranksym")
  with pytest.raises(ValueError, match="config.peers.conr_window"):
    registry.Settings.from_config({"conr_window": 0.0})
