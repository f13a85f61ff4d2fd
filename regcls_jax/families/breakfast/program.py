"""Breakfast progress models trained side by side in ONE compiled program (paper Sec. 3.3).

A Breakfast run trains one MLP per (split, activity, seed) and method. All models of a method
share one program: ``jax.vmap`` over models, `scan_loop.train_epochs` over epochs and steps,
``shard_map`` over devices. The frame features of the whole dataset live once on each device,
``[N, 64]``; a model is a list of indices into them (its activity's training frames of its split,
padded to the longest list), so the ten activities' different sizes cost padding, not copies.
Batches past a model's own data are skipped, so a model trains exactly as it would alone.

Regression loss: the reference's summed MSE (``lam * sum((pred - y)^2) + CE``). Metrics of the
regression head over the model's test frames, in their order: the authors' RMSE, the mean over
consecutive batches of ``eval_batch_size`` (40) frames of each batch's RMSE (the last, shorter
batch counting as one), and the pooled RMSE over all frames; the same program also scores the
untrained model (the "random" row of Tab. 5).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from regcls_jax.data.breakfast import FEATURE_DIM
from regcls_jax.method import losses, registry
from regcls_jax.models.mlp import MLP
from regcls_jax.train_lib import scan_loop, sharding
from regcls_jax.train_lib import step as step_lib


@dataclasses.dataclass(frozen=True)
class Statics:
  """What fixes one method's compiled program."""

  num_classes: int  # 0 = regression only
  balanced: bool  # Eq. 13 keep masks in the CE
  hidden: tuple[int, ...]
  epochs: int
  batch_size: int
  weight_decay: float
  lr_decay_epochs: tuple[int, ...]
  lr_decay: float
  objective: str = "reg"  # registry name: 'reg', 'regcls' or a baseline
  settings: registry.Settings = registry.Settings()
  eval_batch_size: int = 40  # the authors' test loader's batch: their RMSE is a mean over batches


# ``s * (lam * sum of squared errors + CE)`` over the batch's valid frames (the reference's).
summed_loss_fn = functools.partial(step_lib.reg_cls_loss_fn, reg_reduction="sum")


def _loss_fn(statics: Statics, priors: dict):
  """The reference's summed reg / reg+cls loss, or a baseline's (`method.registry`, mean form)."""
  if statics.objective in ("reg", "regcls"):
    return summed_loss_fn

  with_features = statics.objective in registry.FEATURE_LOSSES

  def loss_fn(model, batch, hparams, rng):
    del rng
    h = model.features(batch["x"]) if with_features else None  # RankSim's: the MLP's last layer
    pred, logits = model(batch["x"]) if h is None else (model.reg_head(h)[..., 0], None)
    loss = registry.objective(
      statics.objective, pred, logits, batch, priors, hparams, statics.settings, features=h
    )
    return loss, {}

  return loss_fn


def batched_rmse(pred, target, n, batch_size: int) -> jax.Array:
  """The authors' test RMSE: the mean over consecutive batches of ``batch_size`` of the first
  ``n`` entries of each batch's RMSE (a last, shorter batch counts as one batch)."""
  positions = jnp.arange(pred.shape[0])
  batch = positions // batch_size
  num_batches = pred.shape[0] // batch_size + 1
  weight = (positions < n).astype(jnp.float32)
  sse = jax.ops.segment_sum(weight * (pred - target) ** 2, batch, num_batches)
  count = jax.ops.segment_sum(weight, batch, num_batches)
  rmse = jnp.sqrt(sse / jnp.maximum(count, 1.0))
  return jnp.sum(jnp.where(count > 0, rmse, 0.0)) / jnp.maximum(jnp.sum(count > 0), 1)


def _rmse(statics, graphdef, priors, params, features, targets, idx, n) -> dict[str, jax.Array]:
  """``rmse`` (`batched_rmse`) and ``rmse_pooled`` of the model's prediction
  (`registry.predict`) over ``features[idx[:n]]``."""
  pred, logits = nnx.merge(graphdef, params)(features[idx])
  pred = registry.predict(statics.objective, pred, logits, priors)
  weight = jnp.arange(idx.shape[0]) < n
  return {
    "rmse": batched_rmse(pred, targets[idx], n, statics.eval_batch_size),
    "rmse_pooled": jnp.sqrt(losses.regression_loss(pred, targets[idx], weight)),
  }


def model_keys(seed, model_id):
  base = jax.random.fold_in(jax.random.key(seed), model_id)
  return tuple(jax.random.fold_in(base, i) for i in range(3))


