"""The experiment families, by the name a config gives in ``config.experiment``.

Each family is a package ``families/<name>/`` whose ``trainer`` module has
``train_and_evaluate(config, workdir)`` and ``evaluate(config, workdir)``; notebooks and tests
call the two functions below, the CLI (`regcls_jax.main`) only parses flags. A family's modules
are imported when its config is run, so running one family never loads another.
"""

from __future__ import annotations

import importlib

import jax
import ml_collections

# config.experiment -> the family package that trains it.
FAMILIES = {
  "synthetic1d": "synthetic1d",
  "breakfast": "breakfast",
  "imdbwiki": "images",
  "nyud2": "images",
}

# Families whose programs shard models over the local devices of ONE process (minutes on a
# CPU); only the image trainer spans processes.
_SINGLE_PROCESS = ("synthetic1d", "breakfast")


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
  """Trains what ``config`` describes, evaluates it, and writes everything under ``workdir``."""
  return trainer(config).train_and_evaluate(config, workdir)


def evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Evaluates the checkpoint in ``workdir`` without training."""
  return trainer(config).evaluate(config, workdir)
