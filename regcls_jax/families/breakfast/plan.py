"""Which Breakfast models to train, and the host arrays of a method's program.

One MLP per (split, activity, seed) and method, as the reference trains them (paper Sec. 3.3):
an activity's videos of the other three participant groups train it, its videos of the split's
group test it. `method_inputs` lays one method's models out for `program.train`: per model, the
indices of its training and test frames into the shared feature array, its classes and keep
probabilities (Eq. 12-13) and its baseline priors.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from regcls_jax.data import breakfast, common
from regcls_jax.families.breakfast import program
from regcls_jax.families.breakfast.frames import SPLITS, Frames
from regcls_jax.method import binning, registry
from regcls_jax.train_lib import pytrees
from regcls_jax.train_lib.sharding import padded_order, round_up

# The names config.methods takes: the registry's methods (FDS aside: its epoch-end pass over the
# training features is the 1D program's; ConR aside: frame features have no augmentation to
# make its two views from; reg+cls+RankSim aside: the reference's summed loss and its lambdas
# are reg+cls's own) and 'regcls_bal', reg+cls with equalised classes
# (Eq. 12) and keep masks (Eq. 13). The baselines train the same MLP with their own loss
# (histogram methods on a K-way head, decoded at test time).
METHOD_NAMES = (
  "reg",
  "regcls",
  "regcls_bal",
  *(
    m
    for m in registry.METHODS
    if m not in ("reg", "regcls", "regcls+ranksim", *registry.FEATURE_METHODS, *registry.TWO_VIEWS)
  ),
)

# What defines the models; ``methods`` is not among them, so a rerun with more methods keeps the
# finished ones and trains only the new.
PLAN_FIELDS = (
  "splits", "seeds", "target", "num_classes", "hidden", "epochs", "batch_size",
  "lr", "lam", "scale", "weight_decay", "lr_decay_epochs", "lr_decay", "peers",
  "eval_batch_size", "select_lam", "lam_search",
)  # fmt: skip


def objective_of(method: str) -> tuple[str, bool]:
  """``(registry objective, balanced classes)`` of a ``config.methods`` name."""
  return ("regcls", True) if method == "regcls_bal" else (method, False)


def check_methods(config) -> None:
  """Raises ValueError naming ``config.methods`` or ``config.peers`` when one is unknown."""
  for m in config.methods:
    registry.check_method(m, "config.methods", METHOD_NAMES)
  registry.Settings.from_config(config.get("peers"))


@dataclasses.dataclass(frozen=True)
class Model:
  split: str
  activity: str
  seed: int

  @property
  def model_id(self) -> int:
    """Stable per (split, activity): reg and reg+cls of one model start from one trunk."""
    return SPLITS.index(self.split) * len(breakfast.ACTIVITIES) + breakfast.ACTIVITIES.index(
      self.activity
    )


def plan_models(config) -> list[Model]:
  for s in config.splits:
    if s not in SPLITS:
      raise ValueError(f"config.splits: unknown split {s!r}; expected some of {SPLITS}")
  return [
    Model(s, a, seed) for s in config.splits for a in breakfast.ACTIVITIES for seed in config.seeds
  ]


def model_frames(frames: Frames, model: Model) -> tuple[np.ndarray, np.ndarray]:
  """Indices of a model's training frames (its activity, other groups) and test frames."""
  act = frames.activity == breakfast.ACTIVITIES.index(model.activity)
  test_group = frames.group == SPLITS.index(model.split)
  train, test = np.flatnonzero(act & ~test_group), np.flatnonzero(act & test_group)
  for name, idx in (("training", train), ("test", test)):
    if idx.size == 0:
      raise common.DataError(
        f"breakfast split {model.split}: activity {model.activity!r} has no {name} videos"
      )
  return train, test


