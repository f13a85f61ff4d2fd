"""One numeric validation for every family's config, before anything is written."""

import pytest

from regcls_jax.train_lib import validate
from regcls_jax.train_lib.config import load_config

CONFIGS = {
  "synthetic1d": ("configs/synthetic1d.py", "grid=tiny"),
  "imdbwiki": ("configs/imdbwiki.py", "runlocal"),
  "nyud2": ("configs/nyud2.py", "runlocal"),
  "breakfast": ("configs/breakfast.py", "runlocal"),
}

# (field, bad value, the key the message must name); each family is tried on the fields it has.
BAD = [
  ("epochs", 0, "config.epochs"),
  ("data.batch_size", 0, r"config\.(data\.)?batch_size"),  # Breakfast: one field, two names
  ("batch_size", 0, r"config\.(data\.)?batch_size"),
  ("lr", 0.0, "config.lr"),
  ("lam", -1.0, "config.lam"),
  ("scale", 0.0, "config.scale"),
  ("weight_decay", -1e-4, "config.weight_decay"),
  ("num_classes", 1, "config.num_classes"),
  ("accum_steps", 0, "config.accum_steps"),
  ("hidden", (6, 0), "config.hidden"),
  ("lr_decay", 0.0, "config.lr_decay"),
  ("seeds", (), "config.seeds"),
]


def _set(config, field, value):
  *parents, leaf = field.split(".")
  node = config
  for p in parents:
    node = node[p]
  if leaf not in node:
    return False
  with config.unlocked():
    if isinstance(node[leaf], type(config)) and not isinstance(value, type(config)):
      for k in node[leaf]:  # a per-scenario / per-target section: break one entry
        node[leaf][k] = (value,) if isinstance(node[leaf][k], tuple) else value
        break
    elif isinstance(node[leaf], tuple) and not isinstance(value, tuple):
      node[leaf] = (value,)
    else:
      node[leaf] = value
  return True


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_the_shipped_configs_pass(family):
  validate.check_config(load_config(*CONFIGS[family]))
  validate.check_config(load_config(CONFIGS[family][0]))


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_every_invalid_numeric_field_names_its_key(family):
  tried = 0
  for field, value, key in BAD:
    config = load_config(*CONFIGS[family])
    config.unlock()
    if not _set(config, field, value):
      continue
    tried += 1
    with pytest.raises(ValueError, match=key if "\\" in key else key.replace(".", r"\.")):
      validate.check_config(config)
  assert tried >= 6, tried


def test_sections_and_tuples_name_the_entry():
  config = load_config("configs/synthetic1d.py", "grid=tiny")
  with config.unlocked():
    config.lam.noisy = (1.0, -3.0)
  with pytest.raises(ValueError, match=r"config\.lam\.noisy: expected a number >= 0, got -3\.0"):
    validate.check_config(config)