def init_params(statics: Statics, seed, model_id) -> nnx.State:
  """A model's initial parameters: the same trunk for reg and reg+cls of one (seed, model)."""
  init_key, _, _ = model_keys(seed, model_id)
  model = MLP(FEATURE_DIM, statics.hidden, statics.num_classes, rngs=nnx.Rngs(params=init_key))
  return nnx.state(model)


def _graphdef(statics: Statics) -> nnx.GraphDef:
  model = nnx.eval_shape(
    lambda: MLP(FEATURE_DIM, statics.hidden, statics.num_classes, rngs=nnx.Rngs(0))
  )
  return nnx.graphdef(model)


def _train_one(statics: Statics, features, targets, model, train, test):
  """Trains and scores ONE model (vmapped over models by `_program`).

  Args:
    statics: static configuration.
    features, targets: ``[N, 64]`` and ``[N]`` of every frame (shared by all models).
    model: scalars ``seed``, ``model_id`` (int32), ``lr``, ``lam``, ``scale`` (float32) and
      ``priors`` (`registry.fit_priors` of the model's training targets).
    train: ``idx`` ``[n_pad]`` frame indices, ``n``, ``cls`` and ``keep`` ``[n_pad]``.
    test: ``idx`` ``[m_pad]`` frame indices and ``m``.

  Returns:
    (final params, metrics ``train_loss [epochs]``, ``rmse``, ``rmse_pooled`` and the untrained
    model's ``rmse_init``, ``rmse_pooled_init``).
  """
  _, shuffle_key, mask_key = model_keys(model["seed"], model["model_id"])
  graphdef = _graphdef(statics)
  params = init_params(statics, model["seed"], model["model_id"])
  tx = step_lib.adam_l2(0.0, statics.weight_decay)
  state = step_lib.init_state(params, tx, model["lam"], model["scale"])
  train_step = step_lib.make_train_step(graphdef, tx, _loss_fn(statics, model["priors"]))

  def make_batch(pos, valid, step_key):
    rows = train["idx"][pos]
    batch = {"x": features[rows], "y": targets[rows], "weight": valid}
    if statics.num_classes:
      batch["cls"] = train["cls"][pos]
      if statics.balanced:  # Eq. 13: a fresh keep draw every time a frame is seen
        batch["cls_mask"] = jax.random.uniform(step_key, pos.shape) < train["keep"][pos]
    return batch

  def lr_at_epoch(epoch):
    drops = sum(epoch >= e for e in statics.lr_decay_epochs)
    return model["lr"] * jnp.float32(statics.lr_decay) ** drops

  state, epoch_losses = scan_loop.train_epochs(
    state,
    train_step,
    make_batch,
    train["n"],
    train["idx"].shape[0],
    batch_size=statics.batch_size,
    epochs=statics.epochs,
    shuffle_key=shuffle_key,
    mask_key=mask_key,
    lr_at_epoch=lr_at_epoch,
  )
  rmse = functools.partial(
    _rmse, statics, graphdef, model["priors"], features=features, targets=targets, **_idx(test)
  )
  untrained = {f"{k}_init": v for k, v in rmse(params).items()}
  metrics = {"train_loss": epoch_losses, **rmse(state.params), **untrained}
  return state.params, metrics


def _idx(split: dict) -> dict:
  return {"idx": split["idx"], "n": split["m"]}


@functools.cache
def _program(statics: Statics, mesh: Mesh) -> Callable:
  """``(features, targets, model, train, test) -> (params, metrics)``, models sharded."""
  train_one = functools.partial(_train_one, statics)
  return sharding.models_program(train_one, mesh, in_axes=(None, None, 0, 0, 0))


def train(statics: Statics, mesh: Mesh, features, targets, model, train_split, test_split):
  """Runs the program; every per-model array has the model count (a multiple of the mesh's
  device count) as its leading axis. Returns (params, metrics) as device arrays."""
  return _program(statics, mesh)(features, targets, model, train_split, test_split)


@functools.cache
def _eval_program(statics: Statics, mesh: Mesh) -> Callable:
  graphdef = _graphdef(statics)

  def one(features, targets, params, priors, test):
    return _rmse(statics, graphdef, priors, params, features, targets, **_idx(test))

  return sharding.models_program(one, mesh, in_axes=(None, None, 0, 0, 0))


def evaluate(
  statics: Statics, mesh: Mesh, features, targets, params, priors, test_split
) -> jax.Array:
  """``rmse`` and ``rmse_pooled`` ``[models]`` of stored parameters (no training)."""
  return _eval_program(statics, mesh)(features, targets, params, priors, test_split)


def param_template(statics: Statics) -> nnx.State:
  """Abstract parameters of one model (for restoring a checkpoint)."""
  return jax.eval_shape(lambda: init_params(statics, 0, 0))