def validation_frames(frames: Frames, model: Model) -> tuple[np.ndarray, np.ndarray]:
  """A model's training frames split by video for selecting lambda (paper Sec. 3.3): a third
  of its training videos (``numpy.random.RandomState(0)`` permutation, the first ``n // 3``)
  validate, the other two thirds train. Test participants never enter."""
  train, _ = model_frames(frames, model)
  videos = np.unique(frames.video[train])
  held = np.random.RandomState(0).permutation(videos)[: len(videos) // 3]
  if held.size == 0 or held.size == videos.size:
    raise common.DataError(
      f"breakfast split {model.split}: activity {model.activity!r} has {videos.size} training "
      "video(s); selecting lambda needs at least 2 (config.select_lam=False skips it)"
    )
  is_val = np.isin(frames.video[train], held)
  return train[~is_val], train[is_val]


def class_inputs(config, targets: np.ndarray, balanced: bool):
  """``(edges, keep)`` of one model's training targets: the authors' video code lays the K
  classes over a fixed progress range (`breakfast.class_range`) and rounds Eq. 12."""
  value_range = breakfast.class_range(config.target, int(targets.max()) + 1)
  return binning.make_classes(
    targets, config.num_classes, balanced, value_range=value_range, rounding="round"
  )


def method_lams(config, method: str, num_models: int) -> np.ndarray:
  """Every model's lambda without selection: ``config.lam[target]`` for reg+cls, else 0."""
  lam = float(config.lam[config.target]) if objective_of(method)[0] == "regcls" else 0.0
  return np.full(num_models, lam)


def method_inputs(
  config,
  frames: Frames,
  models: list[Model],
  method: str,
  n_dev: int,
  pairs: list[tuple[np.ndarray, np.ndarray]] | None = None,
  lams: np.ndarray | None = None,
):
  """Host arrays of one method's program, models padded to a multiple of the device count.

  Args:
    pairs: each model's (training, scored) frame indices; default `model_frames`.
    lams: each model's lambda; default ``config.lam[config.target]`` (reg+cls only).
  """
  targets = frames.targets(config.target)
  objective, balanced = objective_of(method)
  with_cls = objective == "regcls"
  settings = registry.Settings.from_config(config.get("peers"))
  k = registry.head_classes(objective, config.num_classes)
  priors = []
  pairs = pairs if pairs is not None else [model_frames(frames, m) for m in models]
  lams = method_lams(config, method, len(models)) if lams is None else lams
  n_pad = round_up(max(len(tr) for tr, _ in pairs), config.batch_size)
  m_pad = round_up(max(len(te) for _, te in pairs), 1024)
  order = padded_order(len(models), n_dev)
  count = len(order)
  train = {k: np.zeros((count, n_pad), t) for k, t in (("idx", np.int32), ("cls", np.int32))}
  train["keep"] = np.ones((count, n_pad), np.float32)
  train["n"] = np.zeros(count, np.int32)
  test = {"idx": np.zeros((count, m_pad), np.int32), "m": np.zeros(count, np.int32)}
  for row, i in enumerate(order):
    tr, te = pairs[i]
    train["idx"][row, : len(tr)], train["n"][row] = tr, len(tr)
    test["idx"][row, : len(te)], test["m"][row] = te, len(te)
    priors.append(registry.fit_priors(objective, targets[tr], settings, k))
    if with_cls:
      edges, keep = class_inputs(config, targets[tr], balanced)
      cls = binning.assign_classes(targets[tr], edges)
      train["cls"][row, : len(tr)], train["keep"][row, : len(tr)] = cls, keep[cls]
  model = {
    "seed": np.array([models[i].seed for i in order], np.int32),
    "model_id": np.array([models[i].model_id for i in order], np.int32),
    "lr": np.full(count, config.lr, np.float32),
    "lam": np.asarray(lams, np.float32)[order],
    "scale": np.full(count, config.scale, np.float32),
    "priors": pytrees.stack(priors),
  }
  return model, train, test


def statics_for(config, method: str) -> program.Statics:
  objective, balanced = objective_of(method)
  return program.Statics(
    num_classes=registry.head_classes(objective, int(config.num_classes)),
    balanced=balanced,
    hidden=tuple(config.hidden),
    epochs=int(config.epochs),
    batch_size=int(config.batch_size),
    weight_decay=float(config.weight_decay),
    lr_decay_epochs=tuple(config.lr_decay_epochs),
    lr_decay=float(config.lr_decay),
    objective=objective,
    settings=registry.Settings.from_config(config.get("peers")),
    eval_batch_size=int(config.eval_batch_size),
  )


def selects_lam(config, method: str) -> bool:
  """Whether a method's lambda is chosen on held-out training videos (reg+cls, bal. or not)."""
  return bool(config.select_lam) and objective_of(method)[0] == "regcls"
