"""The training core and the vmapped sweep: vmapped == per-model, chunking, config checks."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from regcls_jax import core, grid1d, scan_train, sweep
from regcls_jax.config_utils import load_config
from regcls_jax.data import synthetic1d
from regcls_jax.models.mlp import MLP


def _batch(rng, k):
  x = rng.uniform(-1, 1, (32, 1)).astype(np.float32)
  y = np.sin(5 * x[:, 0]).astype(np.float32)
  return {
    "x": x,
    "y": y,
    "cls": rng.integers(0, k, 32).astype(np.int32),
    "weight": np.arange(32) < 27,
    "cls_mask": rng.random(32) < 0.7,
  }


def test_vmapped_step_equals_per_model_steps():
  k, n_models = 8, 3
  graphdef = nnx.graphdef(MLP(1, (6, 15), k, rngs=nnx.Rngs(0)))
  tx = core.adam_l2(0.0, 1e-3)
  step = core.make_train_step(graphdef, tx)
  lrs = jnp.array([1e-3, 1e-2, 3e-2])
  lams = jnp.array([1.0, 10.0, 100.0])

  def init(seed, lr, lam):
    params = nnx.state(MLP(1, (6, 15), k, rngs=nnx.Rngs(params=jax.random.key(seed))))
    state = core.init_state(params, tx, lam)
    return state.replace(opt_state=core.set_learning_rate(state.opt_state, lr))

  rng = np.random.default_rng(0)
  batches = [_batch(rng, k) for _ in range(n_models)]
  stacked = jax.tree.map(lambda *a: np.stack(a), *batches)
  states = jax.vmap(init)(jnp.arange(n_models), lrs, lams)
  key = jax.random.key(0)
  vstep = jax.jit(jax.vmap(step, in_axes=(0, 0, None)))
  for _ in range(3):
    states, vmetrics = vstep(states, stacked, key)
  for i in range(n_models):
    state = init(i, lrs[i], lams[i])
    for _ in range(3):
      state, metrics = jax.jit(step)(state, batches[i], key)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(states.params)):
      np.testing.assert_allclose(a, b[i], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], vmetrics["loss"][i], rtol=1e-5)
  assert int(states.step[0]) == 3


def test_train_step_decreases_loss():
  graphdef, params = nnx.split(MLP(1, (6, 15), 4, rngs=nnx.Rngs(0)))
  tx = core.adam_l2(1e-2)
  state = core.init_state(params, tx, lam=1.0)
  step = jax.jit(core.make_train_step(graphdef, tx))
  batch = _batch(np.random.default_rng(1), 4)
  first = None
  for _ in range(50):
    state, m = step(state, batch, jax.random.key(0))
    first = first if first is not None else float(m["loss"])
  assert float(m["loss"]) < 0.7 * first


def tiny_config(**overrides):
  config = load_config("configs/synthetic1d.py", "grid=tiny")
  with config.unlocked():
    for k, v in overrides.items():
      config[k] = v
  return config


def test_model_in_a_chunk_trains_as_if_alone():
  """A model's result does not depend on which other models share its chunk (or padding)."""
  config = tiny_config(samplings=("uniform", "severe"), num_classes=(8,), balanced=(True,))
  cache = grid1d.DatasetCache(synthetic1d.Sizes(**config.data))
  mesh = sweep.make_mesh()
  runs = [r for r in grid1d.plan_runs(config) if r.method == "regcls"]
  assert len(runs) == 2 and len(runs[0].dataset) == 4
  # The uniform dataset is shorter than the severe one: in a shared chunk it is padded and
  # skips empty batches; alone (4 copies, one per device) it is not padded as much.
  assert len(cache.splits(runs[0])[0]) != len(cache.splits(runs[1])[0])
  mixed = grid1d.Chunk(runs[0].group, (runs[0], runs[1], runs[1], runs[1]), 2)
  alone = grid1d.Chunk(runs[0].group, (runs[0],) * 4, 1)
  p_mixed, m_mixed = sweep.train_chunk(mixed, cache, config, mesh)
  p_alone, m_alone = sweep.train_chunk(alone, cache, config, mesh)
  np.testing.assert_allclose(m_mixed["test_mse"][0], m_alone["test_mse"][0], rtol=1e-5)
  np.testing.assert_allclose(m_mixed["train_loss"][0], m_alone["train_loss"][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(p_mixed), jax.tree.leaves(p_alone)):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-6)


