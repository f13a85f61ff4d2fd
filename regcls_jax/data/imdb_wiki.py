"""IMDB-WIKI-DIR (Yang et al., ICML 2021): face images with integer ages.

Published layout (``config.data.data_dir``, the TFDS manual dir)::

  imdb_wiki.csv            header ``age,path,split``; split in {train, val, test}
  imdb_crop/01/nm..._1968.jpg, wiki_crop/...   the face crops, paths relative to the dir

Preparation resizes every image to 224 x 224 (bilinear, aspect ratio not kept: the first step of
both the reference's train and eval transforms, so doing it once here changes nothing) and stores
it as a JPEG of quality 95 in ArrayRecord shards, in csv order. The re-encoding is the one lossy
step (pixel values move by about 1/255); it makes decoding cheap enough to feed a GPU.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from regcls_jax.data import common

NAME = "imdb_wiki_dir"
CSV = "imdb_wiki.csv"
COLUMNS = ("age", "path", "split")
SPLITS = ("train", "val", "test")
EXPECTED_SIZES = {"train": 191_509, "val": 11_022, "test": 11_022}
IMAGE_SIZE = 224
MAX_AGE = 200  # DIR keeps 0 <= age <= 200
CLASS_RANGE = (0.0, 100.0)  # the authors' cls edges: linspace(0, 100, K + 1) years
DataError = common.DataError


def read_meta(data_dir: str) -> dict[str, list[tuple[float, str]]]:
  """``{split: [(age, absolute image path), ...]}`` in csv order, checked.

  Raises:
    DataError: missing directory or csv, wrong header, bad age, unknown split, a duplicated
      row, an image path outside ``data_dir``, a missing image file, or an empty split.
  """
  common.require_dir(data_dir, "IMDB-WIKI-DIR")
  path = os.path.join(data_dir, CSV)
  out = {s: [] for s in SPLITS}
  rows = common.read_csv(path, COLUMNS)
  common.no_duplicates((rel for _, rel, _ in rows), path, 2, "image path")
  for line, (age, rel, split) in enumerate(rows, start=2):
    where = f"{path}, line {line}"
    value = common.parse_label(age, where, 0, MAX_AGE)
    if split not in out:
      raise DataError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
    image = common.path_inside(data_dir, rel, where)
    common.require_file(image, f"image (referenced at {where})")
    out[split].append((value, image))
  common.require_nonempty(out, path)
  return out


def load_face(path: str) -> bytes:
  """The stored form of one image: RGB, 224 x 224 bilinear, JPEG bytes."""
  image = common.load_image(path, "RGB").resize((IMAGE_SIZE, IMAGE_SIZE), resample=2)
  return common.encode(image, "JPEG")


class ImdbWikiDir(tfds.core.GeneratorBasedBuilder):
  """IMDB-WIKI-DIR as ArrayRecord shards: ``image`` uint8 [224, 224, 3], ``age``, ``path``."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Images resized to 224 x 224 and stored as JPEG (quality 95)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Download IMDB-WIKI's face crops (imdb_crop/, wiki_crop/) and DIR's imdb_wiki.csv "
    "(github.com/YyzHarry/imbalanced-regression, imdb-wiki-dir/README) into one directory and "
    "pass it as --config.data.data_dir."
  )

  def _info(self) -> tfds.core.DatasetInfo:
    description = "IMDB-WIKI-DIR age estimation (Yang et al., ICML 2021)."
    return common.image_target_info(self, description, IMAGE_SIZE, "age")

  def _split_generators(self, dl_manager):
    data_dir = os.fspath(dl_manager.manual_dir)
    meta = read_meta(data_dir)
    self.info.metadata["targets"] = {s: [a for a, _ in rows] for s, rows in meta.items()}
    common.check_sizes(NAME, {s: len(r) for s, r in meta.items()}, EXPECTED_SIZES)
    return {s: self._generate_examples(rows, data_dir) for s, rows in meta.items()}

  def _generate_examples(self, rows, data_dir):
    paths = [p for _, p in rows]
    for i, (data, (age, path)) in enumerate(zip(common.parallel_map(load_face, paths), rows)):
      yield i, {"image": data, "age": age, "path": os.path.relpath(path, data_dir)}


def source_files(data_dir: str) -> list[str]:
  """The files whose change means the prepared copy is stale."""
  common.require_dir(data_dir, "IMDB-WIKI-DIR")
  return [common.require_file(os.path.join(data_dir, CSV), "csv file")]
