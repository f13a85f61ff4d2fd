"""The 1D program: a model trains as if alone in any chunk, methods on the vmapped axis, FDS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_1d_config

from regcls_jax.data import synthetic1d
from regcls_jax.families.synthetic1d import plan, program
from regcls_jax.train_lib import sharding


def test_model_in_a_chunk_trains_as_if_alone(monkeypatch):
  """A model's result does not depend on which other models share its chunk (or padding)."""
  config = tiny_1d_config(samplings=("uniform", "severe"), num_classes=(8,), balanced=(True,))
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  mesh = sharding.models_mesh()
  runs = [r for r in plan.plan_runs(config) if r.method == "regcls"]
  assert len(runs) == 2 and len(runs[0].dataset) == 5
  # The uniform dataset is shorter than the severe one: in a shared chunk it is padded further,
  # runs the longer dataset's step count and skips the empty batches; alone (4 copies, one per
  # device) it runs its own, and once more with its splits padded 2x further.
  assert len(cache.splits(runs[0])[0]) != len(cache.splits(runs[1])[0])
  mixed = plan.Chunk(runs[0].group, (runs[0], runs[1], runs[1], runs[1]), 2)
  alone = plan.Chunk(runs[0].group, (runs[0],) * 4, 1)
  # Here the two chunks pad to different lengths (4096 and 2048) and run different step counts
  # (each chunk's own: its longest dataset's batches).
  multiple = program.length_multiple(config)
  lengths = [program.padded_lengths(c.runs, cache, multiple)[0] for c in (mixed, alone)]
  steps = [program.chunk_steps(c.runs, cache, config.batch_size) for c in (mixed, alone)]
  assert lengths[0] > lengths[1] and steps[0] > steps[1]
  p_mixed, m_mixed = program.train_chunk(mixed, cache, config, mesh)
  p_alone, m_alone = program.train_chunk(alone, cache, config, mesh)
  np.testing.assert_allclose(m_mixed["test_mse"][0], m_alone["test_mse"][0], rtol=1e-5)
  np.testing.assert_allclose(m_mixed["train_loss"][0], m_alone["train_loss"][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(p_mixed), jax.tree.leaves(p_alone)):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-6)
  # Alone again, its splits padded 2x further: the same program shape as the mixed chunk's,
  # bit for bit the same model as alone.
  monkeypatch.setattr(program, "length_multiple", lambda config: 2 * lengths[1])
  assert program.padded_lengths(alone.runs, cache, 2 * lengths[1])[0] == lengths[0]
  p_padded, m_padded = program.train_chunk(alone, cache, config, mesh)
  np.testing.assert_array_equal(m_padded["test_mse"], m_alone["test_mse"])
  for a, b in zip(jax.tree.leaves(p_padded), jax.tree.leaves(p_alone)):
    np.testing.assert_array_equal(a, b)


def _tiny(**overrides):
  return tiny_1d_config(**{"samplings": ("severe",), "epochs": 3, **overrides})


@pytest.mark.parametrize(
  "names,k",
  [
    (("reg", "lds", "focal_r", "bmc", "gai", "bni", "dense", "ranksim"), 0),
    (("regcls", "two_hot", "hl_gauss", "regcls+ranksim"), 8),
  ],
)
def test_methods_on_the_vmapped_axis_train_as_if_alone(names, k):
  """share_methods: one program trains every method of a shape (a per-model method index);
  each model ends where its method's own program takes it."""
  shared = _tiny(methods=names, num_classes=(k,) if k else (4,), share_methods=True)
  cache = plan.DatasetCache(synthetic1d.Sizes(**shared.data))
  mesh = sharding.models_mesh()
  runs = plan.plan_runs(shared)
  chunks = plan.plan_chunks(runs, mesh.devices.size, shared)
  assert len(chunks) == 1 and chunks[0].group == ("reghead" if not k else f"clshead_k{k}")
  _, m_shared = program.train_chunk(chunks[0], cache, shared, mesh)
  separate = _tiny(methods=names, num_classes=(k,) if k else (4,))
  for i, run in enumerate(chunks[0].runs[: chunks[0].num_real]):
    alone = plan.Chunk(run.group, (run,) * mesh.devices.size, 1)
    _, m_alone = program.train_chunk(alone, cache, separate, mesh)
    # RankSim's term is piecewise constant in the features: a near-tie of two cosine
    # similarities that another compiled program orders the other way moves its train loss by
    # one discrete step (1.2e-4 relative on an AVX-512 machine); the test MSE stays within 1e-6.
    rtol = 1e-3 if "ranksim" in run.method else 1e-4
    np.testing.assert_allclose(m_shared["train_loss"][i], m_alone["train_loss"][0], rtol=rtol)
    np.testing.assert_allclose(m_shared["test_mse"][i], m_alone["test_mse"][0], rtol=1e-4)


