"""The age and depth models' set-up: the model, its loss, the train state and the jitted step.

`setup(config)` prepares the dataset, fits the classes (Eq. 12-13) and the baselines' priors on
the training labels, builds the model (ResNet-50 for age, ResNet-50 + Hu et al. decoder for
depth), and jits the shared step (`train_lib.step`) over a ``data`` mesh with the state
replicated and donated. The state's checkpoint form is a flat dict of named arrays.

Batch-norm statistics are computed over the global batch: the step is one jitted program over
the sharded batch, so XLA reduces across devices (synchronised BN, unlike the reference's
per-GPU statistics).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from regcls_jax.data import pipeline
from regcls_jax.method import losses, ranksim, registry
from regcls_jax.models import pretrained
from regcls_jax.models.depth import DepthNet
from regcls_jax.models.resnet import AgeResNet
from regcls_jax.train_lib import checkpoint, pytrees, sharding
from regcls_jax.train_lib import step as step_lib

DTYPES = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}


@dataclasses.dataclass(frozen=True)
class Task:
  """What differs between age and depth."""

  model_cls: type
  selection: tuple[str, str]  # (metrics group, key) minimised on validation
  input_key: str = "image"


TASKS = {
  "imdbwiki": Task(AgeResNet, ("all", "mse")),  # the authors' age code selects on val MSE
  "nyud2": Task(DepthNet, ("all", "rmse")),
  "image_folder": Task(AgeResNet, ("all", "rmse")),  # the age model on any folder's targets
}


def task(config) -> Task:
  return TASKS[config.experiment]


def build_model(config, num_classes: int) -> nnx.Module:
  m = config.model
  return task(config).model_cls(
    num_classes,
    m.width,
    tuple(m.stage_sizes),
    dtype=DTYPES[m.dtype],
    rngs=nnx.Rngs(params=config.seed),
  )


def make_loss_fn(config, priors: dict | None = None):
  """``s * (lam * reg + CE)`` with the reg/cls masks of the batch (Eq. 4, 13; Tab. 4), or a
  baseline's loss (`method.registry`) with the training labels' ``priors``."""
  settings = registry.Settings.from_config(config.get("peers"))

  with_features = config.method in registry.FEATURE_LOSSES

  def forward(model, images):
    """``(pred, logits, features)``; the pooled features only for RankSim."""
    if not with_features:
      return (*model(images), None)
    h = model.features(images)
    logits = model.cls_head(h) if model.cls_head is not None else None
    return model.reg_head(h)[..., 0], logits, h

  two_views = config.method in registry.TWO_VIEWS

  def baseline_loss_fn(model, batch, hparams, rng):
    del rng
    images, fields = batch["image"], {"y": batch["label"], "weight": batch.get("reg_mask")}
    if two_views:  # ConR: both views in one forward pass, labels (and masks) repeated
      images = jnp.concatenate([images, batch["image_view2"]])
      fields = {k: None if v is None else jnp.concatenate([v, v]) for k, v in fields.items()}
    pred, logits, h = forward(model, images)
    loss = registry.objective(
      config.method, pred, logits, fields, priors, hparams, settings, features=h
    )
    return loss, {"reg": loss, "ce": jnp.zeros_like(loss)}

  def loss_fn(model, batch, hparams, rng):
    del rng
    pred, logits, h = forward(model, batch["image"])
    with_cls = logits is not None
    loss, aux = losses.reg_cls_loss(
      pred,
      batch["label"],
      logits,
      batch["cls"] if with_cls else None,
      lam=hparams["lam"],
      scale=hparams["scale"],
      weight=batch.get("reg_mask"),
      cls_mask=batch["cls_mask"] if with_cls else None,
      reg_kind=config.loss,
      small_lam_divides_ce=True,  # the authors' image code: reg + CE / lam when lam <= 1
    )
    if config.method == "regcls+ranksim":  # RankSim on the pooled features, weight gamma
      term = ranksim.ranksim_loss(h, batch["label"], settings.ranksim_lambda, batch.get("reg_mask"))
      loss = loss + hparams["scale"] * settings.ranksim_gamma * term
    return loss, aux

  return loss_fn if config.method in registry.CLASSIFIES + ("reg",) else baseline_loss_fn


# ---------------------------------------------------------------------------------------------
# Set-up: model, state, step


# The config fields that define a run's checkpoints: a resume with any of them changed refuses.
# Not among them: where the data lie, how fast they are read, logging, checkpoint intervals and
# max_steps (a stopping point: training to a later one continues the same run).
PLAN_FIELDS = (
  "experiment", "method", "num_classes", "balanced", "rebalance", "lam", "scale", "loss",
  "model", "accum_steps", "weight_decay", "lr", "lr_decay", "lr_decay_epochs", "epochs", "seed",
  "peers", "data.name", "data.batch_size", "data.seed", "data.sampling", "data.peak_centre",
  "data.sampling_bins", "data.epoch_size", "data.fixture", "data.views",
)  # fmt: skip


def plan_fields(config) -> tuple[str, ...]:
  """`PLAN_FIELDS`, and an image folder's stored image size (age and depth checkpoints keep the
  fingerprint they had before image folders existed)."""
  return PLAN_FIELDS + (("data.image_size",) if config.experiment == "image_folder" else ())


@dataclasses.dataclass
class Setup:
  builder: object
  classes: tuple | None
  priors: dict  # registry.fit_priors of the training labels (baselines; placeholders otherwise)
  graphdef: nnx.GraphDef  # training mode
  eval_graphdef: nnx.GraphDef
  state: step_lib.TrainState
  step_fn: object
  mesh: jax.sharding.Mesh
  steps_per_epoch: int


def check_method(config) -> None:
  """reg, reg+cls and the baselines of `method.registry` but FDS (it needs an epoch-end pass
  over the training features, which only the 1D program has); for depth not BMC (one target per
  image) nor the histogram losses (the per-pixel head predicts at twice the target's
  resolution); RankSim and ConR on the age model's pooled features, ConR with two augmented
  views of every training image (``config.data.views = 2``); depth has no per-image feature
  and label pair for them."""
  allowed = tuple(m for m in registry.METHODS if m not in registry.FEATURE_METHODS)
  if config.experiment == "nyud2":
    per_image = ("bmc", *registry.HISTOGRAM, *registry.FEATURE_LOSSES)
    allowed = tuple(m for m in allowed if m not in per_image)
  registry.check_method(config.method, "config.method", allowed)
  registry.Settings.from_config(config.get("peers"))
  views = 2 if config.method in registry.TWO_VIEWS else 1
  if config.data.get("views", 1) != views:
    raise ValueError(
      f"config.data.views: {config.data.views} with config.method={config.method!r}; "
      f"expected {views}"
    )


def setup(config) -> Setup:
  check_method(config)
  builder = pipeline.prepare(config.data)
  # Classes (and keep masks) feed the cls head, and with `rebalance` also the reg-only model's
  # re-balanced regression loss (Tab. 4).
  with_cls = config.method in registry.CLASSIFIES
  classes = pipeline.fit_classes(builder, config) if with_cls or config.rebalance else None
  k = len(classes[1]) if with_cls else 0  # K' <= K after equalisation (Eq. 12)
  if config.method in registry.HISTOGRAM:
    k = config.num_classes
  settings = registry.Settings.from_config(config.get("peers"))
  values, counts = pipeline.training_targets(builder, config.data)
  priors = registry.fit_priors(config.method, values, settings, k, counts)
  model = build_model(config, k)
  graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
  if config.model.init_from:  # ImageNet weights from a local file (models/pretrained.py)
    params, model_state = pretrained.load_into(config.model.init_from, params, model_state)
  model.eval()
  eval_graphdef = nnx.split(model, nnx.Param, ...)[0]
  per_step = config.data.batch_size * config.accum_steps
  train_size = builder.info.splits["train"].num_examples
  steps_per_epoch = max(train_size // per_step, 1)
  schedule = step_lib.step_schedule(
    config.lr, tuple(e * steps_per_epoch for e in config.lr_decay_epochs), config.lr_decay
  )
  tx = step_lib.adam_l2(schedule, config.weight_decay)
  lam = config.lam if config.method in registry.CLASSIFIES else 0.0
  state = step_lib.init_state(params, tx, lam, config.scale, model_state)
  mesh = sharding.data_mesh()
  replicated = NamedSharding(mesh, P())
  state = jax.device_put(state, replicated)
  step = step_lib.make_train_step(graphdef, tx, make_loss_fn(config, priors), config.accum_steps)
  step_fn = jax.jit(
    step,
    in_shardings=(replicated, sharding.batch_sharding(mesh, config.accum_steps), None),
    out_shardings=(replicated, None),
    donate_argnums=(0,),
  )
  return Setup(
    builder, classes, priors, graphdef, eval_graphdef, state, step_fn, mesh, steps_per_epoch
  )


# ---------------------------------------------------------------------------------------------
# The state's checkpoints


def checkpointers(workdir: str) -> tuple[checkpoint.Checkpointer, checkpoint.Checkpointer]:
  root = os.path.join(workdir, "checkpoints")
  return checkpoint.Checkpointer(os.path.join(root, "latest")), checkpoint.Checkpointer(
    os.path.join(root, "best")
  )


def save_state(ckpt, state, meta, data_iterator=None):
  """Every process calls this (Orbax saves collectively); each stores its own data iterator."""
  flat = pytrees.flatten(sharding.host_copy(state))
  ckpt.save(int(meta["step"]), {"state": flat}, meta, data_iterator=data_iterator)


def state_from_checkpoint(params: dict, s: Setup) -> step_lib.TrainState:
  """The replicated TrainState of a restored checkpoint's arrays (every process restores)."""
  state = pytrees.unflatten(sharding.host_copy(s.state), params["state"])
  return jax.device_put(state, NamedSharding(s.mesh, P()))


def restore_state(ckpt, s: Setup, data_iterator=None) -> tuple[step_lib.TrainState, dict]:
  params, meta = ckpt.restore(data_iterator=data_iterator)
  return state_from_checkpoint(params, s), meta
