"""The images family's entry points (`regcls_jax.families`): age and depth train one model
(`run`); an image folder trains its grid and reports the models selected on validation
(`folder`)."""

from __future__ import annotations

from regcls_jax.families.images import evaluation, folder, run


def train_and_evaluate(config, workdir: str):
  if config.experiment == "image_folder":
    return folder.train_and_evaluate(config, workdir)
  return run.train_and_evaluate(config, workdir)


def evaluate(config, workdir: str):
  if config.experiment == "image_folder":
    return folder.evaluate(config, workdir)
  return evaluation.evaluate(config, workdir)
