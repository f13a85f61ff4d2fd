"""The trainer entry points: ``train_and_evaluate(config, workdir)`` and ``evaluate``.

Each experiment family plugs in here by ``config.experiment``; notebooks and tests call these
functions directly, the CLI (`main.py`) only parses flags.
"""

from __future__ import annotations

import jax
import ml_collections

from regcls_jax import experiment1d, experiment_breakfast, image_experiment

_EXPERIMENTS = {
  "synthetic1d": experiment1d,
  "breakfast": experiment_breakfast,
  "imdbwiki": image_experiment,
  "nyud2": image_experiment,
}


# Families whose programs shard models over the local devices of ONE process (minutes on a
# CPU); only the image trainer spans processes.
_SINGLE_PROCESS = ("synthetic1d", "breakfast")


def _experiment(config: ml_collections.ConfigDict):
  name = config.get("experiment")
  if name not in _EXPERIMENTS:
    raise ValueError(
      f"config.experiment: unknown experiment {name!r}; expected one of {sorted(_EXPERIMENTS)}"
    )
  if name in _SINGLE_PROCESS and jax.process_count() > 1:
    raise ValueError(
      f"config.experiment={name} runs in one process (its models are sharded over that "
      f"process's devices); start it without a multi-process launcher"
    )
  return _EXPERIMENTS[name]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains what ``config`` describes, evaluates it, and writes everything under ``workdir``."""
  return _experiment(config).run(config, workdir)


def evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Evaluates the checkpoint in ``workdir`` without training."""
  return _experiment(config).evaluate(config, workdir)
