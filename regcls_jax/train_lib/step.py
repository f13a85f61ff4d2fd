"""The training core every experiment shares: state, optimiser, one pure train step.

A model is split once (``nnx.split``) into a static graph definition and a pytree of parameters;
the step is a pure function of that pytree, so it can be jitted, vmapped over thousands of
models (the 1D grid) or sharded over a device mesh, and its state checkpointed as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from regcls_jax.method import losses

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
  # The model's non-trainable variables (batch-norm statistics), or None for models without.
  model_state: Any = None


def adam_l2(
  learning_rate: float | optax.Schedule, weight_decay: float = 0.0
) -> optax.GradientTransformation:
  """Adam with coupled L2 weight decay (``weight_decay * param`` added to the gradient before
  the Adam moments), which is what ``torch.optim.Adam(weight_decay=...)`` in the reference does;
  not AdamW. The learning rate is an injected hyper-parameter: it lives in the optimiser state,
  so it can differ per model under ``vmap`` (see `set_learning_rate`), or a schedule of the
  step count (`step_schedule`)."""

  def make(learning_rate):
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))

  return optax.inject_hyperparams(make)(learning_rate=learning_rate)


def set_learning_rate(opt_state: Any, learning_rate: jax.Array) -> Any:
  """Returns ``opt_state`` (of `adam_l2`) with its learning rate replaced."""
  hyper = dict(opt_state.hyperparams)
  hyper["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
  return opt_state._replace(hyperparams=hyper)


def step_schedule(base: float, boundaries: tuple[int, ...], factor: float) -> optax.Schedule:
  """``base * factor ** (number of boundaries <= step)``: the reference's MultiStepLR."""
  return optax.piecewise_constant_schedule(base, {int(b): factor for b in boundaries})


def init_state(
  params: nnx.State,
  tx: optax.GradientTransformation,
  lam: float = 1.0,
  scale: float = 1.0,
  model_state: nnx.State | None = None,
) -> TrainState:
  """A fresh state at step 0; ``model_state`` holds batch-norm statistics, if any."""
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=tx.init(params),
    hparams={"lam": jnp.asarray(lam, jnp.float32), "scale": jnp.asarray(scale, jnp.float32)},
    model_state=model_state,
  )


def reg_cls_loss_fn(
  model, batch: Batch, hparams, rng, reg_reduction: str = "mean"
) -> tuple[jax.Array, Metrics]:
  """`losses.reg_cls_loss` on a model returning ``(pred, logits or None)``.

  Batch keys: ``x``, ``y``; optional ``cls`` (classes), ``weight`` (sample validity) and
  ``cls_mask`` (Eq. 13 keep mask). ``reg_reduction='sum'`` is the Breakfast reference's
  summed MSE (bind it with ``functools.partial``).
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
    reg_reduction=reg_reduction,
  )


def make_train_step(
  graphdef: nnx.GraphDef,
  tx: optax.GradientTransformation,
  loss_fn: LossFn = reg_cls_loss_fn,
  accum_steps: int = 1,
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
  """Builds the pure step ``(state, batch, rng) -> (state, metrics)``.

  Not jitted here: callers jit it (with donation and shardings) or trace it inside a larger
  program (the 1D and Breakfast programs scan and vmap it).

  Models with batch norm keep their statistics in ``state.model_state`` (``graphdef`` then comes
  from ``nnx.split(model, nnx.Param, ...)``); the forward pass in training mode updates them.
  With ``accum_steps > 1`` every batch leaf has a leading micro-batch axis of that size: the
  gradients of the micro-batches are averaged into one update (the reference's batch_acu), the
  statistics updated micro-batch by micro-batch.
  """

  def objective(params, model_state, batch, hparams, rng):
    if model_state is None:
      model = nnx.merge(graphdef, params)
    else:  # fresh Variables at this trace level: the forward pass updates the statistics
      model = nnx.merge(graphdef, params, model_state, copy=True)
    loss, metrics = loss_fn(model, batch, hparams, rng)
    new_model_state = None if model_state is None else nnx.split(model, nnx.Param, ...)[2]
    return loss, (metrics, new_model_state)

  grad_fn = jax.value_and_grad(objective, has_aux=True)

  def train_step(state: TrainState, batch: Batch, rng: jax.Array):
    if accum_steps == 1:
      (loss, (metrics, model_state)), grads = grad_fn(
        state.params, state.model_state, batch, state.hparams, rng
      )
    else:
      # A Python loop (unrolled in the program), not lax.scan: XLA:CPU ran the convolutions of
      # a scanned body ~9x slower here, and the micro-batch count is small (2-4).
      grads, model_state, step_losses, step_metrics = None, state.model_state, [], []
      for i in range(accum_steps):
        micro_batch = jax.tree.map(lambda x, i=i: x[i], batch)
        (loss_i, (metrics_i, model_state)), g = grad_fn(
          state.params, model_state, micro_batch, state.hparams, rng
        )
        grads = g if grads is None else jax.tree.map(jnp.add, grads, g)
        step_losses.append(loss_i)
        step_metrics.append(metrics_i)
      grads = jax.tree.map(lambda g: g / accum_steps, grads)
      loss = sum(step_losses) / accum_steps
      metrics = jax.tree.map(lambda *m: sum(m) / accum_steps, *step_metrics)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(
      step=state.step + 1, params=params, opt_state=opt_state, model_state=model_state
    )
    return new_state, {"loss": loss, **metrics}

  return train_step
