"""RankSim, ConR and DenseLoss against numpy references written from their papers' formulas
(and the authors' code's reductions)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regcls_jax.method import conr, denseloss, ranksim, registry

# ---------------------------------------------------------------------------------------------
# RankSim


def _np_rank(v):
  """(argsort(argsort(v) reversed) + 1) / n with a stable ascending sort."""
  order = np.argsort(v, kind="stable")[::-1]
  return (np.argsort(order, kind="stable") + 1.0) / len(v)


def _np_ranksim(x, y, lam):
  """Forward value and d loss / d x of RankSim over the first sample of each label."""
  keep = [i for i in range(len(y)) if y[i] not in y[:i]]
  x, y = x[keep].astype(np.float64), y[keep].astype(np.float64)
  norm = np.linalg.norm(x, axis=1, keepdims=True)
  z = x / norm
  s = z @ z.T
  n = len(y)
  loss, grad_s = 0.0, np.zeros_like(s)
  for i in range(n):
    lr, fr = _np_rank(-np.abs(y[i] - y)), _np_rank(s[i])
    loss += np.mean((fr - lr) ** 2)
    g = 2 * (fr - lr) / n  # d mean / d feature ranks
    grad_s[i] = -(fr - _np_rank(s[i] + lam * g)) / (lam + 1e-8)  # the blackbox gradient
  grad_z = (grad_s + grad_s.T) @ z
  grad_x = (grad_z - z * np.sum(z * grad_z, axis=1, keepdims=True)) / norm
  return loss, keep, grad_x


def test_rank_normalised_largest_first():
  r = ranksim.rank_normalised(jnp.array([[0.3, 0.9, -1.0, 0.5]]))
  np.testing.assert_allclose(r, [[3 / 4, 1 / 4, 4 / 4, 2 / 4]])
  np.testing.assert_allclose(r[0], _np_rank(np.array([0.3, 0.9, -1.0, 0.5])))


def test_ranksim_value_and_blackbox_gradient_match_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(7, 3)).astype(np.float32)
  # Labels with a tie (2.0 twice, 5.0 twice): the later duplicates are left out.
  y = np.array([2.0, 0.5, 2.0, 5.0, 3.5, 5.0, 1.0], np.float32)
  want, keep, want_grad = _np_ranksim(x, y, lam=2.0)
  assert keep == [0, 1, 3, 4, 6]
  fn = lambda x: ranksim.ranksim_loss(x, jnp.asarray(y), 2.0)  # noqa: E731
  got, grad = jax.value_and_grad(fn)(jnp.asarray(x))
  assert float(got) == pytest.approx(want, rel=1e-5)
  np.testing.assert_allclose(np.asarray(grad)[keep], want_grad, rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(grad)[[2, 5]], 0.0)  # dropped duplicates


def test_ranksim_padding_is_never_kept():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(6, 4)).astype(np.float32)
  y = np.arange(6, dtype=np.float32)
  full = ranksim.ranksim_loss(jnp.asarray(x[:4]), jnp.asarray(y[:4]), 2.0)
  weight = jnp.array([1, 1, 1, 1, 0, 0], jnp.float32)
  padded = ranksim.ranksim_loss(jnp.asarray(x), jnp.asarray(y), 2.0, weight)
  assert float(padded) == pytest.approx(float(full), rel=1e-6)
  # Features whose similarity ranks equal the label ranks (no two labels equidistant from a
  # third, angles proportional to the labels): zero loss.
  y = np.array([0.0, 1.0, 3.0, 7.0, 15.0, 31.0], np.float32)
  aligned = np.stack([np.cos(y / 40), np.sin(y / 40)], 1)
  assert float(ranksim.ranksim_loss(jnp.asarray(aligned), jnp.asarray(y), 2.0)) == 0.0


# ---------------------------------------------------------------------------------------------
# ConR


def _np_conr(f, y, p, w, t, e, weight):
  """ConR's loss by its formula, one anchor and one positive at a time."""
  f = f / np.linalg.norm(f, axis=1, keepdims=True)
  n = len(y)
  total = 0.0
  for i in range(n):
    pos = [j for j in range(n) if j != i and abs(y[i] - y[j]) <= w]
    neg = [k for k in range(n) if abs(y[i] - y[k]) > w and abs(p[i] - p[k]) <= w]
    if not neg or not pos:
      continue
    s = f[i] @ f.T / t
    # The authors' A_i: exp(s_ij) for positives, exp(0) = 1 for every other column.
    a = sum(np.exp(s[j]) if j in pos else 1.0 for j in range(n))
    negatives = sum(weight[i] * np.exp(e * abs(y[i] - y[k])) * np.exp(s[k]) for k in neg)
    loss_i = np.mean([-np.log(np.exp(s[j]) / (a + negatives)) for j in pos])
    total += weight[i] * loss_i
  return total / n


