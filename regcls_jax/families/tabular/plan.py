"""Which tabular models to train: methods x head sizes (groups) x lambdas x seeds.

A `Group` is what one compiled program trains: one method with one head size K. Its models
are the group's lambda candidates (reg+cls methods; 0 for the others) times the seeds.
`group_inputs` lays a group out for `program.train`: the shared data (standardised train and
val arrays, the training targets' classes and Eq. 13 keep probabilities), the group's priors
and the per-model scalars, padded to a multiple of the device count.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from regcls_jax.data import tabular
from regcls_jax.families.tabular import program
from regcls_jax.method import binning, registry
from regcls_jax.train_lib.sharding import padded_order, round_up

# The names config.methods takes: the registry's methods (FDS aside: its epoch-end feature
# statistics are the 1D program's; ConR aside: a table has no augmentation to make its two
# views from) and 'regcls_bal', reg+cls with equalised classes (Eq. 12) and keep masks (Eq. 13).
METHOD_NAMES = (
  "reg",
  "regcls",
  "regcls_bal",
  *(m for m in registry.METHODS if m not in ("reg", "regcls", "fds", *registry.TWO_VIEWS)),
)
# What defines the trained models; ``methods`` is not among them, so a rerun with more methods
# keeps the finished groups and trains only the new ones.
PLAN_FIELDS = (
  "data", "num_classes", "lams", "seeds", "peers", "hidden", "epochs", "eval_every",
  "batch_size", "lr", "weight_decay", "scale",
)  # fmt: skip


def objective_of(method: str) -> tuple[str, bool]:
  """``(registry objective, balanced classes)`` of a ``config.methods`` name."""
  return ("regcls", True) if method == "regcls_bal" else (method, False)


@dataclasses.dataclass(frozen=True)
class Group:
  method: str  # a config.methods name
  num_classes: int  # head size K (0: no head)

  @property
  def name(self) -> str:
    return f"{self.method}_k{self.num_classes}" if self.num_classes else self.method

  @property
  def objective(self) -> str:
    return objective_of(self.method)[0]


@dataclasses.dataclass(frozen=True)
class Model:
  group: Group
  lam: float
  seed: int


def check_config(config) -> None:
  """Raises ValueError naming the config key of an unknown method or a bad grid."""
  if not config.methods:
    raise ValueError("config.methods: expected at least one method")
  for m in config.methods:
    registry.check_method(m, "config.methods", METHOD_NAMES)
  registry.Settings.from_config(config.get("peers"))
  if config.epochs % config.eval_every:
    raise ValueError(
      f"config.epochs: {config.epochs} is not a multiple of config.eval_every={config.eval_every}"
    )
  for ref in config.references:
    if ref not in ("ols", "hgb"):
      raise ValueError(f"config.references: unknown {ref!r}; expected some of ('ols', 'hgb')")
  if not (0 <= config.few_shot <= config.many_shot):
    raise ValueError(
      f"config.few_shot: {config.few_shot} must lie in [0, config.many_shot={config.many_shot}]"
    )


def plan_groups(config) -> list[Group]:
  groups = []
  for m in config.methods:
    ks = tuple(config.num_classes) if registry.head_classes(objective_of(m)[0], 2) else (0,)
    groups += [Group(m, int(k)) for k in ks]
  return groups


def group_models(config, group: Group) -> list[Model]:
  lams = tuple(config.lams) if group.objective in registry.CLASSIFIES else (0.0,)
  return [Model(group, float(lam), int(seed)) for lam in lams for seed in config.seeds]


def statics_for(config, group: Group, in_features: int) -> program.Statics:
  return program.Statics(
    in_features=in_features,
    hidden=tuple(config.hidden),
    num_classes=group.num_classes,
    balanced=objective_of(group.method)[1],
    objective=group.objective,
    settings=registry.Settings.from_config(config.get("peers")),
    epochs=int(config.epochs),
    eval_every=int(config.eval_every),
    batch_size=int(config.batch_size),
    weight_decay=float(config.weight_decay),
  )


def group_priors(config, table: tabular.Table, group: Group) -> dict[str, np.ndarray]:
  """`registry.fit_priors` of the group's method on the standardised training targets."""
  settings = registry.Settings.from_config(config.get("peers"))
  return registry.fit_priors(group.objective, table.splits["train"].y, settings, group.num_classes)


def group_inputs(config, table: tabular.Table, group: Group, models: list[Model], n_dev: int):
  """``(data, priors, model)`` host arrays of a group's program (models padded to ``n_dev``)."""
  train, val = table.splits["train"], table.splits["val"]
  priors = group_priors(config, table, group)
  cls = np.zeros(len(train), np.int32)
  keep = np.ones(len(train), np.float32)
  if group.objective in registry.CLASSIFIES:
    edges, class_keep = binning.make_classes(
      train.y, group.num_classes, objective_of(group.method)[1]
    )
    cls = binning.assign_classes(train.y, edges).astype(np.int32)
    keep = class_keep[cls].astype(np.float32)
  # Training rows padded to whole batches (the padding is never valid: `n` counts the rows).
  pad = round_up(len(train), config.batch_size) - len(train)
  padded = lambda a: np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])  # noqa: E731
  data = {"x_train": padded(train.x), "y_train": padded(train.y), "cls": padded(cls)}
  data |= {"keep": padded(keep), "n": np.int32(len(train)), "x_val": val.x, "y_val": val.y}
  order = padded_order(len(models), n_dev)
  model = {
    "seed": np.array([models[i].seed for i in order], np.int32),
    "lr": np.full(len(order), config.lr, np.float32),
    "lam": np.array([models[i].lam for i in order], np.float32),
    "scale": np.full(len(order), config.scale, np.float32),
  }
  return data, priors, model
