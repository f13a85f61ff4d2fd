"""Your own images: any folder of images with a csv of their regression targets (beyond the paper).

Layout (``config.data.data_dir``, the TFDS manual dir)::

  labels.csv          header ``path,target`` or ``path,target,split``; split in {train, val, test}
  any/sub/dirs/x.jpg  the images (any format PIL reads), paths relative to the folder

Without a split column the rows are cut 60 / 20 / 20 into train / val / test by a permutation
with seed 0 (`tabular.split_rows`), the same on every run: seeds vary the models, never the
data. Preparation resizes every image to ``image_size`` squared (bilinear, aspect ratio not
kept, as IMDB-WIKI-DIR's transforms do) and stores it as JPEG (quality 95) in ArrayRecord
shards, in csv order within each split.

The models see standardised targets, ``(t - mean) / std`` of the training targets
(`standardiser`): any unit (years, dollars, metres) trains with the same learning rate. The
reports convert back to the target's units.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
import tensorflow_datasets as tfds

from regcls_jax.data import common, tabular

NAME = "regcls_image_folder"
CSV = "labels.csv"
COLUMNS = ("path", "target")
SPLITS = ("train", "val", "test")
SPLIT_SEED = 0
COMMON_SIZES = (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512)
DataError = common.DataError


def _header(path: str) -> tuple[str, ...]:
  rows = common.read_csv(path, None)
  header = tuple(rows[0]) if rows else ()
  if header not in (COLUMNS, (*COLUMNS, "split")):
    found = ",".join(header) if header else "an empty file"
    raise DataError(f"{path}: expected the header 'path,target' or 'path,target,split', found "
                    f"'{found}'")  # fmt: skip
  return header


def read_meta(data_dir: str) -> dict[str, list[tuple[float, str]]]:
  """``{split: [(target, absolute image path), ...]}``, checked.

  Raises:
    DataError: missing directory or csv, wrong header, a target that is not a finite number, an
      unknown split, a duplicated image, a path outside ``data_dir``, a missing image file, or
      an empty split.
  """
  common.require_dir(data_dir, "image")
  path = os.path.join(data_dir, CSV)
  header = _header(path)
  rows = common.read_csv(path, header)
  common.no_duplicates((row[0] for row in rows), path, 2, "image path")
  parsed = []
  for line, row in enumerate(rows, start=2):
    where = f"{path}, line {line}"
    target = common.parse_label(row[1], where, -np.inf, np.inf)
    split = row[2] if len(row) == 3 else ""
    if len(row) == 3 and split not in SPLITS:
      raise DataError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
    image = common.path_inside(data_dir, row[0], where)
    common.require_file(image, f"image (referenced at {where})")
    parsed.append((target, image, split))
  if len(header) == 3:
    out = {s: [(t, p) for t, p, split in parsed if split == s] for s in SPLITS}
  else:
    order = tabular.split_rows(len(parsed), SPLIT_SEED)
    out = {s: [parsed[i][:2] for i in order[s]] for s in SPLITS}
  for split, items in out.items():
    if not items:
      raise DataError(f"{path}: the {split} split is empty ({len(parsed)} rows in the file)")
  return out


def load_resized(path: str, size: int) -> bytes:
  """The stored form of one image: RGB, ``size`` x ``size`` bilinear, JPEG bytes."""
  image = common.load_image(path, "RGB").resize((size, size), resample=2)
  return common.encode(image, "JPEG")


@dataclasses.dataclass
class ImageFolderConfig(tfds.core.BuilderConfig):
  image_size: int = 224


class ImageFolder(tfds.core.GeneratorBasedBuilder):
  """A user's image folder as ArrayRecord shards: ``image`` uint8 [S, S, 3], ``target``,
  ``path``; one builder config per stored image size (``224px``, ...)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Images resized to image_size squared, stored as JPEG (quality 95)."}
  BUILDER_CONFIGS = [ImageFolderConfig(name=f"{n}px", image_size=n) for n in COMMON_SIZES]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Put labels.csv (path,target[,split]) beside the images and pass the folder as "
    "--config.data.data_dir."
  )

  def _info(self) -> tfds.core.DatasetInfo:
    description = "A folder of images with one regression target each (labels.csv)."
    return common.image_target_info(self, description, self.builder_config.image_size, "target")

  def _split_generators(self, dl_manager):
    data_dir = os.fspath(dl_manager.manual_dir)
    meta = read_meta(data_dir)
    self.info.metadata["targets"] = {s: [t for t, _ in rows] for s, rows in meta.items()}
    return {s: self._generate_examples(rows, data_dir) for s, rows in meta.items()}

  def _generate_examples(self, rows, data_dir):
    load = functools.partial(load_resized, size=self.builder_config.image_size)
    paths = [p for _, p in rows]
    for i, (data, (target, path)) in enumerate(zip(common.parallel_map(load, paths), rows)):
      yield i, {"image": data, "target": target, "path": os.path.relpath(path, data_dir)}


def builder_for(image_size: int):
  """The builder class bound to the config of ``image_size`` (`common.prepare` calls it with
  ``data_dir``); each size is its own prepared directory."""
  if image_size < 32:
    raise DataError(f"config.data.image_size: {image_size}; expected at least 32 (ResNet-50 "
                    "downsamples 32x)")  # fmt: skip
  config = f"{image_size}px"  # a registered config; another size is built on the fly
  if image_size not in COMMON_SIZES:
    config = ImageFolderConfig(name=config, image_size=image_size)
  return functools.partial(ImageFolder, config=config)


def standardiser(train_targets: np.ndarray) -> tabular.Standardiser:
  """The training targets' mean and std: the models' target units (std 1 if constant)."""
  return tabular.Standardiser.fit(np.asarray(train_targets, np.float64))


def source_files(data_dir: str) -> list[str]:
  """The files whose change means the prepared copy is stale."""
  common.require_dir(data_dir, "image")
  return [common.require_file(os.path.join(data_dir, CSV), "labels.csv")]
