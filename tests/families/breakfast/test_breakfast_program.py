"""Breakfast program: vmapped models train as if alone; RMSE by hand."""

import jax
import numpy as np

from regcls_jax.families.breakfast import plan, program
from regcls_jax.train_lib import sharding


def test_vmapped_models_equal_separately_trained_ones(breakfast_frames):
  frames, config, _ = breakfast_frames
  config.epochs, config.lr = 4, 1e-2
  mesh = sharding.models_mesh()
  models = plan.plan_models(config)[:6]  # s1, six activities of different sizes
  statics = plan.statics_for(config, "regcls_bal")
  feats, targets = jax.device_put(frames.features), jax.device_put(frames.percent)

  def run(ms):
    inputs = plan.method_inputs(config, frames, ms, "regcls_bal", mesh.devices.size)
    params, metrics = program.train(statics, mesh, feats, targets, *inputs)
    return jax.device_get((params, metrics))

  together_params, together = run(models)
  assert len({len(plan.model_frames(frames, m)[0]) for m in models}) > 1  # padding differs
  for i in (0, 3):
    alone_params, alone = run([models[i]])
    np.testing.assert_allclose(alone["rmse"][0], together["rmse"][i], rtol=1e-5)
    np.testing.assert_allclose(alone["train_loss"][0], together["train_loss"][i], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(alone_params), jax.tree.leaves(together_params)):
      np.testing.assert_allclose(a[0], b[i], rtol=1e-4, atol=1e-6)
  # The "random" row is the untrained model; training lowers the RMSE.
  assert np.all(together["rmse"][:6] < together["rmse_init"][:6])


def test_rmse_by_hand(breakfast_frames):
  frames, config, _ = breakfast_frames
  statics = plan.statics_for(config, "reg")
  params = program.init_params(statics, 0, 3)
  model = program.nnx.merge(program._graphdef(statics), params)
  _, test = plan.model_frames(frames, plan.Model("s1", "juice", 0))
  pred = np.asarray(model.predict(frames.features[test]))
  want = np.sqrt(np.mean((pred - frames.percent[test]) ** 2))
  got = program._rmse(
    program._graphdef(statics), "reg", {}, params, frames.features, frames.percent,
    np.concatenate([test, np.zeros(5, np.int64)]), len(test),
  )  # fmt: skip
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
