"""The tabular family: train and eval through main, selection on validation only, references,
one-line errors."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from regcls_jax import families
from regcls_jax.data import common, fixtures, tabular
from regcls_jax.families.tabular import plan, program, references, report
from regcls_jax.train_lib import sharding
from regcls_jax.train_lib.config import REPO_ROOT, load_config

SMALL = dict(
  methods=("reg", "regcls", "hl_gauss"),
  num_classes=(4,),
  lams=(1.0, 10.0),
  seeds=(0, 1),
  hidden=(32, 16),
  epochs=20,
  eval_every=10,
  references=("ols",),
)


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
  """The fixture table (3,000 rows) with a split column: rows 0-1799 train, then val, test."""
  root = tmp_path_factory.mktemp("tabular")
  fixtures.write_tabular(str(root), rows=3000)
  with open(root / fixtures.TABLE_FILE) as f:
    lines = f.read().splitlines()
  split = ["train"] * 1800 + ["val"] * 600 + ["test"] * 600
  with open(root / "split.csv", "w") as f:
    f.write(lines[0] + ",split\n")
    f.writelines(f"{line},{s}\n" for line, s in zip(lines[1:], split))
  return root / "split.csv"


def _config(path, **overrides):
  config = load_config("configs/tabular.py")
  config.unlock()
  config.data.path, config.data.target, config.data.split_column = str(path), "y", "split"
  for key, value in {**SMALL, **overrides}.items():
    setattr(config, key, value)
  return config


def _selected(workdir):
  with open(os.path.join(workdir, "selected.csv")) as f:
    return list(csv.DictReader(f))


def _main(workdir, *extra):
  cmd = [sys.executable, "-m", "regcls_jax.main", f"--workdir={workdir}", *extra]
  return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def test_train_and_eval_through_main_write_every_report(table_path, tmp_path):
  flags = [
    "--config=configs/tabular.py", f"--config.data.path={table_path}", "--config.data.target=y",
    "--config.data.split_column=split", *(f"--config.{k}={v!r}" for k, v in SMALL.items()),
  ]  # fmt: skip
  out = _main(tmp_path, *flags)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "ETA" in out.stderr and "regcls vs reg:" in out.stderr
  for name in ("selected.csv", "summary.md", "shots.png", "candidates.csv", "predictions_test.npz"):
    assert (tmp_path / name).is_file(), name
  rows = _selected(tmp_path)
  assert [(r["method"], r["seed"]) for r in rows] == [
    (m, str(s)) for m in ("reg", "regcls", "hl_gauss", "ols") for s in (0, 1)
  ]
  assert set(report.COLUMNS) <= set(rows[0])
  summary = (tmp_path / "summary.md").read_text()
  assert "- `regcls`: " in summary and "- `ols`: " in summary
  # The test metrics are those of the stored predictions.
  pred = np.load(tmp_path / "predictions_test.npz")
  for i, r in enumerate(rows[:2]):
    rmse = np.sqrt(np.mean((pred["pred_reg"][i] - pred["label"]) ** 2))
    np.testing.assert_allclose(float(r["test_rmse"]), rmse, rtol=1e-6)
  # The MLP beats least squares on this non-linear table.
  reg = np.mean([float(r["test_rmse"]) for r in rows if r["method"] == "reg"])
  ols = np.mean([float(r["test_rmse"]) for r in rows if r["method"] == "ols"])
  assert reg < 0.9 * ols, (reg, ols)
  # --mode=eval restores the checkpoint and gives back every selected model's numbers.
  out = _main(tmp_path, "--mode=eval")
  assert out.returncode == 0, out.stderr[-3000:]
  with open(tmp_path / "selected_eval.csv") as f:
    again = list(csv.DictReader(f))
  for a, b in zip(rows, again):
    assert a["method"] == b["method"] and a["lam"] == b["lam"]
    np.testing.assert_allclose(float(a["test_rmse"]), float(b["test_rmse"]), rtol=1e-6)


def test_selection_uses_validation_only(table_path, tmp_path):
  """Corrupting the test split's targets after training changes no selected configuration."""
  grid = dict(methods=("reg", "regcls"), num_classes=(4, 16))
  families.train_and_evaluate(_config(table_path, **grid), str(tmp_path / "a"))
  with open(table_path) as f:
    lines = f.read().splitlines()
  rng = np.random.default_rng(0)
  corrupted = tmp_path / "corrupted.csv"
  with open(corrupted, "w") as f:
    f.write(lines[0] + "\n")
    for line in lines[1:]:
      *values, y, split = line.split(",")
      if split == "test":
        y = f"{rng.normal(0, 100):.6g}"
      f.write(",".join([*values, y, split]) + "\n")
  families.train_and_evaluate(_config(corrupted, **grid), str(tmp_path / "b"))
  key = ("method", "seed", "num_classes", "lam", "epochs", "val_rmse")
  a, b = _selected(tmp_path / "a"), _selected(tmp_path / "b")
  assert [tuple(r[k] for k in key) for r in a] == [tuple(r[k] for k in key) for r in b]
  assert [r["test_rmse"] for r in a] != [r["test_rmse"] for r in b]


def test_the_program_returns_the_parameters_of_the_best_validation_check(table_path):
  config = _config(table_path, epochs=30, eval_every=10, seeds=(0, 1, 2))
  table = tabular.load_table(str(table_path), "y", split_column="split")
  group = plan.Group("regcls", 4)
  models = plan.group_models(config, group)
  statics = plan.statics_for(config, group, len(table.features))
  mesh = sharding.models_mesh()
  data, priors, model = plan.group_inputs(config, table, group, models, mesh.devices.size)
  params, metrics = program.train(statics, mesh, data, priors, model)
  pred = np.asarray(program.predict(statics, mesh, priors, params, table.splits["val"].x))
  val = np.sqrt(np.mean((pred - table.splits["val"].y) ** 2, axis=1))
  scores = np.asarray(metrics["val_rmse"])
  assert scores.shape == (len(model["seed"]), 3)
  np.testing.assert_allclose(val, scores.min(axis=1), rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(metrics["best_check"]), scores.argmin(axis=1))


