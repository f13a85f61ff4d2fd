"""The paper's Fig. 4 (lambda), Fig. 5 (noise) and Fig. 7 (predictions) from the 1D grid."""

import os

import ml_collections
import numpy as np
import pytest
from conftest import tiny_1d_config

from regcls_jax.data import synthetic1d
from regcls_jax.families.synthetic1d import figures, plan, program, trainer
from regcls_jax.train_lib import checkpoint, pytrees
from regcls_jax.train_lib.config import load_config


def test_noise_sweep_multiplies_only_the_noisy_datasets():
  config = load_config("configs/synthetic1d.py", "grid=noise")
  runs = plan.plan_runs(config)
  # 5 levels x 4 samplings x 10 functions x 1 version x (reg + 4 K).
  assert len(runs) == 5 * 4 * 10 * (1 + 4)
  assert sorted({r.noise for r in runs}) == [0.05, 0.1, 0.2, 0.4, 0.8]
  config = tiny_1d_config(scenarios=("clean", "noisy"), noise_levels=(0.1, 0.4))
  config.lam.noisy = (1e3,)
  runs = plan.plan_runs(config)
  assert {r.noise for r in runs if r.scenario == "clean"} == {0.1}
  assert {r.noise for r in runs if r.scenario == "noisy"} == {0.1, 0.4}
  assert len(runs) == 3 * (2 * 3)  # clean once, noisy at two levels; 2 samplings x (1 + 2 K)


def test_noise_level_scales_the_same_noise_draws():
  """On an imbalanced sampling the inputs do not depend on the noise level and the targets'
  noise is the same draw scaled: a controlled sweep."""
  config = tiny_1d_config()
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  low, high = (cache.get("noisy", "severe", 0, 0, s) for s in (0.1, 0.4))
  f = synthetic1d.functions()[0]
  for a, b in ((low.train, high.train), (low.test, high.test)):
    np.testing.assert_array_equal(a.x, b.x)
    noise_a, noise_b = a.y - f(a.x.astype(np.float64)), b.y - f(b.x.astype(np.float64))
    np.testing.assert_allclose(noise_b, 4.0 * noise_a, atol=2e-6)
    assert np.std(noise_b) == pytest.approx(0.4, rel=0.1)


def _row(scenario, sampling, function, method, k, lam, val, test, balanced=False, noise=0.1):
  return dict(
    scenario=scenario, sampling=sampling, function=function, version=0, noise=noise,
    method=method, num_classes=k, balanced=balanced, lam=lam, val_mse=val, test_mse=test,
  )  # fmt: skip


def test_lambda_selection_reads_validation_only():
  """lam=10 has the lowest mean validation MSE but the highest test MSE: it is selected."""
  rows = [_row("clean", "mild", f, "reg", 0, 0.0, 0.5, 0.5) for f in (0, 1)]
  for f in (0, 1):
    rows += [
      _row("clean", "mild", f, "regcls", 4, 10.0, 0.20 + 0.01 * f, 0.9),
      _row("clean", "mild", f, "regcls", 4, 100.0, 0.30, 0.1),
      _row("clean", "mild", f, "regcls", 16, 10.0, 0.40, 0.2),
      _row("clean", "mild", f, "regcls", 16, 100.0, 0.35, 0.3),
    ]
  assert figures.lambda_sweep(rows)
  text = figures.lambda_markdown(rows, ["clean"], ["mild"], "t")
  # Over K: lam 10 has mean val (0.205 + 0.40) / 2 = 0.3025 < lam 100's (0.30 + 0.35) / 2.
  assert "| clean (reg+cls) | 10 | 0.3025 |" in text
  assert "| clean | mild | reg+cls | 4 | 10 | 0.2050 | 0.9000 | 0.5000 | 0.5000 |" in text
  assert "| clean | mild | reg+cls | 16 | 100 | 0.3500 | 0.3000 | 0.5000 | 0.5000 |" in text
  curves = figures.lambda_curves(rows)
  assert curves[("clean", "mild", "reg+cls", 16)] == {10.0: 0.40, 100.0: 0.35}


def test_noise_table_per_level():
  rows = []
  for noise, (reg, cls) in {0.1: (0.3, 0.2), 0.4: (0.5, 0.6)}.items():
    rows += [_row("noisy", "severe", 0, "reg", 0, 0.0, 0, reg, noise=noise)]
    rows += [_row("noisy", "severe", 0, "regcls", 4, 1e3, 0, cls, noise=noise)]
  text = figures.noise_markdown(rows, ["severe"], "t")
  assert "| severe | 0.1 | 0.3000 ± 0.0000 | 0.2000 ± 0.0000 | +0.1000 | 100.0 |" in text
  assert "| severe | 0.4 | 0.5000 ± 0.0000 | 0.6000 ± 0.0000 | -0.1000 | 0.0 |" in text


def test_prediction_models_are_the_best_on_validation():
  rows = [
    _row("clean", "severe", 0, "reg", 0, 0.0, 0.5, 0.5),
    _row("clean", "severe", 0, "regcls", 4, 10.0, 0.3, 0.9),
    _row("clean", "severe", 0, "regcls", 16, 10.0, 0.2, 0.9),
    _row("clean", "severe", 0, "regcls", 16, 10.0, 0.1, 0.9, balanced=True),
    _row("clean", "severe", 0, "regcls", 4, 10.0, 0.4, 0.1, balanced=True),
  ]
  chosen = figures.prediction_models(rows)
  assert chosen == {("clean", "severe", 0, 0, 0.1): {"reg": 0, "reg+cls": 2, "reg+cls bal.": 3}}


def test_figures_from_one_grid_and_predictions_reproduce_test_mse(tmp_path):
  """A tiny noisy grid at two noise levels and two lambdas, with predictions: every figure's
  files are written, summary.md keeps the rows at data.noise_std, and the plotted predictions
  at the test inputs give back each model's test MSE."""
  config = tiny_1d_config(
    scenarios=("noisy",), noise_levels=(0.1, 0.3), plot_predictions=True, num_classes=(4,)
  )
  config.lam = ml_collections.ConfigDict({"noisy": (10.0, 1000.0)})
  config.lr = ml_collections.ConfigDict({"noisy": 1e-2})
  workdir = str(tmp_path)
  rows = trainer.train_and_evaluate(config, workdir)
  assert len(rows) == 2 * 2 * (1 + 2)
  for name in ("lambda.md", "fig4.png", "noise.md", "fig5.png", "fig7.png", "summary.md"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  with open(os.path.join(workdir, "summary.md")) as f:
    summary = f.read()
  for noise in (0.1, 0.3):
    reg = [r for r in rows if r["method"] == "reg" and r["noise"] == noise]
    line = next(r for r in reg if r["sampling"] == "severe")
    shown = f"| noisy | severe | {line['test_mse']:.4f} ± 0.0000 |" in summary
    assert shown == (noise == 0.1), noise

  params, _ = checkpoint.restore_for_eval(os.path.join(workdir, "checkpoints"))
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  for group in {r["group"] for r in rows}:
    members = [r for r in rows if r["group"] == group]
    runs = [plan.Run.from_row(r) for r in members]
    template = program.param_template(config.hidden, runs[0].num_classes)
    stacked = pytrees.unflatten(template, params[group])
    for run, r in zip(runs, members):
      test = cache.splits(run)[2]
      one = pytrees.take(stacked, [r["index"]])
      pred = program.predict_group(group, [run], one, test.x, cache, config)[0]
      assert np.mean((pred - test.y) ** 2) == pytest.approx(r["test_mse"], rel=1e-4)