def test_plan_paper_grid():
  config = load_config("configs/synthetic1d.py", "grid=paper")
  runs = grid1d.plan_runs(config)
  assert sum(r.method == "reg" for r in runs) == 600
  assert sum(r.method == "regcls" for r in runs) == 3000
  assert {r.lam for r in runs if r.scenario == "noisy" and r.method == "regcls"} == {1e3}
  assert {r.lr for r in runs if r.scenario == "ood"} == {1e-4}
  chunks = grid1d.plan_chunks(runs, 4, config)
  assert all(len(c.runs) % 4 == 0 for c in chunks)
  planned = [r for c in chunks for r in c.runs[: c.num_real]]
  assert planned == sorted(
    runs, key=lambda r: list(dict.fromkeys(x.group for x in runs)).index(r.group)
  )


@pytest.mark.parametrize(
  "key,value,match",
  [
    ("scenarios", ("clean", "dirty"), "config.scenarios"),
    ("samplings", ("extreme",), "config.samplings"),
    ("num_classes", (4, 1), "config.num_classes"),
    ("methods", ("reg", "ranksim"), "config.methods"),
    ("epochs", 0, "config.epochs"),
  ],
)
def test_bad_config_values(key, value, match):
  with pytest.raises(ValueError, match=match):
    grid1d.plan_runs(tiny_config(**{key: value}))


def test_negative_lambda():
  config = tiny_config()
  config.lam.clean = (-1.0,)
  with pytest.raises(ValueError, match="config.lam.clean"):
    grid1d.plan_runs(config)


def test_run_group_names():
  run = grid1d.Run("clean", "mild", 0, 0, "regcls", 16, True, 1.0, 1e-3)
  assert run.group == "regcls_k16_bal" and run.seed == 0
  assert dataclasses.replace(run, method="reg", num_classes=0).group == "reg"


def test_epoch_permutation_is_a_uniform_shuffle_of_the_valid_prefix():
  n, n_pad, epochs = 20, 32, 3000
  perms = jax.vmap(lambda k: scan_train.epoch_permutation(k, n, n_pad))(
    jax.random.split(jax.random.key(0), epochs)
  )
  perms = np.asarray(perms)
  # Valid samples first, each exactly once; padding last, in order.
  np.testing.assert_array_equal(np.sort(perms[:, :n], axis=1), np.tile(np.arange(n), (epochs, 1)))
  np.testing.assert_array_equal(perms[:, n:], np.tile(np.arange(n, n_pad), (epochs, 1)))
  # Every sample is equally likely at every position: chi-square over the 20 x 20 table.
  counts = np.zeros((n, n))
  for p in perms:
    counts[p[:n], np.arange(n)] += 1
  expected = epochs / n
  chi2 = ((counts - expected) ** 2 / expected).sum()
  dof = (n - 1) ** 2
  assert chi2 < dof + 5 * np.sqrt(2 * dof), chi2
  # Different epochs give different orders; the shuffle does not depend on the padding.
  assert len({tuple(p[:n]) for p in perms[:50]}) == 50
  longer = np.asarray(scan_train.epoch_permutation(jax.random.key(7), n, 2 * n_pad))
  np.testing.assert_array_equal(
    longer[:n], np.asarray(scan_train.epoch_permutation(jax.random.key(7), n, n_pad))[:n]
  )
