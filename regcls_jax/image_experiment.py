"""The age (IMDB-WIKI-DIR) and depth (NYUD2-DIR) trainer: paper Sec. 3.2, Tab. 2-4.

``run(config, workdir)`` trains one model with a jitted, donated step over a ``data`` mesh (one
CPU, N GPUs, TPU cores; several hosts through ``jax.distributed``), evaluates on validation
after every epoch, and keeps two Orbax checkpoints: ``checkpoints/latest`` (model, optimiser,
step and Grain iterator; a rerun resumes from it) and ``checkpoints/best`` (best validation
MAE for age, RMSE for depth). ``evaluate(config, workdir)`` restores the best one and writes
``eval_<split>.json``, ``eval_<split>.md`` and ``predictions_<split>.npz`` for val and test.

Batch-norm statistics are computed over the global batch: the step is one jitted program over
the sharded batch, so XLA reduces across devices (synchronised BN, unlike the reference's
per-GPU statistics).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from regcls_jax import checkpoint, core, losses, metrics, pretrained
from regcls_jax import methods as methods_lib
from regcls_jax.data import nyud2, pipeline
from regcls_jax.experiment1d import check_workdir, prepare_workdir
from regcls_jax.grid1d import format_seconds
from regcls_jax.models.depth import DepthNet, resize_align_corners
from regcls_jax.models.resnet import AgeResNet

DTYPES = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}


@dataclasses.dataclass(frozen=True)
class Task:
  """What differs between age and depth."""

  model_cls: type
  selection: tuple[str, str]  # (metrics group, key) minimised on validation
  input_key: str = "image"


TASKS = {
  "imdbwiki": Task(AgeResNet, ("all", "mae")),
  "nyud2": Task(DepthNet, ("all", "rmse")),
}


def _task(config) -> Task:
  return TASKS[config.experiment]


def build_model(config, num_classes: int) -> nnx.Module:
  m = config.model
  return _task(config).model_cls(
    num_classes,
    m.width,
    tuple(m.stage_sizes),
    dtype=DTYPES[m.dtype],
    rngs=nnx.Rngs(params=config.seed),
  )


def make_loss_fn(config, priors: dict | None = None):
  """``s * (lam * reg + CE)`` with the reg/cls masks of the batch (Eq. 4, 13; Tab. 4), or a
  baseline's loss (methods.py) with the training labels' ``priors``."""
  settings = methods_lib.Settings.from_config(config.get("peers"))

  def baseline_loss_fn(model, batch, hparams, rng):
    del rng
    pred, logits = model(batch["image"])
    fields = {"y": batch["label"], "weight": batch.get("reg_mask")}
    loss = methods_lib.objective(config.method, pred, logits, fields, priors, hparams, settings)
    return loss, {"reg": loss, "ce": jnp.zeros_like(loss)}

  def loss_fn(model, batch, hparams, rng):
    del rng
    pred, logits = model(batch["image"])
    with_cls = logits is not None
    return losses.reg_cls_loss(
      pred,
      batch["label"],
      logits,
      batch["cls"] if with_cls else None,
      lam=hparams["lam"],
      scale=hparams["scale"],
      weight=batch.get("reg_mask"),
      cls_mask=batch["cls_mask"] if with_cls else None,
      reg_kind=config.loss,
    )

  return loss_fn if config.method in ("reg", "regcls") else baseline_loss_fn


# ---------------------------------------------------------------------------------------------
# Set-up: model, state, step


@dataclasses.dataclass
class Setup:
  builder: object
  classes: tuple | None
  priors: dict  # methods.fit_priors of the training labels (baselines; placeholders otherwise)
  graphdef: nnx.GraphDef  # training mode
  eval_graphdef: nnx.GraphDef
  state: core.TrainState
  step_fn: object
  mesh: jax.sharding.Mesh
  steps_per_epoch: int


def check_method(config) -> None:
  """reg, reg+cls and the baselines of methods.py but FDS (it needs an epoch-end pass over the
  training features, which only the 1D sweep has); for depth not BMC (one target per image)
  nor the histogram losses (the per-pixel head predicts at twice the target's resolution)."""
  allowed = tuple(m for m in methods_lib.METHODS if m not in methods_lib.FEATURE_METHODS)
  if config.experiment == "nyud2":
    allowed = tuple(m for m in allowed if m not in ("bmc", *methods_lib.HISTOGRAM))
  methods_lib.check_method(config.method, "config.method", allowed)
  methods_lib.Settings.from_config(config.get("peers"))


def setup(config) -> Setup:
  check_method(config)
  builder = pipeline.prepare(config.data)
  # Classes (and keep masks) feed the cls head, and with `rebalance` also the reg-only model's
  # re-balanced regression loss (Tab. 4).
  with_cls = config.method == "regcls"
  classes = pipeline.fit_classes(builder, config) if with_cls or config.rebalance else None
  k = len(classes[1]) if with_cls else 0  # K' <= K after equalisation (Eq. 12)
  if config.method in methods_lib.HISTOGRAM:
    k = config.num_classes
  settings = methods_lib.Settings.from_config(config.get("peers"))
  values, counts = pipeline.training_targets(builder, config.data)
  priors = methods_lib.fit_priors(config.method, values, settings, k, counts)
  model = build_model(config, k)
  graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
  if config.model.init_from:  # ImageNet weights from a local file (pretrained.py)
    params, model_state = pretrained.load_into(config.model.init_from, params, model_state)
  model.eval()
  eval_graphdef = nnx.split(model, nnx.Param, ...)[0]
  per_step = config.data.batch_size * config.accum_steps
  train_size = builder.info.splits["train"].num_examples
  steps_per_epoch = max(train_size // per_step, 1)
  schedule = core.step_schedule(
    config.lr, tuple(e * steps_per_epoch for e in config.lr_decay_epochs), config.lr_decay
  )
  tx = core.adam_l2(schedule, config.weight_decay)
  lam = config.lam if config.method == "regcls" else 0.0
  state = core.init_state(params, tx, lam, config.scale, model_state)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  replicated = NamedSharding(mesh, P())
  state = jax.device_put(state, replicated)
  step = core.make_train_step(graphdef, tx, make_loss_fn(config, priors), config.accum_steps)
  batch_sharding = NamedSharding(mesh, P("data") if config.accum_steps == 1 else P(None, "data"))
  step_fn = jax.jit(
    step,
    in_shardings=(replicated, batch_sharding, None),
    out_shardings=(replicated, None),
    donate_argnums=(0,),
  )
  return Setup(
    builder, classes, priors, graphdef, eval_graphdef, state, step_fn, mesh, steps_per_epoch
  )


def _device_batch(batch: dict, mesh, accum: int) -> dict:
  """Host batch -> global arrays; with accumulation, ``[accum, B, ...]`` micro-batches."""
  if accum > 1:
    batch = {k: v.reshape(accum, -1, *v.shape[1:]) for k, v in batch.items()}
  spec = P("data") if accum == 1 else P(None, "data")
  sharding = NamedSharding(mesh, spec)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------
# Evaluation


def predict_split(config, s: Setup, state: core.TrainState, split: str) -> dict[str, np.ndarray]:
  """Predictions over one split: ``pred``, ``label`` (+ ``mask`` for depth), paired.

  Batches are sharded over the mesh like training batches; with several processes each reads
  its shard and the results are gathered, so every process returns the whole split. Depth
  predictions are resized (bilinear, align_corners) from 114 x 152 to the 228 x 304 label, as
  the reference does before its metrics.
  """
  n_local = len(s.mesh.local_devices)
  graphdef = s.eval_graphdef
  data = NamedSharding(s.mesh, P("data"))
  replicated = NamedSharding(s.mesh, P())

  def forward(params, model_state, images):
    model = nnx.merge(graphdef, params, model_state)
    if config.method in methods_lib.HISTOGRAM:  # the head's expected bin centre (age only)
      return methods_lib.predict(config.method, None, model(images)[1], s.priors)
    out = model.predict(images)
    if out.ndim == 3:
      out = resize_align_corners(out[..., None], (2 * out.shape[1], 2 * out.shape[2]))[..., 0]
    return out

  forward = jax.jit(forward, in_shardings=(replicated, replicated, data), out_shardings=replicated)
  loader = pipeline.make_loader(s.builder, config, split, train=False)
  parts = {"pred": [], "label": [], "mask": []}
  for batch in loader:
    n = len(batch["label"])
    pad = -n % n_local  # every process pads its own batch to its devices
    images = np.concatenate([batch["image"], np.repeat(batch["image"][-1:], pad, 0)])
    images = jax.make_array_from_process_local_data(data, images)
    out = _host(forward(state.params, state.model_state, images))
    # Every process's rows, in process order: keep each process's first n rows.
    per_process = out.reshape(jax.process_count(), -1, *out.shape[1:])
    parts["pred"].append(per_process[jax.process_index()][:n])
    parts["label"].append(batch["label"])
    if "mask" in batch:
      parts["mask"].append(batch["mask"])
  out = {k: np.concatenate(v) for k, v in parts.items() if v}
  if jax.process_count() > 1:
    out = _gather_processes(out)
  return out


def _gather_processes(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Concatenates every process's rows (shards may differ in length by a few records)."""
  from jax.experimental import multihost_utils

  n = len(next(iter(arrays.values())))
  counts = np.asarray(multihost_utils.process_allgather(np.array([n]))).ravel()
  out = {}
  for k, v in arrays.items():
    padded = np.concatenate([v, np.zeros((counts.max() - n, *v.shape[1:]), v.dtype)])
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    out[k] = np.concatenate([g[:c] for g, c in zip(gathered, counts)])
  return out


def split_metrics(config, s: Setup, predictions: dict) -> dict:
  if config.experiment == "imdbwiki":
    train_labels = pipeline.targets(s.builder, config.data, "train")
    return metrics.age_metrics(predictions["pred"], predictions["label"], train_labels)
  m = metrics.DepthMetrics()
  m.update(predictions["pred"], predictions["label"], predictions.get("mask"))
  return m.result()


def _score(config, result: dict) -> float:
  group, key = _task(config).selection
  return float(result[group][key])


# ---------------------------------------------------------------------------------------------
# Checkpoints


def _checkpointers(workdir: str) -> tuple[checkpoint.Checkpointer, checkpoint.Checkpointer]:
  root = os.path.join(workdir, "checkpoints")
  return checkpoint.Checkpointer(os.path.join(root, "latest")), checkpoint.Checkpointer(
    os.path.join(root, "best")
  )


def _host(tree):
  """Host (numpy) copies of replicated arrays: this process's first copy, which also works
  when the array spans other processes' devices (multi-process runs)."""

  def get(a):
    return np.asarray(a.addressable_data(0)) if isinstance(a, jax.Array) else a

  return jax.tree.map(get, tree)


def _save(ckpt, state, meta, data_iterator=None):
  """Every process calls this (Orbax saves collectively); each stores its own data iterator."""
  flat = checkpoint.flatten_state(_host(state))
  ckpt.save(int(meta["step"]), {"state": flat}, meta, data_iterator=data_iterator)


def _state_from(params: dict, s: Setup) -> core.TrainState:
  """The replicated TrainState of a restored checkpoint's arrays (every process restores)."""
  state = checkpoint.unflatten_state(_host(s.state), params["state"])
  return jax.device_put(state, NamedSharding(s.mesh, P()))


def _restore(ckpt, s: Setup, data_iterator=None) -> tuple[core.TrainState, dict]:
  params, meta = ckpt.restore(data_iterator=data_iterator)
  return _state_from(params, s), meta


# ---------------------------------------------------------------------------------------------
# Entry points


def _tb_writer(workdir: str):
  if jax.process_index() != 0:
    return None
  from tensorboardX import SummaryWriter

  return SummaryWriter(os.path.join(workdir, "tensorboard"))


class _Preemption:
  """Turns SIGTERM (a preempted TPU VM, ``scancel``, ``kill``) into a request to stop at the
  next step boundary; with several processes they agree first, so all save the same step."""

  def __init__(self):
    self.requested = False
    self._previous = None
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. a thread in a notebook): no handler
      self._previous = None

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def agreed(self) -> bool:
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils

    return bool(np.max(multihost_utils.process_allgather(np.array([self.requested]))))

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


@functools.partial(jax.jit, donate_argnums=(0,))
def _first_nonfinite(first: jax.Array, loss: jax.Array, step: jax.Array) -> jax.Array:
  """The first step whose loss was NaN or inf (-1: none), tracked on the device without a
  host sync per step."""
  return jnp.where((first < 0) & ~jnp.isfinite(loss), step, first)


class _MetricsLog:
  """``metrics.jsonl`` in the workdir (process 0): one JSON line per logged step / epoch."""

  def __init__(self, workdir: str):
    self._path = os.path.join(workdir, "metrics.jsonl") if jax.process_index() == 0 else None

  def write(self, **record) -> None:
    if self._path:
      with open(self._path, "a") as f:
        f.write(json.dumps(record) + "\n")


def run(config, workdir: str) -> dict:
  """Trains, validates every epoch, keeps the best checkpoint; returns the best val metrics.

  SIGTERM saves ``checkpoints/latest`` at the next step and returns (``meta['preempted']``);
  the next run with the same workdir resumes from it. A NaN / inf loss raises
  FloatingPointError naming the first such step, before anything of it is saved.
  """
  prepare_workdir(workdir)
  s = setup(config)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  latest, best = _checkpointers(workdir)
  per_step = config.data.batch_size * config.accum_steps
  loader = pipeline.make_loader(s.builder, config, "train", s.classes, batch_size=per_step)
  it = iter(loader)
  state, meta = s.state, {"step": 0, "epoch": 0, "best": None, "history": []}
  if latest.latest_step() is not None:
    state, meta = _restore(latest, s, data_iterator=it)
    logging.info("resuming at step %d (epoch %d)", meta["step"], meta["epoch"])
  writer, log_file, preemption = _tb_writer(workdir), _MetricsLog(workdir), _Preemption()
  total = config.epochs * s.steps_per_epoch
  if config.max_steps:
    total = min(total, config.max_steps)
  rng = jax.random.key(config.seed)
  step, t0, seen, last_save = int(meta["step"]), time.perf_counter(), 0, time.perf_counter()
  first_bad = jnp.array(-1, jnp.int32)
  meta.pop("preempted", None)
  while step < total:
    batch = _device_batch(next(it), s.mesh, config.accum_steps)
    state, m = s.step_fn(state, batch, jax.random.fold_in(rng, step))
    step += 1
    first_bad = _first_nonfinite(first_bad, m["loss"], jnp.int32(step))
    if seen == 0:  # the first step compiles: time the rate from the second on
      jax.block_until_ready(m["loss"])
      t0, seen = time.perf_counter(), 1e-9
    else:
      seen += config.data.batch_size * config.accum_steps
    log = step % config.log_every == 0 or step == total
    epoch_end = step % s.steps_per_epoch == 0 or step == total
    periodic = time.perf_counter() - last_save >= config.checkpoint_every_secs
    # With several processes the stop request is agreed on every 10 steps (a collective);
    # alone, at every step.
    stop = (jax.process_count() == 1 or step % 10 == 0 or log) and preemption.agreed()
    if log or epoch_end or periodic or stop:  # never log or save a non-finite state
      bad = int(_host(first_bad))
      if bad >= 0:
        raise FloatingPointError(
          f"step {bad}: the training loss is not finite; stopped at step {step}, "
          f"checkpoints/latest keeps the last good state (step {latest.latest_step() or 0})"
        )
    if log:
      rate = seen / max(time.perf_counter() - t0, 1e-9)
      eta = (total - step) * config.data.batch_size * config.accum_steps / max(rate, 1e-9)
      eta = format_seconds(eta) if seen >= 1 else "-"  # step 1 compiled: no rate yet
      values = {k: float(_host(m[k])) for k in ("loss", "reg", "ce")}
      logging.info(
        "step %d/%d | loss %.4f (reg %.4f, ce %.4f) | %.1f img/s | ETA %s",
        step, total, values["loss"], values["reg"], values["ce"], rate, eta,
      )  # fmt: skip
      log_file.write(step=step, **values, img_per_s=rate)
      if writer:
        for k, v in values.items():
          writer.add_scalar(f"train/{k}", v, step)
        writer.add_scalar("train/img_per_s", rate, step)
    meta["step"], meta["epoch"] = step, step // s.steps_per_epoch
    if epoch_end:
      result = split_metrics(config, s, predict_split(config, s, state, "val"))
      score = _score(config, result)
      meta["history"].append({"step": step, "val": result})
      log_file.write(step=step, val=result)
      if writer:
        writer.add_scalar(f"val/{'_'.join(_task(config).selection)}", score, step)
      if meta["best"] is None or score < meta["best"]["score"]:
        meta["best"] = {"step": step, "score": score}
        _save(best, state, meta)
      logging.info("epoch %d: val %s = %.4f (best %.4f at step %d)", meta["epoch"],
                   "/".join(_task(config).selection), score, meta["best"]["score"],
                   meta["best"]["step"])  # fmt: skip
    if stop and step < total:
      meta["preempted"] = True  # saved with the checkpoint; the resumed run drops it
    if epoch_end or periodic or stop:
      _save(latest, state, meta, data_iterator=it)
      last_save = time.perf_counter()
    if meta.get("preempted"):
      logging.warning(
        "SIGTERM: stopped at step %d/%d and saved %s; run the same command again to resume",
        step, total, latest.directory,
      )  # fmt: skip
      break
  preemption.close()
  latest.close()
  best.close()
  if writer:
    writer.close()
  return meta


def evaluate(config, workdir: str) -> dict:
  """Restores the best checkpoint and writes eval_<split>.{json,md}, predictions_<split>.npz."""
  check_workdir(workdir)
  params, meta = checkpoint.restore_for_eval(os.path.join(workdir, "checkpoints", "best"))
  s = setup(config)
  state = _state_from(params, s)
  out = {}
  for split in ("val", "test"):
    pred = predict_split(config, s, state, split)
    result = split_metrics(config, s, pred)
    out[split] = result
    logging.info("%s: %s", split, json.dumps(result["all"]))
    if jax.process_index() != 0:  # every process computed the metrics; process 0 writes
      continue
    with open(os.path.join(workdir, f"eval_{split}.json"), "w") as f:
      json.dump({"step": meta["step"], "metrics": result}, f, indent=2)
    keys = ("mae", "mse", "gm") if config.experiment == "imdbwiki" else metrics_keys()
    with open(os.path.join(workdir, f"eval_{split}.md"), "w") as f:
      f.write(f"{config.experiment} {split}, best checkpoint (step {meta['step']})\n\n")
      f.write(metrics.markdown_table(result, keys))
    if "mask" in pred:  # depth: every counted pixel
      keep = pred["mask"] & (pred["label"] > 0)
      np.savez(os.path.join(workdir, f"predictions_{split}.npz"), pred=pred["pred"][keep],
               label=pred["label"][keep], bin=nyud2.depth_bins(pred["label"][keep]))  # fmt: skip
    else:
      np.savez(os.path.join(workdir, f"predictions_{split}.npz"), pred=pred["pred"],
               label=pred["label"])  # fmt: skip
  return out


def metrics_keys() -> tuple[str, ...]:
  return ("rmse", "mse", "mae", "absrel", "log10", "delta1", "delta2", "delta3")
