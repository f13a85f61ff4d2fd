"""The 1D trainer end to end on the tiny grid: outputs, checkpoint round trip, resume."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from regcls_jax.families.synthetic1d import program, report, trainer
from regcls_jax.train_lib.config import REPO_ROOT, load_config

MAIN = [sys.executable, "-m", "regcls_jax.main"]
TINY = "--config=configs/synthetic1d.py:grid=tiny"


def cli(*args):
  return subprocess.run([*MAIN, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("tiny"))
  out = cli(TINY, f"--workdir={workdir}")
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir, out


def test_train_writes_results_plots_and_checkpoint(trained):
  workdir, out = trained
  for name in ("results.csv", "summary.md", "fig3.png", "config.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert os.listdir(os.path.join(workdir, "checkpoints"))
  with open(os.path.join(workdir, "results.csv")) as f:
    rows = list(csv.DictReader(f))
  required = "scenario,sampling,function,seed,num_classes,balanced,lam,method,val_mse,test_mse"
  assert set(required.split(",")) <= set(rows[0])
  # tiny grid: 1 scenario x 2 samplings x 1 function x 1 version; reg + reg+cls for K in {4, 16}.
  assert len(rows) == 2 * (1 + 2)
  assert {r["method"] for r in rows} == {"reg", "regcls"}
  assert all(np.isfinite(float(r["test_mse"])) and float(r["test_mse"]) > 0 for r in rows)
  assert "ETA" in out.stderr  # the progress line
  with open(os.path.join(workdir, "summary.md")) as f:
    assert "| clean | severe |" in f.read()


def test_eval_mode_recomputes_test_mse_from_checkpoint(trained):
  workdir, _ = trained
  out = cli(TINY, f"--workdir={workdir}", "--mode=eval")
  assert out.returncode == 0, out.stderr[-3000:]
  trained_rows = report.read_csv(os.path.join(workdir, "results.csv"))
  eval_rows = report.read_csv(os.path.join(workdir, "results_eval.csv"))
  key = lambda r: (r["group"], r["index"])  # noqa: E731
  got = {key(r): r["test_mse"] for r in eval_rows}
  for r in trained_rows:
    assert got[key(r)] == pytest.approx(r["test_mse"], rel=1e-5)


def test_resume_after_interruption_matches_uninterrupted(tmp_path, monkeypatch):
  config = load_config("configs/synthetic1d.py", "grid=tiny")
  with config.unlocked():
    config.checkpoint_every_secs = 0.0  # save after every chunk
  full = trainer.train_and_evaluate(config, str(tmp_path / "full"))

  real_train_chunk = program.train_chunk
  calls = []

  def failing(chunk, *args, **kwargs):
    calls.append(chunk.group)
    if len(calls) == 2:
      raise KeyboardInterrupt("simulated preemption")
    return real_train_chunk(chunk, *args, **kwargs)

  monkeypatch.setattr(program, "train_chunk", failing)
  with pytest.raises(KeyboardInterrupt):
    trainer.train_and_evaluate(config, str(tmp_path / "resumed"))
  monkeypatch.setattr(program, "train_chunk", real_train_chunk)
  resumed = trainer.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert [r["test_mse"] for r in resumed] == pytest.approx([r["test_mse"] for r in full], rel=1e-6)

  with config.unlocked():
    config.epochs = 3
  with pytest.raises(ValueError, match=r"different config: config\.epochs \(2 -> 3\)"):
    trainer.train_and_evaluate(config, str(tmp_path / "resumed"))


def test_uniform_and_balanced_classes_side_by_side(tmp_path):
  """Tab. 1's comparison: the same grid with uniform and equalised (Eq. 12-13) classes."""
  config = load_config("configs/synthetic1d.py", "grid=tiny,both")
  rows = trainer.train_and_evaluate(config, str(tmp_path))
  regcls = [r for r in rows if r["method"] == "regcls"]
  assert {r["balanced"] for r in regcls} == {False, True}
  assert len(regcls) == 2 * 2 * 2  # 2 samplings x K in {4, 16} x {uniform, balanced}
  summary = (tmp_path / "summary.md").read_text()
  assert "reg+cls bal." in summary and "win %" in summary
  # Equalised classes with keep masking train a different model than uniform classes.
  by_key = {(r["sampling"], r["num_classes"], r["balanced"]): r["test_mse"] for r in regcls}
  assert by_key[("severe", 16, True)] != by_key[("severe", 16, False)]


def test_every_method_through_main_with_eval(tmp_path):
  """grid=tiny with every method: results, the methods table and plot; --mode=eval recomputes
  each test MSE from the checkpoint (histogram methods decode their head)."""
  names = (
    "('reg','lds','focal_r','bmc','gai','bni','dense','ranksim','conr','regcls','two_hot',"
    "'hl_gauss','regcls+ranksim')"
  )
  args = (TINY, f"--workdir={tmp_path}", f"--config.methods={names}", "--config.num_classes=(8,)")
  out = cli(*args)
  assert out.returncode == 0, out.stderr[-3000:]
  rows = report.read_csv(str(tmp_path / "results.csv"))
  assert len(rows) == 2 * 13 and all(np.isfinite(r["test_mse"]) for r in rows)
  table = (tmp_path / "methods.md").read_text()
  labels = ("| reg |", "| lds |", "| bmc |", "| conr |", "| regcls K=8 |", "| hl_gauss K=8 |")
  for label in (*labels, "| regcls+ranksim K=8 |"):
    assert label in table
  assert (tmp_path / "methods.png").stat().st_size > 0
  out = cli(*args, "--mode=eval")
  assert out.returncode == 0, out.stderr[-3000:]
  got = {
    (r["group"], r["index"]): r["test_mse"]
    for r in report.read_csv(str(tmp_path / "results_eval.csv"))
  }
  for r in rows:
    assert got[(r["group"], r["index"])] == pytest.approx(r["test_mse"], rel=1e-5)
