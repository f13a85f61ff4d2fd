"""What the three real-data loaders share: errors, file checks, image codecs, TFDS preparation.

A loader reads a dataset's published layout from a local directory (the TFDS "manual dir"),
checks it, and writes ArrayRecord shards with a `tfds.core.GeneratorBasedBuilder`. Everything a
user can get wrong surfaces as a `DataError` whose message is one line naming the file or field
and what was expected; a failed preparation leaves nothing behind in the TFDS data dir.
"""

from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import io
import math
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Sequence

import numpy as np
from absl import logging
from PIL import Image

DEFAULT_TFDS_DIR = os.path.join(os.path.expanduser("~"), ".cache", "regcls_jax", "tfds")
JPEG_QUALITY = 95


class DataError(ValueError):
  """Bad dataset on disk: the message is one line naming the file and what is wrong."""


def require_dir(path: str, what: str) -> str:
  if not path:
    raise DataError(f"config.data.data_dir is empty; set it to the {what} directory")
  if not os.path.isdir(path):
    raise DataError(f"{path}: {what} directory not found")
  return path


def require_file(path: str, what: str) -> str:
  if not os.path.isfile(path):
    raise DataError(f"{path}: missing {what}")
  return path


def path_inside(data_dir: str, rel: str, where: str) -> str:
  """``data_dir/rel``, refusing a path that leaves ``data_dir`` (absolute, or through ``..``)."""
  full = os.path.normpath(os.path.join(data_dir, rel))
  root = os.path.normpath(data_dir)
  if os.path.isabs(rel) or os.path.commonpath([root, full]) != root:
    raise DataError(f"{where}: path {rel!r} leaves the data directory {data_dir}")
  return full


def no_duplicates(keys, path: str, first_line: int, what: str) -> None:
  """Raises DataError naming both lines when one ``what`` appears twice in a csv file."""
  seen: dict[str, int] = {}
  for line, key in enumerate(keys, start=first_line):
    if key in seen:
      raise DataError(f"{path}, line {line}: duplicates line {seen[key]} (the same {what} {key!r})")
    seen[key] = line


def read_csv(path: str, columns: Sequence[str] | None) -> list[list[str]]:
  """Rows of a csv file; with ``columns`` the header must be exactly those names.

  Args:
    path: the csv file.
    columns: expected header, or None for a header-less file whose rows are returned as is.

  Returns:
    the data rows (without the header), each a list of stripped strings.
  """
  require_file(path, "csv file")
  with open(path, newline="") as f:
    rows = [[c.strip() for c in row] for row in csv.reader(f) if row]
  if columns is not None:
    if not rows or rows[0] != list(columns):
      got = ",".join(rows[0]) if rows else "an empty file"
      raise DataError(f"{path}: expected the header '{','.join(columns)}', found '{got}'")
    rows = rows[1:]
  width = len(columns) if columns is not None else (len(rows[0]) if rows else 0)
  for i, row in enumerate(rows):
    if len(row) != width:
      line = i + (2 if columns is not None else 1)
      raise DataError(f"{path}, line {line}: expected {width} columns, found {len(row)}")
  return rows


def parse_label(text: str, where: str, low: float = 0.0, high: float = math.inf) -> float:
  """A finite number in ``[low, high]``; ``where`` names the file and line for the error."""
  try:
    value = float(text)
  except ValueError:
    raise DataError(f"{where}: label {text!r} is not a number") from None
  if not math.isfinite(value):
    raise DataError(f"{where}: label {text!r} is not finite")
  if not low <= value <= high:
    raise DataError(f"{where}: label {value:g} outside the valid range [{low:g}, {high:g}]")
  return value


def load_image(path: str, mode: str | None = None) -> Image.Image:
  """Opens and fully decodes an image file (so truncated files fail here, with their name)."""
  require_file(path, "image")
  try:
    with Image.open(path) as im:
      im.load()
      return im.convert(mode) if mode else im.copy()
  except (OSError, SyntaxError, ValueError) as e:
    raise DataError(f"{path}: cannot decode image ({e})") from None


