"""Bad datasets: one-line errors naming the file and the problem; nothing left half-written."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import data_config

from regcls_jax.data import common, imdb_wiki, pipeline
from regcls_jax.train_lib.config import REPO_ROOT


def _prepare_fails(name, data_dir, tfds_dir, match):
  config = data_config(name, data_dir, tfds_dir)
  with pytest.raises(common.DataError, match=match) as info:
    pipeline.prepare(config.data)
  message = str(info.value)
  assert "\n" not in message
  left = [os.path.join(d, f) for d, _, fs in os.walk(tfds_dir) for f in fs]
  assert left == [], f"half-written files left behind: {left}"
  return message


def _edit_csv(path, fn):
  with open(path) as f:
    lines = f.read().splitlines()
  with open(path, "w") as f:
    f.write("\n".join(fn(lines)) + "\n")


def test_missing_directory(tmp_path):
  _prepare_fails("imdb_wiki", tmp_path / "nowhere", tmp_path / "tfds", "nowhere: IMDB-WIKI-DIR dir")


def test_missing_image(fixture_copy, tmp_path):
  d = fixture_copy("imdb_wiki")
  rel = open(d / "imdb_wiki.csv").read().splitlines()[3].split(",")[1]
  os.remove(d / rel)
  msg = _prepare_fails("imdb_wiki", d, tmp_path / "tfds", "missing image")
  assert rel in msg and "imdb_wiki.csv, line 4" in msg


def test_corrupt_image(fixture_copy, tmp_path):
  d = fixture_copy("imdb_wiki")
  rel = open(d / "imdb_wiki.csv").read().splitlines()[-1].split(",")[1]  # a test-split image
  with open(d / rel, "wb") as f:
    f.write(b"\xff\xd8 not a jpeg")
  assert rel in _prepare_fails("imdb_wiki", d, tmp_path / "tfds", "cannot decode image")


@pytest.mark.parametrize(
  "edit, match",
  [
    (lambda ls: ["age,file,split"] + ls[1:], "expected the header 'age,path,split'"),
    (lambda ls: ls[:2] + ["30,imdb_crop/x.jpg"] + ls[3:], "line 3: expected 3 columns"),
    (lambda ls: ls[:1] + ["nan" + ls[1][ls[1].index(",") :]] + ls[2:], "line 2: label 'nan'"),
    (lambda ls: ls[:1] + ["-3" + ls[1][ls[1].index(",") :]] + ls[2:], "label -3 outside"),
    (lambda ls: ls[:1] + ["old" + ls[1][ls[1].index(",") :]] + ls[2:], "'old' is not a number"),
    (lambda ls: [ln for ln in ls if not ln.endswith(",test")], "split 'test' is empty"),
    (lambda ls: ls[:1] + [ls[1].rsplit(",", 1)[0] + ",dev"] + ls[2:], "split 'dev' is not"),
    (lambda ls: ls[:3] + [ls[1]] + ls[3:], "line 4: duplicates line 2"),
    (
      lambda ls: ls[:1] + ["30,../outside.jpg,train"] + ls[1:],
      "line 2: path '../outside.jpg' leaves",
    ),
    (lambda ls: ls[:1] + ["30,/etc/passwd,train"] + ls[1:], "line 2: path '/etc/passwd' leaves"),
  ],
  ids=[
    "columns",
    "row-width",
    "nan",
    "negative",
    "non-numeric",
    "empty-split",
    "split-name",
    "duplicate-row",
    "parent-path",
    "absolute-path",
  ],
)
def test_bad_imdb_csv(fixture_copy, tmp_path, edit, match):
  d = fixture_copy("imdb_wiki")
  _edit_csv(d / "imdb_wiki.csv", edit)
  assert "imdb_wiki.csv" in _prepare_fails("imdb_wiki", d, tmp_path / "tfds", match)


def test_nyud2_bad_csv_and_mask(fixture_copy, tmp_path):
  d = fixture_copy("nyud2")
  np.save(d / "data" / "test_balanced_mask.npy", np.ones((6, 1, 10, 10), bool))
  _prepare_fails("nyud2", d, tmp_path / "tfds", r"test_balanced_mask.npy: expected a bool array")
  _edit_csv(d / "data" / "nyu2_test.csv", lambda ls: [ln + ",extra" for ln in ls])
  _prepare_fails("nyud2", d, tmp_path / "tfds", "nyu2_test.csv: expected 2 columns")


def test_nyud2_duplicate_row_and_outside_path(fixture_copy, tmp_path):
  d = fixture_copy("nyud2")
  csv_path = d / "data" / "nyu2_train.csv"
  original = csv_path.read_text()
  _edit_csv(csv_path, lambda ls: ls + ls[:1])
  _prepare_fails("nyud2", d, tmp_path / "tfds", r"nyu2_train.csv, line \d+: duplicates line 1")
  csv_path.write_text(original)
  _edit_csv(csv_path, lambda ls: ["../x.jpg,../x.png"] + ls)
  _prepare_fails("nyud2", d, tmp_path / "tfds", "line 1: path '../x.jpg' leaves the data directory")


def test_nyud2_test_depth_must_be_16_bit(fixture_copy, tmp_path):
  from PIL import Image

  d = fixture_copy("nyud2")
  depth = open(d / "data" / "nyu2_test.csv").read().splitlines()[0].split(",")[1]
  mm = np.asarray(Image.open(d / depth))
  Image.fromarray(np.clip(mm / 1000 / 10 * 255, 0, 255).astype(np.uint8)).save(d / depth)
  msg = _prepare_fails("nyud2", d, tmp_path / "tfds", "test depth must be a 16-bit millimetres PNG")
  assert depth in msg


def test_nyud2_corrupt_depth(fixture_copy, tmp_path):
  d = fixture_copy("nyud2")
  depth = open(d / "data" / "nyu2_train.csv").read().splitlines()[0].split(",")[1]
  with open(d / depth, "wb") as f:
    f.write(b"\x89PNG garbage")
  assert depth in _prepare_fails("nyud2", d, tmp_path / "tfds", "cannot decode image")


def test_breakfast_feature_width(fixture_copy, tmp_path):
  d = fixture_copy("breakfast")
  path = d / "features" / "P16_cam01_P16_tea.txt"
  lines = open(path).read().splitlines()
  lines[2] = " ".join(lines[2].split()[:63])
  open(path, "w").write("\n".join(lines) + "\n")
  msg = _prepare_fails("breakfast", d, tmp_path / "tfds", "line 3: expected 64 values, found 63")
  assert "P16_cam01_P16_tea.txt" in msg


def test_breakfast_non_numeric_and_row_count(fixture_copy, tmp_path):
  d = fixture_copy("breakfast")
  path = d / "features" / "P29_cam01_P29_milk.txt"
  text = open(path).read()
  open(path, "w").write(text.replace(text.split()[5], "abc", 1))
  _prepare_fails("breakfast", d, tmp_path / "tfds", "P29_cam01_P29_milk.txt: non-numeric")
  open(path, "w").write(text)
  gt = d / "groundTruth" / "P29_cam01_P29_milk.txt"
  open(gt, "a").write("SIL\n")
  _prepare_fails("breakfast", d, tmp_path / "tfds", "feature rows but .* ground-truth lines")


def test_breakfast_empty_group_and_bad_name(fixture_copy, tmp_path):
  d = fixture_copy("breakfast")
  for sub in ("features", "groundTruth"):
    for name in os.listdir(d / sub):
      if name.startswith("P42"):
        os.remove(d / sub / name)
  _prepare_fails("breakfast", d, tmp_path / "tfds", "split 's4' is empty")
  open(d / "features" / "P03_cam01_P03_lasagne.txt", "w").write("0\n")
  _prepare_fails("breakfast", d, tmp_path / "tfds", "P03_cam01_P03_lasagne.txt: expected a name")


def test_prepare_cli_prints_one_line_error(fixture_copy, tmp_path):
  d = fixture_copy("imdb_wiki")
  _edit_csv(d / "imdb_wiki.csv", lambda ls: ls[:1] + ["x" + ls[1][ls[1].index(",") :]] + ls[2:])
  cmd = [
    sys.executable, "-m", "regcls_jax.data.prepare", "--config=configs/imdbwiki.py",
    f"--config.data.data_dir={d}", f"--config.data.tfds_dir={tmp_path / 'tfds'}",
  ]  # fmt: skip
  out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
  assert out.returncode == 2
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "imdb_wiki.csv, line 2: label 'x' is not a number" in last
  assert "Traceback" not in out.stderr


def test_prepare_cli_summary(fixture_root, tmp_path):
  cmd = [
    sys.executable, "-m", "regcls_jax.data.prepare", "--config=configs/imdbwiki.py:k=10,balanced",
    f"--config.data.data_dir={fixture_root / 'imdb_wiki'}",
    f"--config.data.tfds_dir={tmp_path / 'tfds'}",
  ]  # fmt: skip
  out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert "split train: 64 examples" in out.stdout and "split test: 12 examples" in out.stdout
  assert "equalised (Eq. 12, rounded)" in out.stdout
  # The reference's classes: 10 uniform bins over ages 0-100, equalised with round; the fixture's
  # training ages give these edges (numpy over the CSV's ages, binning's own functions aside).
  with open(fixture_root / "imdb_wiki" / "imdb_wiki.csv") as f:
    ages = np.array([float(r.split(",")[0]) for r in f.read().split()[1:] if r.endswith("train")])
  counts = np.histogram(ages, bins=np.linspace(0, 100, 11))[0]
  first = np.argmax(counts > 0)
  counts, lower = counts[first:], np.concatenate([[0.0], np.linspace(0, 100, 11)[first + 1 :]])
  q = np.maximum(np.round(len(counts) * np.cumsum(counts) / counts.sum()) - 1, 0)
  ends = np.flatnonzero(np.append(q[1:] != q[:-1], True))
  want = np.concatenate([lower[:1], lower[ends + 1]])
  line = next(x for x in out.stdout.splitlines() if "classes:" in x)
  assert "over the fixed range [0, 100]" in line and line.startswith(f"  classes: {len(want) - 1} ")
  assert f"[0, 100]: [{', '.join(f'{v:.3f}' for v in want[:5])}" in line


def test_parallel_preparation_keeps_order_and_errors(tmp_path):
  """Large datasets decode over a spawned process pool: same order, same one-line errors."""
  good = [str(tmp_path / f"{i}.png") for i in range(6)]
  for i, p in enumerate(good):
    with open(p, "wb") as f:
      f.write(common.encode(np.full((4, 5), i * 40, np.uint8), "PNG"))
  load = imdb_wiki.load_face  # what IMDB-WIKI preparation maps over its images
  out = list(common.parallel_map(load, good, min_items=1))
  assert [round(common.decode(b).mean()) for b in out] == [0, 40, 80, 120, 160, 200]
  bad = good[:2] + [str(tmp_path / "missing.png")]
  with pytest.raises(common.DataError, match="missing.png: missing image"):
    list(common.parallel_map(load, bad, min_items=1))