def test_conr_matches_its_formula_on_a_hand_made_batch():
  rng = np.random.default_rng(0)
  y = np.array([1.0, 1.5, 5.0, 9.0] * 2)  # two views, labels repeated
  p = np.array([1.0, 1.2, 1.8, 9.0, 1.1, 1.4, 2.0, 8.5])  # y=5 predicted near 1-2: confused
  f = rng.normal(size=(8, 5))
  weight = np.array([1.0, 0.5, 2.0, 1.0] * 2)
  want = _np_conr(f, y, p, 1.0, 0.07, 0.01, weight)
  assert want > 0
  got = conr.conr_loss(
    jnp.asarray(f), jnp.asarray(y), jnp.asarray(p), 1.0, 0.07, 0.01, jnp.asarray(weight)
  )
  assert float(got) == pytest.approx(want, rel=1e-5)
  # No confusion (predictions far apart where labels are): no negatives, loss 0.
  zero = conr.conr_loss(jnp.asarray(f), jnp.asarray(y), jnp.asarray(y * 10), 1.0)
  assert float(zero) == 0.0


def test_conr_padding_neither_anchor_nor_pair():
  rng = np.random.default_rng(2)
  y = np.array([1.0, 1.5, 5.0, 1.0, 1.5, 5.0])
  p = np.array([1.0, 1.2, 1.8, 1.1, 1.4, 2.0])
  f = rng.normal(size=(6, 3))
  want = _np_conr(f, y, p, 1.0, 0.07, 0.01, np.ones(6))
  pad = lambda a: jnp.asarray(np.concatenate([a, a[:2] * 0 + 7.0]))  # noqa: E731
  valid = jnp.array([1, 1, 1, 1, 1, 1, 0, 0])
  got = conr.conr_loss(pad(f), pad(y), pad(p), 1.0, valid=valid)
  assert float(got) == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# DenseLoss


def _np_dense_weights(y, alpha, eps=1e-6):
  """denseweight's recipe with an exact Gaussian KDE on the same grid."""
  bw = 1.06 * np.std(y) * len(y) ** (-0.2)
  grid = np.linspace(y.min() - 4 * bw, y.max() + 4 * bw, 4096)
  dens = np.array([np.mean(np.exp(-0.5 * ((g - y) / bw) ** 2)) for g in grid])
  dens /= np.sqrt(2 * np.pi) * bw
  dens = (dens - dens.min()) / (dens.max() - dens.min())
  cell = np.array([np.flatnonzero(grid <= v)[-1] for v in y])  # denseweight's bisection
  w = np.maximum(1 - alpha * dens[cell], eps)
  return w / w.mean()


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_dense_weights_match_a_direct_kde(alpha):
  y = np.concatenate([np.random.default_rng(0).normal(0, 1, 400), [4.0, 5.0, 6.0]])
  grid, w = denseloss.fit_weights(y, alpha)
  got = np.asarray(denseloss.lookup(jnp.asarray(grid), jnp.asarray(w), jnp.asarray(y)))
  want = _np_dense_weights(y, alpha)
  np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-6)
  assert np.mean(got) == pytest.approx(1.0, rel=1e-5)
  assert got[-1] > got[np.argmin(np.abs(y))]  # the rare target weighs more than the mode


def test_dense_objective_is_the_weighted_mse():
  settings = registry.Settings(dense_alpha=1.0)
  y = np.concatenate([np.zeros(30), np.linspace(1, 3, 10)]).astype(np.float32)
  priors = registry.fit_priors("dense", y, settings)
  pred = y + 0.5
  hp = {"lam": 1.0, "scale": 2.0}
  got = registry.objective(
    "dense", jnp.asarray(pred), None, {"y": jnp.asarray(y)}, priors, hp, settings
  )
  w = np.asarray(denseloss.lookup(priors["dense_grid"], priors["dense_w"], y))
  assert float(got) == pytest.approx(2.0 * np.mean(w * 0.25), rel=1e-5)


def test_feature_methods_need_features():
  with pytest.raises(ValueError, match="needs the batch's features"):
    registry.objective(
      "ranksim", jnp.zeros(4), None, {"y": jnp.zeros(4)}, {}, {"lam": 1.0, "scale": 1.0},
      registry.Settings(),
    )  # fmt: skip


def test_regcls_ranksim_adds_gamma_times_ranksim_to_reg_cls():
  rng = np.random.default_rng(3)
  feats = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  y = jnp.asarray(rng.normal(size=6), jnp.float32)
  pred = y + 0.1
  logits = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  batch = {"y": y, "cls": jnp.array([0, 1, 2, 0, 1, 2])}
  settings = registry.Settings(ranksim_gamma=10.0)
  hp = {"lam": 2.0, "scale": 1.0}
  both = registry.objective("regcls+ranksim", pred, logits, batch, {}, hp, settings, features=feats)
  plain = registry.objective("regcls", pred, logits, batch, {}, hp, settings)
  term = ranksim.ranksim_loss(feats, y, settings.ranksim_lambda)
  assert float(both) == pytest.approx(float(plain) + 10.0 * float(term), rel=1e-6)