def test_conr_two_views_without_jitter_or_weight_train_as_reg():
  """ConR's batch is two views of the inputs, labels repeated: with no jitter and beta 0 its MSE
  over the doubled batch is reg's, so from the same initial weights it trains as reg."""
  config = _tiny(methods=("reg", "conr"), pair_init=True, view_jitter=0.0)
  config.peers.conr_beta = 0.0
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  mesh = sharding.models_mesh()
  out = {}
  for group in ("reg", "conr"):
    runs = [r for r in plan.plan_runs(config) if r.group == group][:1]
    _, out[group] = program.train_chunk(
      plan.Chunk(group, tuple(runs) * mesh.devices.size, 1), cache, config, mesh
    )
  np.testing.assert_allclose(out["conr"]["test_mse"][0], out["reg"]["test_mse"][0], rtol=1e-4)
  # With its weight the regulariser changes the training.
  config.peers.conr_beta = 4.0
  runs = [r for r in plan.plan_runs(config) if r.group == "conr"][:1]
  _, beta = program.train_chunk(
    plan.Chunk("conr", tuple(runs) * mesh.devices.size, 1), cache, config, mesh
  )
  assert abs(beta["train_loss"][0, -1] - out["conr"]["train_loss"][0, -1]) > 1e-4


def test_fds_epoch_end_statistics_skip_padding():
  from flax import nnx

  from regcls_jax.method import fds
  from regcls_jax.models.mlp import MLP
  from regcls_jax.train_lib import step as step_lib

  graphdef, params = nnx.split(MLP(1, (6, 15), 0, rngs=nnx.Rngs(0)))
  state = step_lib.init_state(params, step_lib.adam_l2(1e-3))
  state = state.replace(hparams={**state.hparams, "fds": fds.init(4, 15)})
  x = jnp.linspace(-1, 1, 12)
  buckets = jnp.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, -1, -1])  # the last two are padding
  out = program._fds_epoch_end(graphdef, x, buckets, state).hparams["fds"]
  feats = np.asarray(nnx.merge(graphdef, params).features(x[:, None]))
  for b in range(4):
    rows = feats[np.asarray(buckets) == b]
    np.testing.assert_allclose(out.running_mean[b], rows.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.running_var[b], rows.var(0, ddof=1), rtol=1e-4, atol=1e-6)


def test_fds_is_plain_regression_until_its_first_update():
  """FDS updates its statistics at each epoch's end and re-calibrates from the next epoch on:
  after one epoch an FDS model equals the regression model (both from the same weights), after
  three it does not."""
  for epochs, same in ((1, True), (3, False)):
    config = _tiny(methods=("reg", "fds"), epochs=epochs, pair_init=True)
    cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
    mesh = sharding.models_mesh()
    reg, fds_run = plan.plan_runs(config)
    n = mesh.devices.size
    _, m_reg = program.train_chunk(plan.Chunk("reg", (reg,) * n, 1), cache, config, mesh)
    _, m_fds = program.train_chunk(plan.Chunk("fds", (fds_run,) * n, 1), cache, config, mesh)
    assert (m_reg["test_mse"][0] == m_fds["test_mse"][0]) == same


@pytest.mark.parametrize("paired", [False, True])
def test_initialisation_is_unpaired_as_the_reference_unless_asked(paired):
  """Unpaired (default, the authors' code): reg+cls starts from other weights than reg, and from
  the same trunk for every K; ``pair_init`` gives every model the reg model's trunk and head."""
  config = _tiny(samplings=("uniform",), num_classes=(4, 16), epochs=1, pair_init=paired)
  config.lr.clean = 1e-12  # one Adam step of 1e-12: the parameters stay at their initial values
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  mesh = sharding.models_mesh()
  runs = {r.group: r for r in plan.plan_runs(config)}
  assert set(runs) == {"reg", "regcls_k4", "regcls_k16"}
  trunk = {}
  for group, run in runs.items():
    params, _ = program.train_chunk(
      plan.Chunk(group, (run,) * mesh.devices.size, 1), cache, config, mesh
    )
    trunk[group] = [np.asarray(params["layers"][i]["kernel"][0]) for i in (0, 1)]
    trunk[group].append(np.asarray(params["reg_head"]["kernel"][0]))
  for a, b in zip(trunk["regcls_k4"], trunk["regcls_k16"]):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  same_as_reg = [np.allclose(a, b, rtol=1e-6) for a, b in zip(trunk["reg"], trunk["regcls_k4"])]
  assert same_as_reg == [paired] * 3


