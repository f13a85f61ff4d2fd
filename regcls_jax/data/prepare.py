"""Prepare a real dataset once and print what the pipeline will see.

  python -m regcls_jax.data.prepare --config=configs/imdbwiki.py --config.data.data_dir=DIR

Checks the layout in ``config.data.data_dir``, writes the ArrayRecord shards (under
``config.data.tfds_dir``), and prints the split sizes, the training-target range, the classes
of ``config.num_classes`` (uniform, or Eq. 12 / 13 with ``balanced``) and the re-sampling, if
any. Bad data gives one line ``error: <file>: <what is wrong>`` and exit status 2.

``--plot_classes=PATH`` also draws paper Fig. 8 for the dataset (`class_plot`): the training
distribution, the keep probabilities of 100 equalised classes and the re-balanced
distribution.
"""

from __future__ import annotations

import sys

import numpy as np
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "A real-data config (configs/*.py).")
_PLOT = flags.DEFINE_string(
  "plot_classes", None, "Write paper Fig. 8 (training distribution, keep probabilities of 100 "
  "equalised classes, re-balanced distribution) to this PNG."
)  # fmt: skip


def _short(values: np.ndarray, ends: int = 5) -> str:
  """``[a, b, c, ..., y, z]`` with 3 decimals: long class lists stay on one readable line."""
  v = [f"{x:.3f}" for x in values]
  return "[" + ", ".join(v if len(v) <= 2 * ends else [*v[:ends], "...", *v[-ends:]]) + "]"


def summary(config) -> str:
  """The text this command prints (also what tests check)."""
  from regcls_jax.data import pipeline

  builder = pipeline.prepare(config.data)
  lines = [f"{builder.info.full_name} prepared in {builder.data_dir}"]
  for name, split in builder.info.splits.items():
    lines.append(f"  split {name}: {split.num_examples} examples")
  edges, keep = pipeline.fit_classes(builder, config)
  if config.data.name != "nyud2":
    scale = pipeline.target_scale(builder, config.data)  # an image folder's are standardised
    t = scale.invert(pipeline.targets(builder, config.data, "train"))
    lines.append(f"  train targets: min {t.min():g}, mean {t.mean():g}, max {t.max():g}")
  kind = (
    "equalised (Eq. 12, rounded), keep probabilities (Eq. 13)" if config.balanced else "uniform"
  )
  low, high = pipeline.class_range(config.data, pipeline.training_targets(builder, config.data)[0])
  lines.append(
    f"  classes: {len(keep)} {kind}; edges over the fixed range [{low:g}, {high:g}]: "
    f"{_short(edges)}"
  )
  if config.balanced:
    lines.append(f"  keep probabilities: {_short(keep)}")
  if config.data.sampling != "none":
    n = len(pipeline.make_sampler(builder, config.data, "train", train=True))
    lines.append(f"  re-sampling: {config.data.sampling}, {n} draws")
  return "\n".join(lines)


def plot(config, path: str) -> str:
  """Fig. 8 of the dataset's training targets (`class_plot.plot_classes`); returns a line to
  print."""
  from regcls_jax.data import class_plot, pipeline

  builder = pipeline.prepare(config.data)
  values, counts = pipeline.training_targets(builder, config.data)
  value_range = pipeline.class_range(config.data, values)
  title = f"{builder.info.full_name}: training targets and 100 equalised classes"
  _, keep = class_plot.plot_classes(values, counts, value_range, "round", title, path)
  return f"  Fig. 8 ({len(keep)} equalised classes) written to {path}"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _CONFIG.value is None:
    print("error: --config is required (e.g. --config=configs/imdbwiki.py)", file=sys.stderr)
    sys.exit(2)
  try:
    print(summary(_CONFIG.value))
    if _PLOT.value:
      print(plot(_CONFIG.value, _PLOT.value))
  except ValueError as e:  # DataError and config mistakes: one line, no traceback
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
