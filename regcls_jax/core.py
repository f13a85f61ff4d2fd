"""The training core every experiment shares: state, optimiser, one pure train step.

A model is split once (``nnx.split``) into a static graph definition and a pytree of parameters;
the step is a pure function of that pytree, so it can be jitted, vmapped over thousands of
models (the 1D sweep) or sharded over a device mesh, and its state checkpointed as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from regcls_jax import losses

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
# loss_fn(model, batch, hparams, rng) -> (scalar loss, metrics)
LossFn = Callable[[nnx.Module, Batch, dict[str, jax.Array], jax.Array], tuple[jax.Array, Metrics]]


@flax.struct.dataclass
class TrainState:
  """Everything a step changes. ``hparams`` holds per-model loss weights (``lam``, ``scale``),
  which lets one vmapped program train models with different lambdas side by side."""

  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState
  hparams: dict[str, jax.Array]


def adam_l2(learning_rate: float, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Adam with coupled L2 weight decay (``weight_decay * param`` added to the gradient before
  the Adam moments), which is what ``torch.optim.Adam(weight_decay=...)`` in the reference does;
  not AdamW. The learning rate is an injected hyper-parameter: it lives in the optimiser state,
  so it can differ per model under ``vmap`` (see `set_learning_rate`)."""

  def make(learning_rate):
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))

  return optax.inject_hyperparams(make)(learning_rate=learning_rate)


def set_learning_rate(opt_state: Any, learning_rate: jax.Array) -> Any:
  """Returns ``opt_state`` (of `adam_l2`) with its learning rate replaced."""
  hyper = dict(opt_state.hyperparams)
  hyper["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
  return opt_state._replace(hyperparams=hyper)


def init_state(
  params: nnx.State, tx: optax.GradientTransformation, lam: float = 1.0, scale: float = 1.0
) -> TrainState:
  """A fresh state at step 0."""
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=tx.init(params),
    hparams={"lam": jnp.asarray(lam, jnp.float32), "scale": jnp.asarray(scale, jnp.float32)},
  )


def reg_cls_loss_fn(model, batch: Batch, hparams, rng) -> tuple[jax.Array, Metrics]:
  """`losses.reg_cls_loss` on a model returning ``(pred, logits or None)``.

  Batch keys: ``x``, ``y``; optional ``cls`` (classes), ``weight`` (sample validity) and
  ``cls_mask`` (Eq. 13 keep mask).
  """
  del rng  # deterministic models
  pred, logits = model(batch["x"])
  return losses.reg_cls_loss(
    pred,
    batch["y"],
    logits,
    batch.get("cls"),
    lam=hparams["lam"],
    scale=hparams["scale"],
    weight=batch.get("weight"),
    cls_mask=batch.get("cls_mask"),
  )


def make_train_step(
  graphdef: nnx.GraphDef, tx: optax.GradientTransformation, loss_fn: LossFn = reg_cls_loss_fn
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
  """Builds the pure step ``(state, batch, rng) -> (state, metrics)``.

  Not jitted here: callers jit it (with donation and shardings) or trace it inside a larger
  program (the 1D sweep scans and vmaps it).
  """

  def train_step(state: TrainState, batch: Batch, rng: jax.Array):
    def objective(params):
      return loss_fn(nnx.merge(graphdef, params), batch, state.hparams, rng)

    (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, **metrics}

  return train_step
