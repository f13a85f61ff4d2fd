"""A group of tabular models trained side by side in ONE compiled program, epochs chosen on val.

A group is one method with one head size K (`plan.Group`); its models differ in lambda and
seed. ``jax.vmap`` runs them together, `scan_loop.train_epochs` trains ``eval_every`` epochs at
a time, and after each such chunk the model's validation RMSE (standardised units) decides
whether its parameters become the kept ones: the program returns each model's parameters at
its best validation check, that check's epoch, and every check's score. The test split never
enters the program: `predict` scores the selected models afterwards.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from regcls_jax.method import losses, registry
from regcls_jax.models.mlp import MLP
from regcls_jax.train_lib import scan_loop, sharding
from regcls_jax.train_lib import step as step_lib


@dataclasses.dataclass(frozen=True)
class Statics:
  """What fixes one group's compiled program."""

  in_features: int
  hidden: tuple[int, ...]
  num_classes: int  # head outputs (0: regression only)
  balanced: bool  # Eq. 13 keep masks in the CE
  objective: str  # registry name
  settings: registry.Settings
  epochs: int
  eval_every: int
  batch_size: int
  weight_decay: float

  @property
  def checks(self) -> int:
    """Validation checks, one after every ``eval_every`` epochs (``epochs`` is a multiple)."""
    return self.epochs // self.eval_every


def model_keys(seed) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(init, shuffle, keep draws)`` keys of a seed: every method's model of one seed starts
  from the same trunk and sees the same batch order, so methods compare paired by seed."""
  base = jax.random.key(seed)
  return tuple(jax.random.fold_in(base, i) for i in range(3))


def _model(statics: Statics, rngs: nnx.Rngs) -> MLP:
  return MLP(statics.in_features, statics.hidden, statics.num_classes, rngs=rngs)


def init_params(statics: Statics, seed) -> nnx.State:
  return nnx.state(_model(statics, nnx.Rngs(params=model_keys(seed)[0])))


def _graphdef(statics: Statics) -> nnx.GraphDef:
  return nnx.graphdef(nnx.eval_shape(lambda: _model(statics, nnx.Rngs(0))))


def param_template(statics: Statics) -> nnx.State:
  """Abstract parameters of one model (for restoring a checkpoint)."""
  return jax.eval_shape(lambda: init_params(statics, 0))


def _predict(statics: Statics, graphdef, priors, params, x) -> jax.Array:
  """The method's test-time prediction (`registry.predict`): the regression head, or a
  histogram method's expected bin centre."""
  pred, logits = nnx.merge(graphdef, params)(x)
  return registry.predict(statics.objective, pred, logits, priors)


def _loss_fn(statics: Statics, priors: dict):
  with_features = statics.objective in registry.FEATURE_LOSSES

  def loss_fn(model, batch, hparams, rng):
    del rng
    h = model.features(batch["x"])
    pred = model.reg_head(h)[..., 0]
    logits = model.cls_head(h) if model.cls_head is not None else None
    loss = registry.objective(
      statics.objective, pred, logits, batch, priors, hparams, statics.settings,
      features=h if with_features else None,
    )  # fmt: skip
    return loss, {}

  return loss_fn


def _train_one(statics: Statics, data: dict, priors: dict, model: dict):
  """Trains ONE model, keeping its parameters at the best validation check.

  Args:
    data: shared ``x_train [n_pad, d]``, ``y_train``, ``cls``, ``keep [n_pad]`` (classes and
      Eq. 13 keep probabilities of the training targets), padded to whole batches past the
      ``n`` training rows, and ``x_val``, ``y_val``.
    priors: the group's `registry.fit_priors` arrays.
    model: scalars ``seed`` (int32), ``lr``, ``lam``, ``scale``.

  Returns:
    (best params, ``{"val_rmse": [checks], "best_check", "train_loss": [epochs]}``).
  """
  _, shuffle_key, mask_key = model_keys(model["seed"])
  graphdef = _graphdef(statics)
  params = init_params(statics, model["seed"])
  tx = step_lib.adam_l2(0.0, statics.weight_decay)
  state = step_lib.init_state(params, tx, model["lam"], model["scale"])
  train_step = step_lib.make_train_step(graphdef, tx, _loss_fn(statics, priors))
  n_pad = data["y_train"].shape[0]  # whole batches; the first data["n"] rows are the table's

  def make_batch(pos, valid, step_key):
    batch = {"x": data["x_train"][pos], "y": data["y_train"][pos], "weight": valid}
    if statics.num_classes and statics.objective in registry.CLASSIFIES:
      batch["cls"] = data["cls"][pos]
      if statics.balanced:  # Eq. 13: a fresh keep draw every time a sample is seen
        batch["cls_mask"] = jax.random.uniform(step_key, pos.shape) < data["keep"][pos]
    return batch

  def val_rmse(params):
    pred = _predict(statics, graphdef, priors, params, data["x_val"])
    return jnp.sqrt(losses.regression_loss(pred, data["y_val"]))

  def chunk(carry, c):
    state, best_params, best = carry
    state, epoch_losses = scan_loop.train_epochs(
      state, train_step, make_batch, data["n"], n_pad,
      batch_size=statics.batch_size, epochs=statics.eval_every,
      shuffle_key=jax.random.fold_in(shuffle_key, c), mask_key=jax.random.fold_in(mask_key, c),
      lr_at_epoch=lambda epoch: model["lr"],
    )  # fmt: skip
    score = val_rmse(state.params)
    better = score < best  # a NaN never wins
    best_params = jax.tree.map(lambda a, b: jnp.where(better, a, b), state.params, best_params)
    return (state, best_params, jnp.where(better, score, best)), (score, epoch_losses)

  chunks = jnp.arange(statics.checks)
  init = (state, state.params, jnp.float32(jnp.inf))
  (_, best_params, _), (scores, epoch_losses) = jax.lax.scan(chunk, init, chunks)
  best_check = jnp.argmin(jnp.where(jnp.isnan(scores), jnp.inf, scores))
  return best_params, {
    "val_rmse": scores,
    "best_check": best_check,
    "train_loss": epoch_losses.reshape(-1),
  }


@functools.cache
def _program(statics: Statics, mesh: Mesh) -> Callable:
  return sharding.models_program(
    functools.partial(_train_one, statics), mesh, in_axes=(None, None, 0)
  )


def train(statics: Statics, mesh: Mesh, data: dict, priors: dict, model: dict):
  """Runs a group's program; ``model`` arrays have the (device-padded) model count first.

  Returns (best params, metrics) as device arrays, every leaf with the model axis first.
  """
  return _program(statics, mesh)(data, priors, model)


@functools.cache
def _predict_program(statics: Statics, mesh: Mesh) -> Callable:
  graphdef = _graphdef(statics)
  return sharding.models_program(
    lambda priors, params, x: _predict(statics, graphdef, priors, params, x),
    mesh,
    in_axes=(None, 0, None),
  )


def predict(statics: Statics, mesh: Mesh, priors: dict, params, x) -> jax.Array:
  """``[models, rows]`` predictions (standardised units) of stacked parameters on ``x``."""
  return _predict_program(statics, mesh)(priors, params, x)
