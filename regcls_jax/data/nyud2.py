"""NYUD2-DIR (depth estimation; Hu et al.'s preprocessing of NYU Depth v2, DIR's test mask).

Published layout (``config.data.data_dir``; the csv paths start with ``data/`` and are resolved
against this directory)::

  data/nyu2_train.csv            no header: rgb path, depth path (50,688 pairs)
  data/nyu2_train/<scene>/<i>.jpg, <i>.png      RGB and 8-bit depth, metres = value / 255 * 10
  data/nyu2_test.csv             no header: rgb path, depth path (654 pairs)
  data/nyu2_test/<i>_colors.png, <i>_depth.png  RGB and 16-bit depth in millimetres
  data/test_balanced_mask.npy    bool [654, 1, 228, 304]: DIR's balanced test pixels

Splits: ``val`` is 1/5 of the training scene directories, picked with seed 0 (paper Sec. 3.2);
``train`` is the rest; ``test`` the test csv. Preparation applies the deterministic first step of
every transform, resizing so the short side is 240 (bilinear, both image and depth), and stores
the image as JPEG (quality 95) and the depth as a lossless 16-bit PNG in its original units with
the per-record ``depth_scale`` that turns them into metres.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from regcls_jax.data import common

NAME = "nyud2_dir"
TRAIN_CSV = "data/nyu2_train.csv"
TEST_CSV = "data/nyu2_test.csv"
MASK_FILE = "data/test_balanced_mask.npy"
SPLITS = ("train", "val", "test")
EXPECTED_SIZES = {"train+val": 50_688, "test": 654}
SHORT_SIDE = 240
CROP_HW = (228, 304)  # image and cls-target crop, H x W
TARGET_HW = (114, 152)  # regression target / network output, H x W
MAX_DEPTH = 10.0
CLASS_RANGE = (0.0, MAX_DEPTH)  # the authors' cls edges: linspace(0, 10, K + 1) metres
BIN_WIDTH = 0.1  # DIR's depth bins: bin = min(int(depth * 10), 99)
NUM_BINS = 100
TRAIN_SCALE = MAX_DEPTH / 255.0  # 8-bit training depth
TEST_SCALE = 1e-3  # 16-bit millimetres
VAL_FRACTION_SEED = 0
DataError = common.DataError


def center_crop(array: np.ndarray, hw: tuple[int, int] = CROP_HW) -> np.ndarray:
  """The centre ``hw`` (H, W) window of an ``[H', W', ...]`` array (the reference's CenterCrop)."""
  top, left = (array.shape[0] - hw[0]) // 2, (array.shape[1] - hw[1]) // 2
  return array[top : top + hw[0], left : left + hw[1]]


def depth_bins(depth_m: np.ndarray) -> np.ndarray:
  """DIR's 0.1 m depth bins, ``min(int(depth * 10), 99)``, as int32."""
  return np.minimum((np.asarray(depth_m) * 10).astype(np.int32), NUM_BINS - 1)


def _pairs(data_dir: str, csv_name: str) -> list[tuple[str, str]]:
  path = os.path.join(data_dir, csv_name)
  rows = common.read_csv(path, None)
  if rows and len(rows[0]) != 2:
    raise DataError(f"{path}: expected 2 columns (rgb path, depth path), found {len(rows[0])}")
  common.no_duplicates((rgb for rgb, _ in rows), path, 1, "rgb path")
  out = []
  for line, (rgb, depth) in enumerate(rows, start=1):
    where = f"referenced at {path}, line {line}"
    out.append(
      tuple(
        common.require_file(
          common.path_inside(data_dir, p, f"{path}, line {line}"), f"image ({where})"
        )
        for p in (rgb, depth)
      )
    )
  return out


def val_scenes(scenes: list[str]) -> set[str]:
  """The scene directories held out for validation, as the authors' depth code picks them: the
  last ``n - 4 n // 5`` of a ``numpy.random.RandomState(0)`` permutation of the n sorted
  training scenes (the first ``4 n // 5`` train)."""
  scenes = sorted(set(scenes))
  order = np.random.RandomState(VAL_FRACTION_SEED).permutation(len(scenes))
  return {scenes[i] for i in order[4 * len(scenes) // 5 :]}


def read_meta(data_dir: str) -> tuple[dict[str, list[tuple[str, str]]], np.ndarray]:
  """``({split: [(rgb path, depth path), ...]}, test mask bool [N_test, 228, 304])``, checked."""
  common.require_dir(data_dir, "NYUD2-DIR")
  train = _pairs(data_dir, TRAIN_CSV)
  scene = lambda pair: os.path.basename(os.path.dirname(pair[0]))
  held_out = val_scenes([scene(p) for p in train])
  splits = {
    "train": [p for p in train if scene(p) not in held_out],
    "val": [p for p in train if scene(p) in held_out],
    "test": _pairs(data_dir, TEST_CSV),
  }
  common.require_nonempty(splits, os.path.join(data_dir, TRAIN_CSV))
  mask_path = common.require_file(os.path.join(data_dir, MASK_FILE), "balanced test mask")
  try:
    mask = np.load(mask_path)
  except (OSError, ValueError) as e:
    raise DataError(f"{mask_path}: cannot read ({e})") from None
  want = (len(splits["test"]), 1, *CROP_HW)
  if mask.shape != want or mask.dtype != bool:
    raise DataError(f"{mask_path}: expected a bool array {want}, found {mask.dtype} {mask.shape}")
  return splits, mask[:, 0]


def _resize_short_side(image: Image.Image) -> Image.Image:
  w, h = image.size
  size = (
    (round(w * SHORT_SIDE / h), SHORT_SIDE) if h <= w else (SHORT_SIDE, round(h * SHORT_SIDE / w))
  )
  return image.resize(size, resample=Image.BILINEAR)


def load_pair(
  paths: tuple[str, str], test: bool | None = None
) -> tuple[bytes, bytes, float, np.ndarray]:
  """The stored form of one pair; ``test`` (when known) is whether it is a test pair, whose depth
  must be 16-bit millimetres (training depth is 8-bit, value / 255 * 10 m).

  Returns:
    (JPEG rgb bytes, 16-bit PNG depth bytes in source units, metres per unit, depth in metres
    ``[240, W]`` float32).
  """
  rgb_path, depth_path = paths
  rgb = common.load_image(rgb_path, "RGB")
  raw = common.load_image(depth_path)
  if raw.mode == "L":
    scale = TRAIN_SCALE
  elif raw.mode.startswith("I"):
    scale = TEST_SCALE
  else:
    raise DataError(f"{depth_path}: expected an 8- or 16-bit grey depth PNG, found mode {raw.mode}")
  if test is not None and test != (scale == TEST_SCALE):
    want, found = (
      ("16-bit millimetres", "8-bit") if test else ("8-bit (value / 255 * 10 m)", "16-bit")
    )
    split = "test" if test else "training"
    raise DataError(f"{depth_path}: {split} depth must be a {want} PNG, found {found}")
  if raw.size != rgb.size:
    raise DataError(f"{depth_path}: size {raw.size} differs from its image's {rgb.size}")
  depth = _resize_short_side(raw.convert("F"))
  units = np.clip(np.rint(np.asarray(depth)), 0, 65535).astype(np.uint16)
  rgb = _resize_short_side(rgb)
  return common.encode(rgb, "JPEG"), common.encode(units, "PNG"), scale, units * np.float32(scale)


def _load_with_stats(paths, test: bool | None = None):
  """`load_pair` plus the mean valid (> 0) depth and the count of each valid stored value."""
  rgb, depth, scale, metres = load_pair(paths, test)
  valid = metres[metres > 0]
  mean = float(valid.mean()) if valid.size else 0.0
  units = np.rint(metres / np.float32(scale)).astype(np.int64)
  return rgb, depth, scale, mean, np.bincount(units[units > 0], minlength=256)


class Nyud2Dir(tfds.core.GeneratorBasedBuilder):
  """NYUD2-DIR as ArrayRecord shards.

  Features: ``image`` uint8 [240, 320, 3]; ``depth`` 16-bit PNG bytes of [240, 320] in units of
  ``depth_scale`` metres; ``balanced_mask`` PNG bytes of the [228, 304] test pixel mask (empty
  for train/val); ``rgb_path``.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Short side resized to 240; depth kept lossless in source units."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Download NYUD2-DIR (github.com/YyzHarry/imbalanced-regression, nyud2-dir/README: "
    "download_nyud2.py) so that the directory holds data/nyu2_train.csv, data/nyu2_test.csv, "
    "data/test_balanced_mask.npy and the images, and pass it as --config.data.data_dir."
  )

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description="NYUD2-DIR depth estimation (Yang et al., ICML 2021; Hu et al. WACV 2019).",
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
          # 16-bit PNG bytes: TFDS decodes 16-bit images only with OpenCV, so the pipeline
          # decodes them itself (transforms.py).
          "depth": tfds.features.Tensor(shape=(), dtype=np.object_),
          "depth_scale": tfds.features.Scalar(np.float32),
          "balanced_mask": tfds.features.Tensor(shape=(), dtype=np.object_),
          "rgb_path": tfds.features.Text(),
        }
      ),
      disable_shuffling=True,
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    data_dir = os.fspath(dl_manager.manual_dir)
    splits, mask = read_meta(data_dir)
    common.check_sizes(
      NAME,
      {"train+val": len(splits["train"]) + len(splits["val"]), "test": len(splits["test"])},
      EXPECTED_SIZES,
    )
    # Filled in while generating: per-image mean depth (for samplers) and the count of every
    # 8-bit training depth value (fits classes exactly without reading the images again).
    self.info.metadata["targets"] = {}
    self.info.metadata["train_value_counts"] = []
    masks = {"test": mask}
    return {s: self._generate_examples(s, p, masks.get(s), data_dir) for s, p in splits.items()}

  def _generate_examples(self, split, pairs, mask, data_dir):
    means, counts = [], np.zeros(256, np.int64)
    for i, (rgb, depth, scale, mean, hist) in enumerate(
      common.parallel_map(functools.partial(_load_with_stats, test=split == "test"), pairs)
    ):
      means.append(mean)
      if split == "train":
        if hist.size > 256 or scale != TRAIN_SCALE:
          raise DataError(f"{pairs[i][1]}: training depth must be an 8-bit PNG (value/255*10 m)")
        counts += hist
      yield (
        i,
        {
          "image": rgb,
          "depth": depth,
          "depth_scale": scale,
          "balanced_mask": b"" if mask is None else common.encode(mask[i].astype(np.uint8), "PNG"),
          "rgb_path": os.path.relpath(pairs[i][0], data_dir),
        },
      )
    self.info.metadata["targets"][split] = means
    if split == "train":
      self.info.metadata["train_value_counts"] = counts.tolist()


def source_files(data_dir: str) -> list[str]:
  common.require_dir(data_dir, "NYUD2-DIR")
  return [
    common.require_file(os.path.join(data_dir, f), "csv file" if f.endswith("csv") else "mask")
    for f in (TRAIN_CSV, TEST_CSV, MASK_FILE)
  ]


def balanced_test_mask(depths_m: np.ndarray, seed: int = 0, first_bin: int = 7) -> np.ndarray:
  """DIR's balanced test mask for a test set: equal pixel counts in every 0.1 m bin >= 7.

  Keeps, in each bin from ``first_bin`` to 99 that has pixels, a random subset of the size of
  the smallest non-zero bin count; other pixels are masked out. (The published file for
  NYUD2-DIR's test set was made this way; this function makes one for fixtures and users' own
  test sets.)

  Args:
    depths_m: test depths in metres, ``[N, 228, 304]``.
    seed: numpy seed of the random subset.
    first_bin: the first bin that keeps pixels.

  Returns:
    bool ``[N, 1, 228, 304]``, the published file's shape.
  """
  bins = depth_bins(depths_m).ravel()
  valid = (bins >= first_bin) & (np.asarray(depths_m).ravel() > 0)
  counts = np.bincount(bins[valid], minlength=NUM_BINS)
  keep = counts[counts > 0].min() if np.any(counts > 0) else 0
  rng = np.random.RandomState(seed)
  mask = np.zeros(bins.size, bool)
  for b in np.flatnonzero(counts):
    idx = np.flatnonzero(valid & (bins == b))
    mask[rng.choice(idx, size=keep, replace=False)] = True
  return mask.reshape(np.shape(depths_m))[:, None]