def encode(image: Image.Image | np.ndarray, fmt: str) -> bytes:
  """JPEG (quality 95) or PNG bytes of a PIL image or a uint8/uint16 array."""
  if isinstance(image, np.ndarray):
    image = Image.fromarray(image)
  buf = io.BytesIO()
  if fmt == "JPEG":
    image.save(buf, "JPEG", quality=JPEG_QUALITY)
  else:
    image.save(buf, fmt)
  return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
  """Inverse of `encode`: uint8 (or uint16 for 16-bit PNG) array, ``[H, W]`` or ``[H, W, C]``."""
  with Image.open(io.BytesIO(data)) as im:
    return np.asarray(im)


def parallel_map(fn, items: Sequence, min_items: int = 512) -> Iterator:
  """``map(fn, items)`` in order, over all cores for long inputs (image decoding at preparation).

  Worker processes are spawned, not forked (the parent may hold JAX's threads); ``fn`` must be
  a module-level function.
  """
  if len(items) < min_items:
    yield from map(fn, items)
    return
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(os.cpu_count(), mp_context=ctx) as pool:
    yield from pool.map(fn, items, chunksize=64)


def fingerprint(paths: Sequence[str]) -> str:
  """A short hash of the given files' names, sizes and modification times.

  Two copies of a dataset (the real one, a fixture) get different prepared directories, and an
  edited csv triggers a rebuild.
  """
  h = hashlib.sha1()
  for p in sorted(paths):
    # A missing file is reported by the preparation itself, with what referenced it.
    st = os.stat(p) if os.path.exists(p) else None
    stamp = f"{st.st_size}|{st.st_mtime_ns}" if st else "missing"
    h.update(f"{os.path.abspath(p)}|{stamp}\n".encode())
  return h.hexdigest()[:12]


def prepare(builder_cls, manual_dir: str, tfds_dir: str, source_files: Sequence[str]):
  """Builds (once) and returns the TFDS builder for the dataset in ``manual_dir``.

  The ArrayRecord shards go to ``tfds_dir/<fingerprint of source_files>/<name>/<version>``.
  TFDS writes into a temporary directory and renames it when done; on failure this also
  removes the directories created for the attempt, so nothing half-written stays behind.

  Returns:
    the prepared `tfds.core.GeneratorBasedBuilder`.
  """
  import tensorflow_datasets as tfds

  root = os.path.join(tfds_dir or DEFAULT_TFDS_DIR, fingerprint(source_files))
  created = not os.path.exists(root)
  builder = builder_cls(data_dir=root)
  if builder.is_prepared():
    return builder
  tfds.disable_progress_bar()
  logging.info("preparing %s from %s into %s", builder.name, manual_dir, root)
  try:
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir),
      file_format="array_record",
    )
  except BaseException:
    shutil.rmtree(root if created else builder.data_dir, ignore_errors=True)
    raise
  return builder


def image_target_info(builder, description: str, size: int, target: str):
  """The `tfds.core.DatasetInfo` of square JPEG images with one float32 target each and their
  relative paths, in csv order (IMDB-WIKI-DIR, an image folder): records stay aligned with
  ``metadata["targets"]``."""
  import tensorflow_datasets as tfds

  return tfds.core.DatasetInfo(
    builder=builder,
    description=description,
    features=tfds.features.FeaturesDict(
      {
        "image": tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
        target: tfds.features.Scalar(np.float32),
        "path": tfds.features.Text(),
      }
    ),
    disable_shuffling=True,
    metadata=tfds.core.MetadataDict(),
  )


def check_sizes(name: str, sizes: dict[str, int], expected: dict[str, int]) -> None:
  """Logs a warning for every split whose size differs from the published one."""
  for split, n in expected.items():
    if sizes.get(split, 0) != n:
      logging.warning(
        "%s: split %r has %d examples; the published dataset has %d (a subset, a fixture "
        "or a different version?)",
        name,
        split,
        sizes.get(split, 0),
        n,
      )


def require_nonempty(splits: dict[str, Sequence], where: str) -> None:
  for split, items in splits.items():
    if len(items) == 0:
      raise DataError(f"{where}: split {split!r} is empty")
