"""The Breakfast experiment: frames and targets, splits, the vmapped program, end to end."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import data_config

from regcls_jax import experiment_breakfast as xb
from regcls_jax import progress_program, sweep
from regcls_jax.config_utils import REPO_ROOT
from regcls_jax.data import breakfast, common, pipeline


@pytest.fixture(scope="module")
def frames_and_config(prepared):
  config, builder = prepared("breakfast")
  return xb.load_frames(builder), config, builder


def test_frames_and_targets_match_the_fixture_files(frames_and_config, fixture_root):
  frames, _, builder = frames_and_config
  start = 0
  for group in xb.SPLITS:
    for name, n, activity in builder.info.metadata["videos"][group]:
      rows = slice(start, start + n)
      want = np.loadtxt(fixture_root / "breakfast" / "features" / f"{name}.txt", dtype=np.float32)
      np.testing.assert_array_equal(frames.features[rows], want)
      np.testing.assert_allclose(frames.percent[rows], 100 * np.arange(n) / n, rtol=1e-6)
      np.testing.assert_array_equal(frames.frames[rows], np.arange(n))
      assert set(frames.activity[rows]) == {breakfast.ACTIVITIES.index(activity)}
      assert set(frames.group[rows]) == {xb.SPLITS.index(group)}
      start += n
  assert start == len(frames.features)


def test_model_frames_split_by_participant(frames_and_config):
  frames, _, builder = frames_and_config
  persons = np.concatenate(
    [[int(r["person"]) for r in builder.as_data_source(split=g)] for g in xb.SPLITS]
  )
  train, test = xb.model_frames(frames, xb.Model("s2", "juice", 0))
  assert set(persons[test]) == {16} and 16 not in set(persons[train])
  assert set(frames.activity[train]) == set(frames.activity[test]) == {3}
  want_train = np.flatnonzero((frames.activity == 3) & (frames.group != 1))
  np.testing.assert_array_equal(train, want_train)


def test_vmapped_models_equal_separately_trained_ones(frames_and_config):
  frames, config, _ = frames_and_config
  config.epochs, config.lr = 4, 1e-2
  mesh = sweep.make_mesh()
  models = xb.plan_models(config)[:6]  # s1, six activities of different sizes
  statics = xb.statics_for(config, "regcls_bal")
  feats, targets = jax.device_put(frames.features), jax.device_put(frames.percent)

  def run(ms):
    inputs = xb._method_inputs(config, frames, ms, "regcls_bal", mesh.devices.size)
    params, metrics = progress_program.train(statics, mesh, feats, targets, *inputs)
    return jax.device_get((params, metrics))

  together_params, together = run(models)
  assert len({len(xb.model_frames(frames, m)[0]) for m in models}) > 1  # padding differs
  for i in (0, 3):
    alone_params, alone = run([models[i]])
    np.testing.assert_allclose(alone["rmse"][0], together["rmse"][i], rtol=1e-5)
    np.testing.assert_allclose(alone["train_loss"][0], together["train_loss"][i], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(alone_params), jax.tree.leaves(together_params)):
      np.testing.assert_allclose(a[0], b[i], rtol=1e-4, atol=1e-6)
  # The "random" row is the untrained model; training lowers the RMSE.
  assert np.all(together["rmse"][:6] < together["rmse_init"][:6])


def test_rmse_by_hand(frames_and_config):
  frames, config, _ = frames_and_config
  statics = xb.statics_for(config, "reg")
  params = progress_program.init_params(statics, 0, 3)
  model = progress_program.nnx.merge(progress_program._graphdef(statics), params)
  _, test = xb.model_frames(frames, xb.Model("s1", "juice", 0))
  pred = np.asarray(model.predict(frames.features[test]))
  want = np.sqrt(np.mean((pred - frames.percent[test]) ** 2))
  got = progress_program._rmse(
    progress_program._graphdef(statics), "reg", {}, params, frames.features, frames.percent,
    np.concatenate([test, np.zeros(5, np.int64)]), len(test),
  )  # fmt: skip
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def _main(*args):
  cmd = [sys.executable, "-m", "regcls_jax.main", *args]
  return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def test_runlocal_end_to_end_with_eval_and_resume(fixture_root, tfds_root, tmp_path):
  data = [
    f"--config.data.data_dir={fixture_root / 'breakfast'}",
    f"--config.data.tfds_dir={tfds_root}",
  ]
  work = tmp_path / "w"
  out = _main("--config=configs/breakfast.py:runlocal", f"--workdir={work}", *data,
              "--config.methods=('reg',)", "--config.epochs=5")  # fmt: skip
  assert out.returncode == 0, out.stderr[-2000:]
  out = _main("--config=configs/breakfast.py:runlocal", f"--workdir={work}", *data,
              "--config.epochs=5")  # fmt: skip
  assert out.returncode == 0, out.stderr[-2000:]
  assert "resuming: reg already trained" in out.stderr
  rows = list(common.read_csv(str(work / "results.csv"), xb.COLUMNS))
  assert len(rows) == 3 * 40  # random, reg, reg+cls for 10 activities x 4 splits
  table = (work / "table5.md").read_text()
  assert "| random (untrained) |" in table and "| reg+cls |" in table and "S4 %" in table
  fresh = tmp_path / "fresh"
  out = _main("--config=configs/breakfast.py:runlocal", f"--workdir={fresh}", *data,
              "--config.epochs=5")  # fmt: skip
  assert out.returncode == 0
  assert (fresh / "results.csv").read_text() == (work / "results.csv").read_text()
  out = _main("--config=configs/breakfast.py:runlocal", f"--workdir={work}", "--mode=eval", *data)
  assert out.returncode == 0, out.stderr[-2000:]
  evaluated = common.read_csv(str(work / "results_eval.csv"), xb.COLUMNS)
  for a, b in zip(rows, evaluated):
    assert a[:5] == b[:5] and float(a[5]) == pytest.approx(float(b[5]), rel=1e-5)


def test_activity_without_videos_is_an_error(fixture_copy, tmp_path):
  d = fixture_copy("breakfast")
  for sub in ("features", "groundTruth"):
    os.remove(d / sub / "P29_cam01_P29_salad.txt")
  config = data_config("breakfast", d, tmp_path / "tfds")
  with pytest.raises(common.DataError, match="split s3: activity 'salad' has no test videos"):
    xb.run(config, str(tmp_path / "work"))
  assert not (tmp_path / "work" / "checkpoints").exists()


def test_unknown_method_is_an_error(tmp_path, fixture_root, tfds_root):
  config = data_config("breakfast", fixture_root / "breakfast", tfds_root)
  config.methods = ("reg", "svm")
  with pytest.raises(ValueError, match="config.methods: unknown method 'svm'"):
    xb.run(config, str(tmp_path))
  assert pipeline.split_name(config.data, "train") == "s2+s3+s4"


def test_baseline_methods_train_and_evaluate(tmp_path, fixture_root, tfds_root):
  """Baselines of methods.py in the Breakfast program: LDS weights and a decoded HL-Gauss
  head per model; --mode=eval recomputes each RMSE from the checkpoint."""
  data = [
    f"--config.data.data_dir={fixture_root / 'breakfast'}",
    f"--config.data.tfds_dir={tfds_root}",
  ]
  args = ("--config=configs/breakfast.py:runlocal,split=s1", f"--workdir={tmp_path}", *data,
          "--config.methods=('lds','hl_gauss')", "--config.epochs=5")  # fmt: skip
  out = _main(*args)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = common.read_csv(str(tmp_path / "results.csv"), xb.COLUMNS)
  assert len(rows) == 3 * 10 and {r[2] for r in rows} == {"random", "lds", "hl_gauss"}
  table = (tmp_path / "table5.md").read_text()
  assert "| lds |" in table and "| hl_gauss |" in table
  # A histogram prediction is a convex combination of bin centres inside [0, 100] percent.
  assert all(0.0 < float(r[5]) < 100.0 for r in rows)
  out = _main(*args, "--mode=eval")
  assert out.returncode == 0, out.stderr[-2000:]
  evaluated = common.read_csv(str(tmp_path / "results_eval.csv"), xb.COLUMNS)
  for a, b in zip(rows, evaluated):
    assert a[:5] == b[:5] and float(a[5]) == pytest.approx(float(b[5]), rel=1e-5)
