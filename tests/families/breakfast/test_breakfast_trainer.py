"""The Breakfast trainer end to end: train, eval, resume, baselines, one-line errors."""

import os
import subprocess
import sys

import pytest
from conftest import data_config

from regcls_jax.data import common, pipeline
from regcls_jax.families.breakfast import report, trainer
from regcls_jax.train_lib.config import REPO_ROOT


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
  rows = list(common.read_csv(str(work / "results.csv"), report.COLUMNS))
  assert len(rows) == 3 * 40  # random, reg, reg+cls for 10 activities x 4 splits
  table = (work / "table5.md").read_text()
  assert "| random (untrained) |" in table and "| reg+cls |" in table and "S4 x100" in table
  assert "Pooled RMSE" in table and "lambda selected per split" in table
  # reg+cls's lambda: chosen per split on held-out training videos among the 5 candidates.
  search = common.read_csv(str(work / "lam_search.csv"), report.LAM_SEARCH_COLUMNS)
  assert len(search) == 5 * 40
  chosen = {(r[0], float(r[4])) for r in search if r[6] == "1"}
  assert len(chosen) == 4 and {s for s, _ in chosen} == {"s1", "s2", "s3", "s4"}
  lam_col = report.COLUMNS.index("lam")
  for r in rows:
    if r[2] == "regcls":
      assert (r[0], float(r[lam_col])) in chosen
  fresh = tmp_path / "fresh"
  out = _main("--config=configs/breakfast.py:runlocal", f"--workdir={fresh}", *data,
              "--config.epochs=5")  # fmt: skip
  assert out.returncode == 0
  assert (fresh / "results.csv").read_text() == (work / "results.csv").read_text()
  out = _main("--config=configs/breakfast.py:runlocal", f"--workdir={work}", "--mode=eval", *data)
  assert out.returncode == 0, out.stderr[-2000:]
  evaluated = common.read_csv(str(work / "results_eval.csv"), report.COLUMNS)
  for a, b in zip(rows, evaluated):
    assert a[:5] == b[:5] and float(a[5]) == pytest.approx(float(b[5]), rel=1e-5)


def test_activity_without_videos_is_an_error(fixture_copy, tmp_path):
  d = fixture_copy("breakfast")
  for sub in ("features", "groundTruth"):
    os.remove(d / sub / "P29_cam01_P29_salat.txt")
  config = data_config("breakfast", d, tmp_path / "tfds")
  with pytest.raises(common.DataError, match="split s3: activity 'salat' has no test videos"):
    trainer.train_and_evaluate(config, str(tmp_path / "work"))
  assert not (tmp_path / "work" / "checkpoints").exists()


def test_unknown_method_is_an_error(tmp_path, fixture_root, tfds_root):
  config = data_config("breakfast", fixture_root / "breakfast", tfds_root)
  config.methods = ("reg", "svm")
  with pytest.raises(ValueError, match="config.methods: unknown method 'svm'"):
    trainer.train_and_evaluate(config, str(tmp_path))
  assert pipeline.split_name(config.data, "train") == "s2+s3+s4"


def test_baseline_methods_train_and_evaluate(tmp_path, fixture_root, tfds_root):
  """Baselines of the registry in the Breakfast program: LDS and DenseLoss weights, RankSim on
  the MLP's features and a decoded HL-Gauss head per model; --mode=eval recomputes each RMSE
  from the checkpoint."""
  data = [
    f"--config.data.data_dir={fixture_root / 'breakfast'}",
    f"--config.data.tfds_dir={tfds_root}",
  ]
  args = ("--config=configs/breakfast.py:runlocal,split=s1", f"--workdir={tmp_path}", *data,
          "--config.methods=('lds','hl_gauss','dense','ranksim')", "--config.epochs=5")  # fmt: skip
  out = _main(*args)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = common.read_csv(str(tmp_path / "results.csv"), report.COLUMNS)
  names = {"random", "lds", "hl_gauss", "dense", "ranksim"}
  assert len(rows) == 5 * 10 and {r[2] for r in rows} == names
  table = (tmp_path / "table5.md").read_text()
  assert all(f"| {m} |" in table for m in names - {"random"})
  # A histogram prediction is a convex combination of bin centres inside [0, 1] progress: its
  # RMSE x 100 lies inside (0, 100).
  assert all(0.0 < float(r[5]) < 100.0 for r in rows if r[2] != "random")
  out = _main(*args, "--mode=eval")
  assert out.returncode == 0, out.stderr[-2000:]
  evaluated = common.read_csv(str(tmp_path / "results_eval.csv"), report.COLUMNS)
  for a, b in zip(rows, evaluated):
    assert a[:5] == b[:5] and float(a[5]) == pytest.approx(float(b[5]), rel=1e-5)
