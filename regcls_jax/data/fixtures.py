"""Tiny datasets in the exact published layouts of IMDB-WIKI-DIR, NYUD2-DIR and Breakfast, and a
user's table (the tabular family) and image folder (the image-folder experiment).

``python -m regcls_jax.data.fixtures --dataset=imdb_wiki --out=/tmp/imdb_wiki``

Each has tens of samples with a deliberately imbalanced label distribution (most labels in a
narrow range, a few far away), and inputs that carry the label (image brightness grows with age
and with depth, features 0-7 with progress) so a model can learn something in a few steps. The
tests, the configs' ``runlocal`` variants and the notebooks run the whole pipeline on them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import numpy as np
from absl import app, flags

from regcls_jax.data import breakfast, common, nyud2

DATASETS = ("imdb_wiki", "nyud2", "breakfast", "tabular", "image_folder")
# Where a config's ``data.fixture`` (the ``runlocal`` variants) finds its fixture.
FIXTURE_ROOT = os.path.join(os.path.expanduser("~"), ".cache", "regcls_jax", "fixtures")
TABLE_FILE = "table.csv"  # the tabular fixture's file


def _save(path: str, array: np.ndarray, fmt: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(common.encode(array, fmt))


def _imbalanced(rng, n: int, low: float, high: float, peak: float, width: float) -> np.ndarray:
  """80% of the labels in ``peak +- width``, the rest uniform in ``[low, high]``."""
  in_peak = rng.random(n) < 0.8
  return np.where(in_peak, rng.uniform(peak - width, peak + width, n), rng.uniform(low, high, n))


def write_imdb_wiki(out: str, seed: int = 0) -> None:
  """64 train / 12 val / 12 test faces; ages peak at 25-35; val/test are spread evenly."""
  rng = np.random.default_rng(seed)
  ages = {
    "train": np.rint(_imbalanced(rng, 64, 1, 90, 30, 5)).astype(int),
    "val": np.linspace(5, 85, 12).round().astype(int),
    "test": np.linspace(8, 88, 12).round().astype(int),
  }
  rows = ["age,path,split"]
  for split, split_ages in ages.items():
    for i, age in enumerate(split_ages):
      crop = "imdb_crop" if i % 3 else "wiki_crop"
      rel = f"{crop}/{i % 7:02d}/nm{seed:02d}{i:05d}_{split}_{1990 - age}-1-1_1990.jpg"
      h, w = rng.integers(40, 72, size=2)
      face = np.clip(age * 2.5 + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
      if i == 5:  # some IMDB-WIKI crops are greyscale: the loader must convert them
        face = face[..., 0]
      _save(os.path.join(out, rel), face, "JPEG")
      rows.append(f"{age},{rel},{split}")
  with open(os.path.join(out, "imdb_wiki.csv"), "w") as f:
    f.write("\n".join(rows) + "\n")


def _depth_scene(rng, mean_m: float, h: int, w: int) -> np.ndarray:
  """A depth map in metres: a tilted plane around ``mean_m`` with noise, within (0, 10)."""
  ramp = np.linspace(-0.5, 0.5, h)[:, None] + np.linspace(-0.3, 0.3, w)[None]
  return np.clip(mean_m * (1 + ramp) + rng.normal(0, 0.05, (h, w)), 0.2, 9.9)


def write_nyud2(out: str, seed: int = 0, size: tuple[int, int] = (120, 160)) -> None:
  """5 training scenes x 4 pairs (depths mostly 1.5-3 m), 6 test pairs, the balanced mask."""
  rng = np.random.default_rng(seed)
  h, w = size
  train_rows, test_rows = [], []
  scenes = ["bedroom_0001_out", "kitchen_0002_out", "office_0003_out", "bathroom_0004_out"]
  scenes.append("living_room_0005_out")
  for scene in scenes:
    for i in range(4):
      depth = _depth_scene(rng, float(_imbalanced(rng, 1, 1.0, 8.0, 2.2, 0.7)[0]), h, w)
      rgb = np.clip(depth[..., None] * 25 + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
      base = f"data/nyu2_train/{scene}/{i + 1}"
      _save(os.path.join(out, base + ".jpg"), rgb, "JPEG")
      _save(os.path.join(out, base + ".png"), np.rint(depth / 10 * 255).astype(np.uint8), "PNG")
      train_rows.append(f"{base}.jpg,{base}.png")
  test_depths = []
  for i in range(6):
    depth = _depth_scene(rng, 1.0 + 1.4 * i, h, w)
    rgb = np.clip(depth[..., None] * 25 + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
    base = f"data/nyu2_test/{i:05d}"
    _save(os.path.join(out, base + "_colors.png"), rgb, "PNG")
    _save(os.path.join(out, base + "_depth.png"), np.rint(depth * 1000).astype(np.uint16), "PNG")
    test_rows.append(f"{base}_colors.png,{base}_depth.png")
    # The mask is defined on the test transform's crop of the stored (resized) depth.
    stored = nyud2.load_pair(
      (os.path.join(out, base + "_colors.png"), os.path.join(out, base + "_depth.png"))
    )[3]
    test_depths.append(nyud2.center_crop(stored))
  for name, rows in ((nyud2.TRAIN_CSV, train_rows), (nyud2.TEST_CSV, test_rows)):
    with open(os.path.join(out, name), "w") as f:
      f.write("\n".join(rows) + "\n")
  np.save(os.path.join(out, nyud2.MASK_FILE), nyud2.balanced_test_mask(np.stack(test_depths)))


ACTIONS = ("SIL", "take_cup", "pour_milk", "stir", "take_bowl", "pour_cereals", "crack_egg")


def write_breakfast(out: str, seed: int = 0) -> None:
  """One participant per test group, every activity once: 40 videos of 6-40 frames."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(out, "mapping"))
  with open(os.path.join(out, "mapping", "mapping.txt"), "w") as f:
    f.write("".join(f"{i} {a}\n" for i, a in enumerate(ACTIONS)))
  persons = [lo for lo, _ in breakfast.GROUPS.values()]
  for person in persons:
    for a, activity in enumerate(breakfast.ACTIVITIES):
      n = int(rng.integers(6, 16) if a % 4 else rng.integers(30, 41))  # imbalanced lengths
      progress = np.arange(n) / n
      # Features 0-7 carry the progress, the other 56 are small noise: tens of training frames
      # per model, so unrelated features of unit scale would be fitted instead of progress.
      feats = rng.normal(0, 0.2, (n, breakfast.FEATURE_DIM))
      feats[:, :8] = 4 * progress[:, None] - 2 + rng.normal(0, 0.1, (n, 8))
      name = f"P{person:02d}_cam01_P{person:02d}_{activity}.txt"
      for sub, lines in (
        ("features", [" ".join(f"{v:.5f}" for v in row) for row in feats]),
        ("groundTruth", [ACTIONS[min(int(p * len(ACTIONS)), len(ACTIONS) - 1)] for p in progress]),
      ):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        with open(os.path.join(out, sub, name), "w") as f:
          f.write("\n".join(lines) + "\n")


