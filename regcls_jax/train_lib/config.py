"""Config files: loading one outside absl flags (benchmarks, notebooks, tests), the variant
argument (``--config=file:arg``), and the baselines' ``peers`` section every family shares."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib

import ml_collections

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_config(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """Loads ``path`` (relative to the repository root or absolute) like ``--config=path:arg``.

  The returned config is locked: assigning an unknown field raises, as on the command line.
  """
  file = pathlib.Path(path)
  if not file.is_absolute() and not file.exists():
    file = REPO_ROOT / path
  if not file.is_file():
    raise FileNotFoundError(f"config file not found: {path}")
  spec = importlib.util.spec_from_file_location(f"_regcls_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg) if arg is not None else module.get_config()
  config.lock()
  return config


def parse_variants(arg: str | None, allowed: dict[str, tuple[str, ...] | None], file: str):
  """``'k=10,balanced'`` -> ``{'k': '10', 'balanced': 'true'}`` (the big_vision config arg).

  Args:
    arg: the text after ``:`` in ``--config=file:arg``.
    allowed: variant name -> its allowed values, or None for a switch without a value.
    file: the config file, for the error message.
  """
  out = {}
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in allowed:
      raise ValueError(f"{file}: unknown variant {key!r}; expected one of {', '.join(allowed)}")
    choices = allowed[key]
    if choices is not None and value not in choices:
      raise ValueError(f"{file}: {key}={value!r}; expected one of {', '.join(choices)}")
    out[key] = value or "true"
  return out


def peers_config(**overrides) -> ml_collections.ConfigDict:
  """``config.peers``: the baselines' settings (`method.registry.Settings`) with overrides."""
  from regcls_jax.method import registry  # configs import this module: keep its import light

  return ml_collections.ConfigDict(dataclasses.asdict(registry.Settings(**overrides)))
