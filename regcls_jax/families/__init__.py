"""The experiment families, by the name a config gives in ``config.experiment``.

Each family is a package ``families/<name>/`` whose ``trainer`` module has
``train_and_evaluate(config, workdir)`` and ``evaluate(config, workdir)``; notebooks and tests
call the two functions below, the CLI (`regcls_jax.main`) only parses flags. A family's modules
are imported when its config is run, so running one family never loads another.
"""

from __future__ import annotations

import importlib
import os

import jax
import ml_collections

from regcls_jax.train_lib import validate
from regcls_jax.train_lib import workdir as workdir_lib

# config.experiment -> the family package that trains it.
FAMILIES = {
  "synthetic1d": "synthetic1d",
  "breakfast": "breakfast",
  "imdbwiki": "images",
  "nyud2": "images",
  "image_folder": "images",
  "tabular": "tabular",
}

# Families whose programs shard models over the local devices of ONE process (minutes on a
# CPU); only the image trainer spans processes.
_SINGLE_PROCESS = ("synthetic1d", "breakfast", "tabular")


def trainer(config: ml_collections.ConfigDict):
  """The ``trainer`` module of the family that ``config.experiment`` names.

  Raises:
    ValueError: naming ``config.experiment`` when it is unknown or cannot run here.
  """
  name = config.get("experiment")
  if name not in FAMILIES:
    raise ValueError(
      f"config.experiment: unknown experiment {name!r}; expected one of {sorted(FAMILIES)}"
    )
  if name in _SINGLE_PROCESS and jax.process_count() > 1:
    raise ValueError(
      f"config.experiment={name} runs in one process (its models are sharded over that "
      f"process's devices); start it without a multi-process launcher"
    )
  return importlib.import_module(f"regcls_jax.families.{FAMILIES[name]}.trainer")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains what ``config`` describes, evaluates it, and writes everything under ``workdir``.

  Every family gets the same guarantees from here: the config is checked (`validate`) before
  anything is written, the workdir is locked for the run (a second run refuses in one line),
  and a run that fails before its first checkpoint leaves no workdir it created behind.
  """
  validate.check_config(config)
  module = trainer(config)
  with workdir_lib.run_in(workdir):
    return module.train_and_evaluate(config, workdir)


def evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Evaluates the checkpoint in ``workdir`` without training (the workdir locked meanwhile)."""
  validate.check_config(config)
  module = trainer(config)
  workdir_lib.check_workdir(workdir)
  if not os.path.isdir(workdir):
    return module.evaluate(config, workdir)  # names the missing checkpoint
  with workdir_lib.run_in(workdir):
    return module.evaluate(config, workdir)
