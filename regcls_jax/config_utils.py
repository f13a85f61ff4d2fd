"""Loading config files outside absl flags (benchmarks, notebooks, tests)."""

from __future__ import annotations

import importlib.util
import pathlib

import ml_collections

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


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
