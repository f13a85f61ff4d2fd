"""One config validation for every family: the range of every numeric field, before anything runs.

`check_config` walks the fields below wherever a config has them (a family without a field
skips it), so a family added later is checked by the same rules. Values may be scalars, tuples
(the 1D grid's K and lambda lists) or sections keyed by scenario / target (``config.lr.clean``,
``config.lam.percent``). Family-specific checks (scenario names, methods, splits) stay with the
family; this module only knows numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import ml_collections


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
  return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int_at_least(low: int) -> tuple[Callable, str]:
  return (lambda v: _is_int(v) and v >= low), f"an integer >= {low}"


def _number_above(low: float) -> tuple[Callable, str]:
  return (lambda v: _is_number(v) and v > low), f"a number > {low:g}"


def _number_at_least(low: float) -> tuple[Callable, str]:
  return (lambda v: _is_number(v) and v >= low), f"a number >= {low:g}"


# field -> (check of one value, what is expected). A tuple or section value is checked entry by
# entry; an empty tuple is an error unless the field is in `MAY_BE_EMPTY`.
RULES: dict[str, tuple[Callable, str]] = {
  "epochs": _int_at_least(1),
  "batch_size": _int_at_least(1),
  "data.batch_size": _int_at_least(1),
  "accum_steps": _int_at_least(1),
  "max_steps": _int_at_least(0),
  "log_every": _int_at_least(1),
  "lr": _number_above(0),
  "lam": _number_at_least(0),
  "lam_search": _number_above(0),
  "lams": _number_at_least(0),
  "eval_every": _int_at_least(1),
  "shot_bins": _int_at_least(1),
  "many_shot": _int_at_least(0),
  "few_shot": _int_at_least(0),
  "eval_batch_size": _int_at_least(1),
  "scale": _number_above(0),
  "weight_decay": _number_at_least(0),
  "lr_decay": _number_above(0),
  "lr_decay_epochs": _int_at_least(0),
  "num_classes": _int_at_least(2),
  "grid.num_classes": _int_at_least(2),
  "grid.lams": _number_at_least(0),
  "grid.seeds": _int_at_least(0),
  "data.image_size": _int_at_least(32),
  "hidden": _int_at_least(1),
  "seed": _int_at_least(0),
  "seeds": _int_at_least(0),
  "checkpoint_every_secs": _number_at_least(0),
  "logits_budget": _int_at_least(0),
  "model.width": _int_at_least(1),
  "model.stage_sizes": _int_at_least(1),
  "data.seed": _int_at_least(0),
  "data.worker_count": _int_at_least(-1),
  "data.worker_buffer_size": _int_at_least(1),
  "data.read_threads": _int_at_least(0),
  "data.read_buffer": _int_at_least(1),
  "data.sampling_bins": _int_at_least(1),
  "data.epoch_size": _int_at_least(0),
  "data.views": _int_at_least(1),
  "data.all_samples": _int_at_least(1),
  "data.max_bins": _int_at_least(1),
  "data.min_spls": _int_at_least(0),
  "data.pool": _int_at_least(1),
  "data.noise_std": _number_at_least(0),
}
MAY_BE_EMPTY = ("lr_decay_epochs", "num_classes")  # num_classes: the family says when K is needed


def _lookup(config, path: str):
  node = config
  for part in path.split("."):
    if not isinstance(node, Mapping | ml_collections.ConfigDict) or part not in node:
      return None, False
    node = node[part]
  return node, True


def _entries(path: str, value):
  """``(config key, scalar)`` of a scalar, a tuple's entries or a section's values."""
  if isinstance(value, Mapping | ml_collections.ConfigDict):
    for k in value:
      yield from _entries(f"{path}.{k}", value[k])
  elif isinstance(value, tuple | list):
    if not value and path.split(".")[0] not in MAY_BE_EMPTY:
      raise ValueError(f"config.{path}: expected at least one value, got ()")
    for v in value:
      yield path, v
  else:
    yield path, value


def check_config(config) -> None:
  """Raises ValueError naming the first field outside its range (``config.<field>: ...``)."""
  for field, (ok, expected) in RULES.items():
    value, present = _lookup(config, field)
    if not present or value is None:  # absent, or None = "not set" (e.g. data.num_epochs)
      continue
    for key, v in _entries(field, value):
      if not ok(v):
        raise ValueError(f"config.{key}: expected {expected}, got {v!r}")
