"""Command line: ``python -m regcls_jax.main --config=configs/synthetic1d.py --workdir=DIR``.

--mode=train (default) trains and evaluates; --mode=eval recomputes the metrics from the
Orbax checkpoint in --workdir (using the config saved there by the training run).
Override any config field with --config.<field>=<value>.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from regcls_jax.train_lib import runtime

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", None, "Experiment config file (configs/*.py[:arg]).", lock_config=True
)
flags.DEFINE_string("workdir", None, "Directory for results, checkpoints and logs.")
flags.DEFINE_enum(
  "mode",
  "train",
  ["train", "eval"],
  "train: train and evaluate; eval: evaluate the checkpoint in --workdir.",
)
flags.mark_flags_as_required(["workdir"])


def _saved_config(workdir: str):
  import ml_collections

  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors (no traceback) for bad flags and config overrides."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    _fail(lines[-1] if lines else repr(e))
  except (AttributeError, KeyError) as e:
    overrides = " ".join(a for a in argv[1:] if a.startswith("--config."))
    name = str(e.args[0] if e.args else e).strip("\"'")
    _fail(f"no config field '{name}' (in {overrides}); see the config file for the fields")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  runtime.configure()
  import jax

  # Multi-process runs (launch/: local, TPU pod, SLURM) say so in the environment.
  try:
    runtime.init_distributed()
  except ValueError as e:
    _fail(str(e))
  if jax.process_index() != 0:  # one log for the run: process 0's (warnings from everyone)
    logging.set_verbosity(logging.WARNING)

  from regcls_jax import families
  from regcls_jax.train_lib import workdir as workdir_lib

  workdir = FLAGS.workdir
  config = FLAGS.config
  if FLAGS.mode == "eval":
    config = _saved_config(workdir) or config
  if config is None:
    _fail("--config is required (e.g. --config=configs/synthetic1d.py)")
  logging.info("JAX %s, devices: %s", jax.__version__, jax.devices())
  try:
    if FLAGS.mode == "train":
      families.train_and_evaluate(config, workdir)
    else:
      families.evaluate(config, workdir)
  except (ValueError, OSError, FloatingPointError, workdir_lib.WorkdirBusyError) as e:
    # Bad input, a diverged run, a busy workdir, a full disk or a denied path: one line naming
    # what is wrong (OSErrors name their path), no traceback. Checkpoints are written
    # atomically, so the last good one is intact.
    _fail(str(e))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
