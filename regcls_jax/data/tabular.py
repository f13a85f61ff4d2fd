"""A user's own table: numeric features, one target column, train / val / test splits.

`load_table(path, target, ...)` reads a CSV (or Parquet where pyarrow is installed) and returns
a `Table`: float32 feature and target arrays per split, standardised with the TRAINING split's
mean and std (`Standardiser`, kept to map predictions back to target units). Splits come from a
split column (values ``train`` / ``val`` / ``test``) or, without one, from a seeded 60 / 20 / 20
permutation of the rows.

Bad input raises `common.DataError` with one line naming the file and the column or split:
a missing file, a missing target or split column, a non-numeric feature, a missing or NaN
target, an empty split.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Sequence

import numpy as np

from regcls_jax.data.common import DataError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


@dataclasses.dataclass(frozen=True)
class Standardiser:
  """``(v - mean) / std`` per column, fitted on the training split (std 0 becomes 1)."""

  mean: np.ndarray
  std: np.ndarray

  @classmethod
  def fit(cls, values: np.ndarray) -> Standardiser:
    values = np.asarray(values, np.float64)
    std = values.std(axis=0)
    return cls(values.mean(axis=0), np.where(std > 0, std, 1.0))

  def apply(self, values: np.ndarray) -> np.ndarray:
    return ((np.asarray(values, np.float64) - self.mean) / self.std).astype(np.float32)

  def invert(self, values: np.ndarray) -> np.ndarray:
    return np.asarray(values, np.float64) * self.std + self.mean


@dataclasses.dataclass(frozen=True)
class Split:
  x: np.ndarray  # float32 [n, d], standardised
  y: np.ndarray  # float32 [n], standardised
  y_raw: np.ndarray  # float64 [n], in the target's units
  rows: np.ndarray  # int64 [n]: the rows of the file (0 = first data row)

  def __len__(self) -> int:
    return len(self.y)


@dataclasses.dataclass(frozen=True)
class Table:
  path: str
  target: str
  features: tuple[str, ...]
  splits: dict[str, Split]
  x_scale: Standardiser
  y_scale: Standardiser


def _read_columns(path: str) -> dict[str, list[str] | np.ndarray]:
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file (config.data.path)")
  if path.endswith((".parquet", ".pq")):
    try:
      import pyarrow.parquet as pq
    except ImportError as e:
      raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
    table = pq.read_table(path)
    return {name: table.column(name).to_pylist() for name in table.column_names}
  with open(path, newline="") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    if not header:
      raise DataError(f"{path}: empty file; expected a header row of column names")
    columns: dict[str, list[str]] = {name: [] for name in header}
    for line, row in enumerate(reader, start=2):
      if not row:
        continue
      if len(row) != len(header):
        raise DataError(f"{path}, line {line}: {len(row)} fields; the header has {len(header)}")
      for name, value in zip(header, row):
        columns[name].append(value)
  return columns


def _numeric(path: str, name: str, values, what: str) -> np.ndarray:
  out = np.empty(len(values), np.float64)
  for i, v in enumerate(values):
    try:
      out[i] = math.nan if v is None or v == "" else float(v)
    except (TypeError, ValueError):
      raise DataError(f"{path}, line {i + 2}: {what} {name!r} is {v!r}, not a number") from None
  return out


def split_rows(n: int, seed: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict:
  """A seeded permutation of ``n`` rows cut into train / val / test by ``fractions``."""
  order = np.random.default_rng(seed).permutation(n)
  n_train = int(round(fractions[0] * n))
  n_val = int(round(fractions[1] * n))
  return {
    "train": np.sort(order[:n_train]),
    "val": np.sort(order[n_train : n_train + n_val]),
    "test": np.sort(order[n_train + n_val :]),
  }


def load_table(
  path: str,
  target: str,
  features: Sequence[str] = (),
  split_column: str = "",
  seed: int = 0,
) -> Table:
  """Reads, checks, splits and standardises a table.

  Args:
    path: a ``.csv`` (or ``.parquet``) file with a header row.
    target: the target column.
    features: the feature columns; empty: every column but the target and the split column.
    split_column: a column of ``train`` / ``val`` / ``test``; empty: a seeded 60 / 20 / 20 split.
    seed: the split's seed.
  """
  columns = _read_columns(path)
  if target not in columns:
    raise DataError(f"{path}: no target column {target!r}; the columns are {sorted(columns)}")
  if split_column and split_column not in columns:
    raise DataError(f"{path}: no split column {split_column!r}; the columns are {sorted(columns)}")
  names = tuple(features) or tuple(c for c in columns if c not in (target, split_column))
  for name in names:
    if name not in columns:
      raise DataError(f"{path}: no feature column {name!r}; the columns are {sorted(columns)}")
  if not names:
    raise DataError(f"{path}: no feature columns besides the target {target!r}")
  y = _numeric(path, target, columns[target], "target")
  bad = np.flatnonzero(~np.isfinite(y))
  if bad.size:
    raise DataError(f"{path}, line {bad[0] + 2}: target {target!r} is missing or NaN")
  x = np.stack([_numeric(path, n, columns[n], "feature") for n in names], axis=1)
  bad_rows, bad_cols = np.nonzero(~np.isfinite(x))
  if bad_rows.size:
    raise DataError(
      f"{path}, line {bad_rows[0] + 2}: feature {names[bad_cols[0]]!r} is missing or NaN"
    )
  if split_column:
    labels = [str(v).strip() for v in columns[split_column]]
    unknown = sorted(set(labels) - set(SPLITS))
    if unknown:
      raise DataError(
        f"{path}: split column {split_column!r} holds {unknown[:3]}; expected train, val, test"
      )
    labels = np.asarray(labels)
    rows = {s: np.flatnonzero(labels == s) for s in SPLITS}
  else:
    rows = split_rows(len(y), seed)
  for name, r in rows.items():
    if not r.size:
      raise DataError(f"{path}: the {name} split is empty ({len(y)} rows in the file)")
  x_scale = Standardiser.fit(x[rows["train"]])
  y_scale = Standardiser.fit(y[rows["train"]])
  splits = {
    name: Split(x_scale.apply(x[r]), y_scale.apply(y[r]), y[r], r.astype(np.int64))
    for name, r in rows.items()
  }
  return Table(path, target, names, splits, x_scale, y_scale)
