"""The image-folder experiment: the loader's checks, standardised targets, the grid through main
with selection on validation only."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from regcls_jax import families
from regcls_jax.data import common, fixtures, image_folder, pipeline, tabular
from regcls_jax.families.images import folder
from regcls_jax.method import metrics
from regcls_jax.train_lib.config import REPO_ROOT, load_config

ROWS = 200  # the fixture's images


@pytest.fixture(scope="module")
def folder_dir(tmp_path_factory):
  return fixtures.write("image_folder", str(tmp_path_factory.mktemp("folder") / "images"))


def _config(data_dir, tfds_dir, **overrides):
  config = load_config("configs/image_folder.py", "runlocal")
  config.unlock()
  config.data.data_dir, config.data.tfds_dir = str(data_dir), str(tfds_dir)
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def _read(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _csv_targets(data_dir):
  return np.array([float(r["target"]) for r in _read(os.path.join(data_dir, "labels.csv"))])


def test_split_without_a_column_is_the_seed_0_permutation_and_targets_are_standardised(
  folder_dir, tmp_path
):
  config = _config(folder_dir, tmp_path)
  builder = pipeline.prepare(config.data)
  t = _csv_targets(folder_dir)
  order = tabular.split_rows(ROWS, 0)
  for split in ("train", "val", "test"):
    assert builder.info.splits[split].num_examples == len(order[split])
  raw = np.asarray(builder.info.metadata["targets"]["test"])
  np.testing.assert_allclose(raw, t[order["test"]], rtol=1e-6)
  train = pipeline.targets(builder, config.data, "train")  # the models' units
  assert abs(train.mean()) < 1e-6 and abs(train.std() - 1) < 1e-6
  mean, std = t[order["train"]].mean(), t[order["train"]].std()
  loader = pipeline.make_loader(builder, config, "val", train=False)
  labels = np.concatenate([b["label"] for b in loader])
  np.testing.assert_allclose(labels * std + mean, t[order["val"]], rtol=1e-4)
  batch = next(iter(pipeline.make_loader(builder, config, "train", classes=None)))
  assert batch["image"].shape == (16, 64, 64, 3) and batch["image"].dtype == np.uint8
  # the classes span the training range (in standardised units)
  edges, _ = pipeline.fit_classes(builder, config)
  assert edges[0] == pytest.approx(train.min()) and edges[-1] == pytest.approx(train.max())


def test_a_split_column_is_followed(folder_dir, tmp_path):
  data = tmp_path / "data"
  shutil.copytree(folder_dir, data)
  rows = _read(data / "labels.csv")
  with open(data / "labels.csv", "w") as f:
    f.write("path,target,split\n")
    for i, r in enumerate(rows):
      f.write(f"{r['path']},{r['target']},{('train', 'val', 'test')[min(i % 5, 2)]}\n")
  meta = image_folder.read_meta(str(data))
  assert [len(meta[s]) for s in ("train", "val", "test")] == [40, 40, 120]
  assert meta["val"][0][0] == pytest.approx(float(rows[1]["target"]))


@pytest.mark.parametrize(
  "edit, message",
  [
    (lambda lines: ["path,value", *lines[1:]], "expected the header 'path,target'"),
    (lambda lines: [lines[0], "images/0/img_0000.png,abc", *lines[2:]], "'abc' is not a number"),
    (lambda lines: [lines[0], "images/0/img_0000.png,nan", *lines[2:]], "'nan' is not finite"),
    (lambda lines: [lines[0], "images/0/missing.png,3.0", *lines[2:]], "missing image"),
    (lambda lines: lines[:3], "the val split is empty"),
    (
      lambda lines: [lines[0] + ",split", *(x + ",train" for x in lines[1:])],
      "the val split is empty \\(200 rows",
    ),
  ],
  ids=["header", "non-numeric", "nan", "missing-image", "tiny", "empty-split"],
)
def test_bad_folders_raise_one_line_naming_the_problem(folder_dir, tmp_path, edit, message):
  data = tmp_path / "data"
  shutil.copytree(folder_dir, data)
  path = data / "labels.csv"
  path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
  with pytest.raises(common.DataError, match=message) as e:
    image_folder.read_meta(str(data))
  assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_a_missing_csv_through_main_exits_2_with_one_line_and_writes_nothing(tmp_path):
  (tmp_path / "data").mkdir()
  workdir = tmp_path / "w"
  cmd = [
    sys.executable, "-m", "regcls_jax.main", "--config=configs/image_folder.py",
    f"--config.data.data_dir={tmp_path / 'data'}", f"--config.data.tfds_dir={tmp_path / 't'}",
    f"--workdir={workdir}",
  ]  # fmt: skip
  out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode == 2
  assert (
    out.stderr.strip().splitlines()[-1]
    == f"error: {tmp_path / 'data' / 'labels.csv'}: missing labels.csv"
  )
  assert not workdir.exists() and not (tmp_path / "t").exists()


def test_unknown_grid_method_names_the_key(folder_dir, tmp_path):
  config = _config(folder_dir, tmp_path, **{"grid.methods": ("reg", "fds")})
  with pytest.raises(ValueError, match="config.grid.methods"):
    families.train_and_evaluate(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def test_grid_trains_selects_on_val_and_a_corrupted_test_split_keeps_the_selection(
  folder_dir, tmp_path
):
  """reg and reg+cls (lambda 1 or 10) x 2 seeds, 6 epochs; selection from validation only."""
  config = _config(folder_dir, tmp_path / "tfds", **{"grid.lams": (1.0, 10.0)})
  workdir = str(tmp_path / "w")
  families.train_and_evaluate(config, workdir)
  for name in ("selected.csv", "summary.md", "shots.png", "candidates.csv", "config.json"):
    assert os.path.isfile(os.path.join(workdir, name)), name
  candidates = _read(os.path.join(workdir, "candidates.csv"))
  assert len(candidates) == 2 + 4
  selected = _read(os.path.join(workdir, "selected.csv"))
  assert [(r["method"], r["seed"]) for r in selected] == [
    ("reg", "0"), ("reg", "1"), ("regcls", "0"), ("regcls", "1"),
  ]  # fmt: skip
  t = _csv_targets(folder_dir)
  test_rows = tabular.split_rows(ROWS, 0)["test"]
  train_mean = t[tabular.split_rows(ROWS, 0)["train"]].mean()
  constant = math.sqrt(np.mean((t[test_rows] - train_mean) ** 2))
  for row in selected:
    mine = [c for c in candidates if (c["method"], c["seed"]) == (row["method"], row["seed"])]
    best = min(mine, key=lambda c: float(c["val_rmse"]))
    assert (row["num_classes"], row["lam"]) == (best["num_classes"], best["lam"])
    assert float(row["val_rmse"]) == pytest.approx(float(best["val_rmse"]), rel=1e-5)
    with np.load(os.path.join(workdir, "runs", best["run"], "predictions_test.npz")) as f:
      np.testing.assert_allclose(f["label"], t[test_rows], rtol=1e-5)  # the target's units
      rmse = math.sqrt(np.mean((f["pred"] - f["label"]) ** 2))
    assert float(row["test_rmse"]) == pytest.approx(rmse, rel=1e-5)
    if row["method"] == "reg":
      assert rmse < 0.7 * constant, (rmse, constant)  # it learns
  # summary.md's verdict line is the paired t interval of the per-seed differences
  reg = {r["seed"]: float(r["test_rmse"]) for r in selected if r["method"] == "reg"}
  diffs = [float(r["test_rmse"]) - reg[r["seed"]] for r in selected if r["method"] == "regcls"]
  mean, lo, hi = metrics.paired_interval(diffs)
  text = open(os.path.join(workdir, "summary.md")).read()
  assert f"({mean:+.4g}, interval {lo:+.4g} .. {hi:+.4g}, 2 seeds)" in text
  assert "| reg | - | - |" in text

  # Corrupt the test targets (a new csv: a new prepared copy), then evaluate from the checkpoints.
  lines = open(os.path.join(folder_dir, "labels.csv")).read().splitlines()
  for i in test_rows:
    path, target = lines[i + 1].split(",")
    lines[i + 1] = f"{path},{-3 * float(target)}"
  corrupted = tmp_path / "corrupted"
  shutil.copytree(folder_dir, corrupted)
  (corrupted / "labels.csv").write_text("\n".join(lines) + "\n")
  saved = json.load(open(os.path.join(workdir, "config.json")))
  saved["data"]["data_dir"] = str(corrupted)
  import ml_collections

  families.evaluate(ml_collections.ConfigDict(saved), workdir)
  again = _read(os.path.join(workdir, "selected_eval.csv"))
  keys = ("method", "seed", "num_classes", "lam", "epochs")
  assert [[r[k] for k in keys] for r in again] == [[r[k] for k in keys] for r in selected]
  for a, b in zip(again, selected):
    assert float(a["val_rmse"]) == pytest.approx(float(b["val_rmse"]), rel=1e-5)
    assert float(a["test_rmse"]) > 3 * float(b["test_rmse"])


def test_plan_names_every_run_once():
  config = load_config("configs/image_folder.py")
  runs = folder.plan_runs(config)
  assert len(runs) == 3 + 2 * 2 * 3 * 3 == len({r.name for r in runs})
  assert {r.objective for r in runs} == {"reg", "regcls"}
  c = folder.run_config(config, folder.Run("regcls_bal", 100, 10.0, 2))
  assert (c.method, c.balanced, c.num_classes, c.lam, c.seed, c.data.seed) == (
    "regcls", True, 100, 10.0, 2, 2,
  )  # fmt: skip