def test_still_learns_beyond_the_training_mean():
  """60 epochs (lr 1e-2) on the tiny clean datasets of 2,000 training samples: reg and reg+cls
  beat the constant predictor of the training mean on the (uniform) test split: by 30% when
  trained on the uniform sampling, by 5% on the severe one (whose training set barely covers
  the test targets' range)."""
  config = _tiny(samplings=("uniform", "severe"), num_classes=(16,), epochs=60)
  config.lr.clean = 1e-2
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  mesh = sharding.models_mesh()
  for group in ("reg", "regcls_k16"):
    runs = [r for r in plan.plan_runs(config) if r.group == group]
    chunk = plan.Chunk(group, tuple(runs) * (mesh.devices.size // len(runs) or 1), len(runs))
    _, metrics = program.train_chunk(chunk, cache, config, mesh)
    for run, mse in zip(runs, metrics["test_mse"]):
      train, _, test = cache.splits(run)
      constant = np.mean((test.y - train.y.mean()) ** 2)
      margin = 0.7 if run.sampling == "uniform" else 0.95
      assert mse < margin * constant, (group, run.sampling, mse, constant)


def test_chunk_flops_count_every_step_of_the_matmuls():
  """XLA counts a loop body once; `chunk_flops` multiplies one step by the executed steps. A
  step costs at least its matmuls (6 x MACs per sample: forward, two backward products) and at
  most a few times that (activations, loss, Adam); K=16 adds exactly its head's matmuls."""
  config = _tiny(num_classes=(16,))
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  mesh = sharding.models_mesh()
  runs = plan.plan_runs(config)
  chunks = plan.plan_chunks(runs, mesh.devices.size, config, size_of=cache.train_size)
  costs = {}
  for chunk in chunks:
    f = program.chunk_flops(chunk, cache, config, mesh)
    dims = (1, *config.hidden)
    k = chunk.runs[0].num_classes
    macs = sum(a * b for a, b in zip(dims[:-1], dims[1:])) + dims[-1] * (1 + k)
    matmuls = 6 * macs * config.batch_size * len(chunk.runs)
    assert matmuls <= f["step"] <= 3 * matmuls, (chunk.group, f, matmuls)
    n_train = max(len(cache.splits(r)[0]) for r in chunk.runs)
    # The chunk's own batches per epoch (its arrays are padded further, to a power of two).
    assert f["steps"] == config.epochs * -(-n_train // config.batch_size)
    assert f["total"] == f["step"] * f["steps"] + f["eval"] and f["eval"] > 0
    # A step reads at least its batch's inputs and every model's parameters (float32).
    params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:])) + (dims[-1] + 1) * (1 + k)
    assert f["step_bytes"] >= 4 * len(chunk.runs) * (params + config.batch_size), f
    costs[k] = f["step"] / len(chunk.runs)
  head = 6 * config.hidden[-1] * 16 * config.batch_size
  assert costs[16] - costs[0] >= head


@pytest.mark.parametrize("methods", [("regcls",), ("regcls", "regcls+ranksim")])
def test_the_fused_head_trains_the_models_of_the_unfused_one(monkeypatch, methods):
  """From `FUSED_HEAD_MIN_CLASSES` classes on, reg+cls's head runs fused into its CE
  (`losses.LinearLogits`): the same models up to float rounding, balanced classes (Eq. 13
  keep draws) and padding included."""
  config = tiny_1d_config(
    samplings=("uniform", "severe"), num_classes=(8,), balanced=(False, True), methods=methods,
    share_methods=True,
  )  # fmt: skip
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  mesh = sharding.models_mesh()
  runs = [r for r in plan.plan_runs(config) if r.method != "reg"]
  chunks = plan.plan_chunks(runs, mesh.devices.size, config, size_of=cache.train_size)
  assert not program.statics_for(chunks[0], config).fused_head  # 8 classes: unfused
  unfused = [program.train_chunk(c, cache, config, mesh) for c in chunks]
  monkeypatch.setattr(program, "FUSED_HEAD_MIN_CLASSES", 8)
  assert all(program.statics_for(c, config).fused_head for c in chunks)
  for chunk, (p_plain, m_plain) in zip(chunks, unfused):
    p_fused, m_fused = program.train_chunk(chunk, cache, config, mesh)
    n = chunk.num_real
    for key in ("train_loss", "val_mse", "test_mse"):
      np.testing.assert_allclose(m_fused[key][:n], m_plain[key][:n], rtol=2e-4, err_msg=key)
    for a, b in zip(jax.tree.leaves(p_fused), jax.tree.leaves(p_plain)):
      np.testing.assert_allclose(a[:n], b[:n], rtol=1e-3, atol=1e-5)
