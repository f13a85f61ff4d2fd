"""The shared train step: vmapped == per model, sharded == one device, accumulation, schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from regcls_jax.method import losses
from regcls_jax.models.mlp import MLP
from regcls_jax.models.resnet import AgeResNet
from regcls_jax.train_lib import step as step_lib


def _mlp_batch(rng, k):
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
  tx = step_lib.adam_l2(0.0, 1e-3)
  step = step_lib.make_train_step(graphdef, tx)
  lrs = jnp.array([1e-3, 1e-2, 3e-2])
  lams = jnp.array([1.0, 10.0, 100.0])

  def init(seed, lr, lam):
    params = nnx.state(MLP(1, (6, 15), k, rngs=nnx.Rngs(params=jax.random.key(seed))))
    state = step_lib.init_state(params, tx, lam)
    return state.replace(opt_state=step_lib.set_learning_rate(state.opt_state, lr))

  rng = np.random.default_rng(0)
  batches = [_mlp_batch(rng, k) for _ in range(n_models)]
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
  tx = step_lib.adam_l2(1e-2)
  state = step_lib.init_state(params, tx, lam=1.0)
  step = jax.jit(step_lib.make_train_step(graphdef, tx))
  batch = _mlp_batch(np.random.default_rng(1), 4)
  first = None
  for _ in range(50):
    state, m = step(state, batch, jax.random.key(0))
    first = first if first is not None else float(m["loss"])
  assert float(m["loss"]) < 0.7 * first


def _resnet_setup(accum=1):
  model = AgeResNet(5, width=4, stage_sizes=(1, 1, 1, 1), dtype=jnp.float32, rngs=nnx.Rngs(0))
  graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
  # Plain SGD: Adam's first step divides by |grad| and turns summation-order noise of near-zero
  # gradients into visible differences, which would hide what this compares.
  tx = optax.sgd(1e-3)
  state = step_lib.init_state(params, tx, 1.0, 1.0, model_state)

  def loss_fn(model, batch, hparams, rng):
    pred, logits = model(batch["image"])
    return losses.reg_cls_loss(pred, batch["label"], logits, batch["cls"], lam=hparams["lam"])

  return state, step_lib.make_train_step(graphdef, tx, loss_fn, accum)


def _image_batch(n=8, seed=0):
  rng = np.random.default_rng(seed)
  return {
    "image": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
    "label": rng.uniform(0, 90, n).astype(np.float32),
    "cls": rng.integers(0, 5, n).astype(np.int32),
  }


def test_sharded_step_equals_single_device_step():
  state, step = _resnet_setup()
  batch = _image_batch()
  key = jax.random.key(0)
  one, m_one = jax.jit(step)(state, batch, key)
  mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
  rep, data = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  sharded = jax.jit(step, in_shardings=(rep, data, None), out_shardings=(rep, None))
  four, m_four = sharded(jax.device_put(state, rep), jax.device_put(batch, data), key)
  np.testing.assert_allclose(float(m_one["loss"]), float(m_four["loss"]), rtol=1e-5)
  # Compare the updates (new - old), each to its own scale: batch norm makes kernel gradients
  # sums of nearly cancelling terms, so float32 summation order (by device) moves them by up to
  # ~0.5%; a wrong sharding (per-device statistics, a gradient scaled by the device count)
  # changes them entirely.
  for old, a, b in zip(jax.tree.leaves(state), jax.tree.leaves(one), jax.tree.leaves(four)):
    d1, d4 = np.asarray(a) - np.asarray(old), np.asarray(b) - np.asarray(old)
    np.testing.assert_allclose(d4, d1, rtol=2e-2, atol=2e-2 * np.abs(d1).max() + 1e-12)
  # Batch-norm statistics moved (computed over the global batch, then averaged in).
  stats0 = jax.tree.leaves(state.model_state)
  assert any(not np.allclose(a, b) for a, b in zip(stats0, jax.tree.leaves(four.model_state)))


def test_accumulated_identical_micro_batches_equal_one_batch():
  state, step1 = _resnet_setup(1)
  _, step2 = _resnet_setup(2)
  batch = _image_batch(4)
  twice = jax.tree.map(lambda x: np.stack([x, x]), batch)
  a, ma = jax.jit(step1)(state, batch, jax.random.key(0))
  b, mb = jax.jit(step2)(state, twice, jax.random.key(0))
  np.testing.assert_allclose(float(ma["loss"]), float(mb["loss"]), rtol=1e-6)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7)


def test_step_schedule_is_multistep():
  sched = step_lib.step_schedule(1e-3, (10, 20), 0.1)
  assert [float(sched(s)) for s in (0, 9, 10, 19, 20)] == pytest.approx(
    [1e-3, 1e-3, 1e-4, 1e-4, 1e-5]
  )
  assert isinstance(step_lib.adam_l2(sched), optax.GradientTransformation)
