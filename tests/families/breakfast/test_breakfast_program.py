"""Breakfast program: vmapped models train as if alone; RMSE by hand."""

import copy

import jax
import numpy as np

from regcls_jax.families.breakfast import plan, program
from regcls_jax.train_lib import sharding


def test_vmapped_models_equal_separately_trained_ones(breakfast_frames):
  frames, config, _ = breakfast_frames
  config = copy.deepcopy(config)  # the module's fixture config stays as loaded
  config.epochs, config.lr = 4, 1e-2
  config.lam.fraction = 1.0  # 4 epochs of a few steps: the paper's 1e-3 barely moves the head
  mesh = sharding.models_mesh()
  models = plan.plan_models(config)[:6]  # s1, six activities of different sizes
  statics = plan.statics_for(config, "regcls_bal")
  feats, targets = jax.device_put(frames.features), jax.device_put(frames.fraction)

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
  """The authors' metric: mean over consecutive batches of 40 test frames of each batch's RMSE
  (the shorter last batch is one batch); and the pooled RMSE beside it."""
  frames, config, _ = breakfast_frames
  statics = plan.statics_for(config, "reg")
  assert statics.eval_batch_size == 40
  params = program.init_params(statics, 0, 3)
  model = program.nnx.merge(program._graphdef(statics), params)
  # The fixture's test sets hold at most 40 frames: score its first 130 frames instead, three
  # full batches and one of 10.
  test = np.arange(130)
  err = np.asarray(model.predict(frames.features[test])) - frames.fraction[test]
  batches = [err[i : i + 40] for i in range(0, len(err), 40)]
  want_batched = np.mean([np.sqrt(np.mean(b**2)) for b in batches])
  want_pooled = np.sqrt(np.mean(err**2))
  assert abs(want_batched - want_pooled) > 1e-4  # the two metrics differ
  got = program._rmse(
    statics, program._graphdef(statics), {}, params, frames.features, frames.fraction,
    np.concatenate([test, np.zeros(45, np.int64)]), len(test),
  )  # fmt: skip
  np.testing.assert_allclose(float(got["rmse"]), want_batched, rtol=1e-5)
  np.testing.assert_allclose(float(got["rmse_pooled"]), want_pooled, rtol=1e-5)


def test_summed_loss_on_fractions_by_hand(breakfast_frames):
  """One fixed batch: s * (lam * sum of squared fraction errors + mean CE), lam = 1e-3."""
  frames, config, _ = breakfast_frames
  assert config.target == "fraction" and config.lam.fraction == 1e-3
  statics = plan.statics_for(config, "regcls")
  params = program.init_params(statics, 0, 5)
  graphdef = program._graphdef(statics)
  rows = np.arange(0, 400, 10)  # 40 frames, the authors' batch size
  y = frames.fraction[rows]
  edges, _ = plan.class_inputs(config, y, balanced=False)
  np.testing.assert_allclose(edges, np.linspace(0, 1, 101))  # fixed progress range [0, 1]
  cls = np.minimum((y * 100).astype(int), 99)
  batch = {"x": frames.features[rows], "y": y, "weight": np.ones(40, bool), "cls": cls}
  hparams = {"lam": np.float32(1e-3), "scale": np.float32(2.0)}
  loss, _ = program._loss_fn(statics, {})(program.nnx.merge(graphdef, params), batch, hparams, None)
  pred, logits = program.nnx.merge(graphdef, params)(frames.features[rows])
  pred, logits = np.asarray(pred, np.float64), np.asarray(logits, np.float64)
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  ce = -np.mean(logp[np.arange(40), cls])
  want = 2.0 * (1e-3 * np.sum((pred - y) ** 2) + ce)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)


def test_still_learns_beyond_the_training_mean(breakfast_frames):
  """The fixture's features carry the progress: 20 epochs of reg, and of reg+cls with its lambda
  selected on held-out training videos, beat on the test participants the constant predictor
  of each model's training mean by at least 30% (reg) and 10% (reg+cls, whose regression
  head the lambda-weighted summed MSE trains more slowly)."""
  from regcls_jax.families.breakfast import trainer

  frames, config, _ = breakfast_frames
  config = copy.deepcopy(config)
  config.epochs = 20
  mesh = sharding.models_mesh()
  models = plan.plan_models(config)
  feats, targets = jax.device_put(frames.features), jax.device_put(frames.fraction)
  constant = []
  for m in models:
    train, test = plan.model_frames(frames, m)
    err = frames.fraction[test] - frames.fraction[train].mean()
    constant.append(
      np.mean([np.sqrt(np.mean(err[i : i + 40] ** 2)) for i in range(0, len(err), 40)])
    )
  for method, margin in (("reg", 0.7), ("regcls", 0.9)):
    lams = None
    if method == "regcls":
      lams, _ = trainer.select_lam(config, frames, models, method, mesh, feats, targets)
    inputs = plan.method_inputs(config, frames, models, method, mesh.devices.size, lams=lams)
    _, metrics = program.train(plan.statics_for(config, method), mesh, feats, targets, *inputs)
    rmse = np.asarray(metrics["rmse"])[: len(models)]
    assert rmse.mean() < margin * np.mean(constant), (method, rmse.mean(), np.mean(constant))