def write_tabular(out: str, seed: int = 0, rows: int = 3000) -> None:
  """``table.csv``: 6 numeric features, a long-tailed target ``y`` (no split column).

  ``y = exp(0.6 x0 + 0.3 x1) + 0.5 sin(2 x2) + 0.3 x3^2 + noise`` with standard normal features
  (x4, x5 carry nothing): most targets lie near 1, a tail of few large ones, and a non-linear
  map that an MLP fits better than least squares.
  """
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(rows, 6))
  y = np.exp(0.6 * x[:, 0] + 0.3 * x[:, 1]) + 0.5 * np.sin(2 * x[:, 2]) + 0.3 * x[:, 3] ** 2
  y += rng.normal(0, 0.1, rows)
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, TABLE_FILE), "w") as f:
    f.write(",".join([f"x{i}" for i in range(6)] + ["y"]) + "\n")
    f.writelines(",".join(f"{v:.6g}" for v in (*r, t)) + "\n" for r, t in zip(x, y))


def write_image_folder(out: str, seed: int = 0, rows: int = 200) -> None:
  """``labels.csv`` (path,target; no split column) and ``rows`` images of 40-80 pixels in
  sub-folders, JPEG and PNG, one greyscale: a long-tailed target (log-normal around 10) that
  the image's brightness carries (it grows with the log of the target)."""
  rng = np.random.default_rng(seed)
  targets = 10.0 * np.exp(rng.normal(0.0, 0.6, rows))
  lines = ["path,target"]
  for i, t in enumerate(targets):
    h, w = rng.integers(40, 80, size=2)
    level = 128 + 60 * np.log(t / 10.0)
    image = np.clip(level + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
    if i == 3:
      image = image[..., 0]
    ext = "png" if i % 4 == 0 else "jpg"
    rel = f"images/{i % 5}/img_{i:04d}.{ext}"
    _save(os.path.join(out, rel), image, "PNG" if ext == "png" else "JPEG")
    lines.append(f"{rel},{t:.6g}")
  with open(os.path.join(out, "labels.csv"), "w") as f:
    f.write("\n".join(lines) + "\n")


WRITERS = {
  "imdb_wiki": write_imdb_wiki,
  "image_folder": write_image_folder,
  "nyud2": write_nyud2,
  "breakfast": write_breakfast,
  "tabular": write_tabular,
}


def write(dataset: str, out: str, seed: int = 0) -> str:
  """Writes the fixture for ``dataset`` to ``out`` (which must not exist yet) atomically.

  Returns:
    ``out``.
  """
  if dataset not in WRITERS:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
  if os.path.exists(out) and os.listdir(out):
    raise ValueError(f"{out}: exists and is not empty; choose a new directory")
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".fixture-", dir=parent)
  try:
    WRITERS[dataset](tmp, seed)
    if os.path.exists(out):
      os.rmdir(out)
    os.rename(tmp, out)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return out


def cached(dataset: str) -> str:
  """The fixture directory of ``dataset`` under `FIXTURE_ROOT`, written when missing."""
  path = os.path.join(FIXTURE_ROOT, dataset)
  if not os.path.isdir(path):
    write(dataset, path)
  return path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  flags_ = flags.FLAGS
  try:
    print(write(flags_.dataset, flags_.out, flags_.seed))
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  # Flags are defined here, not at import, so that importing this module (the pipeline does)
  # never clashes with another program's flags.
  flags.DEFINE_enum("dataset", None, DATASETS, "Which dataset's layout to write.")
  flags.DEFINE_string("out", None, "Directory to create.")
  flags.DEFINE_integer("seed", 0, "Random seed of the fixture's contents.")
  flags.mark_flags_as_required(["dataset", "out"])
  app.run(main)