def test_ols_matches_the_normal_equations(table_path):
  table = tabular.load_table(str(table_path), "y", split_column="split")
  raw = lambda s: table.x_scale.invert(table.splits[s].x)  # noqa: E731
  a = np.concatenate([raw("train"), np.ones((len(table.splits["train"]), 1))], axis=1)
  coef = np.linalg.solve(a.T @ a, a.T @ table.splits["train"].y_raw)
  expected = np.concatenate([raw("test"), np.ones((len(table.splits["test"]), 1))], 1) @ coef
  np.testing.assert_allclose(references.ols(table)["test"], expected, rtol=1e-4, atol=1e-4)


def test_hgb_row_or_its_note(table_path, tmp_path, monkeypatch):
  config = _config(table_path, methods=("reg",), seeds=(0,), references=("ols", "hgb"))
  table = tabular.load_table(str(table_path), "y", split_column="split")
  from regcls_jax.families.tabular import trainer

  monkeypatch.setattr(references, "hgb_available", lambda: False)
  rows, _, notes = trainer.reference_rows(config, table)
  assert [r["method"] for r in rows] == ["ols"] and "scikit-learn is not installed" in notes[0]
  monkeypatch.undo()
  if not references.hgb_available():
    return  # the row itself needs scikit-learn (in the test extra)
  rows, pred, notes = trainer.reference_rows(config, table)
  assert [r["method"] for r in rows] == ["ols", "hgb"] and not notes
  assert "learning_rate=" in rows[1]["params"]
  assert rows[1]["test_rmse"] < rows[0]["test_rmse"]  # trees fit the non-linear target


def _bad_tables(tmp_path):
  header = "a,b,y,split"
  good = ["1,2,3,train", "2,3,4,val", "3,4,5,test", "4,5,6,train"]
  cases = {
    "missing target": ([header, *good], dict(target="price"), "no target column 'price'"),
    "non-numeric": ([header, "x,2,3,train", *good[1:]], {}, "feature 'a' is 'x', not a number"),
    "NaN target": ([header, "1,2,nan,train", *good[1:]], {}, "target 'y' is missing or NaN"),
    "empty split": ([header, "1,2,3,train", "2,3,4,val"], {}, "the test split is empty"),
    "missing file": (None, {}, "no such file"),
  }
  for name, (lines, overrides, message) in cases.items():
    path = tmp_path / f"{name.replace(' ', '_')}.csv"
    if lines is not None:
      path.write_text("\n".join(lines) + "\n")
    yield name, path, overrides, message


def test_bad_tables_fail_in_one_line_and_write_nothing(tmp_path):
  for name, path, overrides, message in _bad_tables(tmp_path):
    config = _config(path)
    config.data.target = overrides.get("target", "y")
    workdir = tmp_path / f"w_{name.replace(' ', '_')}"
    with pytest.raises(common.DataError, match=message):
      families.train_and_evaluate(config, str(workdir))
    assert not workdir.exists(), name
  # Through main: exit status 2, the message on one line, no workdir.
  workdir = tmp_path / "w_main"
  out = _main(workdir, "--config=configs/tabular.py", f"--config.data.path={tmp_path}/none.csv",
              "--config.data.target=y")  # fmt: skip
  assert out.returncode == 2 and not workdir.exists()
  assert (
    out.stderr.strip().splitlines()[-1]
    == f"error: {tmp_path}/none.csv: no such file (config.data.path)"
  )


def test_feature_and_density_methods_reduce_to_reg_at_zero_weight(table_path, tmp_path):
  """RankSim (on the MLP's last hidden layer) with gamma 0 and DenseLoss with alpha 0 train
  exactly the reg models: same trunk, same batches, the same loss."""
  config = _config(table_path, methods=("reg", "ranksim", "dense"), seeds=(0,), epochs=10,
                   batch_size=128, references=())  # fmt: skip
  config.peers.ranksim_gamma = 0.0
  config.peers.dense_alpha = 0.0
  families.train_and_evaluate(config, str(tmp_path))
  rows = {r["method"]: r for r in _selected(tmp_path)}
  for method in ("ranksim", "dense"):
    np.testing.assert_allclose(
      float(rows[method]["val_rmse"]), float(rows["reg"]["val_rmse"]), rtol=1e-5
    )


def test_a_rerun_with_more_methods_resumes_and_a_changed_grid_refuses(
  table_path, tmp_path, monkeypatch
):
  small = dict(seeds=(0,), epochs=10, references=())
  families.train_and_evaluate(_config(table_path, methods=("reg",), **small), str(tmp_path))
  first = _selected(tmp_path)
  trained, train = [], program.train
  monkeypatch.setattr(program, "train", lambda s, *a: trained.append(s.objective) or train(s, *a))
  families.train_and_evaluate(
    _config(table_path, methods=("reg", "regcls"), **small), str(tmp_path)
  )
  assert trained == ["regcls"]  # reg's group came from the checkpoint
  again = _selected(tmp_path)
  assert again[0] == first[0] and [r["method"] for r in again] == ["reg", "regcls"]
  with pytest.raises(ValueError, match="config.epochs"):
    changed = _config(table_path, methods=("reg",), **{**small, "epochs": 20})
    families.train_and_evaluate(changed, str(tmp_path))
