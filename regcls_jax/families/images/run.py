"""One image model's training run (age, depth, one run of an image-folder grid): paper Sec. 3.2.

``train_and_evaluate(config, workdir)`` trains one model with the jitted, donated step of
`setup` over a ``data`` mesh (one CPU, N GPUs, TPU cores; several hosts through
``jax.distributed``), evaluates on validation after every epoch (`evaluation`), and keeps two
Orbax checkpoints: ``checkpoints/latest`` (model, optimiser, step and Grain iterator; a rerun
resumes from it) and ``checkpoints/best`` (best validation MAE for age, RMSE for depth).
``evaluation.evaluate(config, workdir)`` scores the best one on val and test.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
from absl import logging

from regcls_jax.data import pipeline
from regcls_jax.families.images import evaluation
from regcls_jax.families.images import setup as setup_lib
from regcls_jax.train_lib import guards, metric_writers, sharding
from regcls_jax.train_lib import workdir as workdir_lib
from regcls_jax.train_lib.progress import format_seconds


@guards.preemptible
def train_and_evaluate(config, workdir: str, preemption: guards.Preemption | None = None) -> dict:
  """Trains, validates every epoch, keeps the best checkpoint; returns the best val metrics.

  SIGTERM saves ``checkpoints/latest`` at the next step and returns (``meta['preempted']``);
  the next run with the same workdir resumes from it. A NaN / inf loss raises
  FloatingPointError naming the first such step, before anything of it is saved.
  """
  workdir_lib.prepare_workdir(workdir)
  setup_lib.check_method(config)
  latest, best = setup_lib.checkpointers(workdir)
  resuming = latest.latest_step() is not None
  if resuming:  # before any work or file: a resume with another config refuses here
    meta = latest.restore_meta()
    workdir_lib.check_resume(meta, config, setup_lib.plan_fields(config), latest.directory)
  s = setup_lib.setup(config)
  per_step = config.data.batch_size * config.accum_steps
  loader = pipeline.make_loader(s.builder, config, "train", s.classes, batch_size=per_step)
  it = iter(loader)
  state = s.state
  meta = {"step": 0, "epoch": 0, "best": None, "history": []}
  meta |= workdir_lib.resume_meta(config, setup_lib.plan_fields(config))
  if resuming:
    state, meta = setup_lib.restore_state(latest, s, data_iterator=it)
    logging.info("resuming at step %d (epoch %d)", meta["step"], meta["epoch"])
  workdir_lib.write_config(config, workdir)
  writer = metric_writers.tensorboard_writer(workdir)
  log_file = metric_writers.MetricsLog(workdir, resumed_step=int(meta["step"]))
  total = config.epochs * s.steps_per_epoch
  if config.max_steps:
    total = min(total, config.max_steps)
  rng = jax.random.key(config.seed)
  step, t0, seen, last_save = int(meta["step"]), time.perf_counter(), 0, time.perf_counter()
  first_bad = jnp.array(-1, jnp.int32)
  meta.pop("preempted", None)
  while step < total:
    batch = sharding.device_batch(next(it), s.mesh, config.accum_steps)
    state, m = s.step_fn(state, batch, jax.random.fold_in(rng, step))
    step += 1
    first_bad = guards.first_nonfinite(first_bad, m["loss"], jnp.int32(step))
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
      bad = int(sharding.host_copy(first_bad))
      if bad >= 0:
        raise FloatingPointError(
          f"step {bad}: the training loss is not finite; stopped at step {step}, "
          f"checkpoints/latest keeps the last good state (step {latest.latest_step() or 0})"
        )
    if log:
      rate = seen / max(time.perf_counter() - t0, 1e-9)
      eta = (total - step) * config.data.batch_size * config.accum_steps / max(rate, 1e-9)
      eta = format_seconds(eta) if seen >= 1 else "-"  # step 1 compiled: no rate yet
      values = {k: float(sharding.host_copy(m[k])) for k in ("loss", "reg", "ce")}
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
      predictions = evaluation.predict_split(config, s, state, "val")
      result = evaluation.split_metrics(config, s, predictions)
      score = evaluation.score(config, result)
      meta["history"].append({"step": step, "val": result})
      log_file.write(step=step, val=result)
      if writer:
        writer.add_scalar(f"val/{'_'.join(setup_lib.task(config).selection)}", score, step)
      if meta["best"] is None or score < meta["best"]["score"]:
        meta["best"] = {"step": step, "score": score}
        setup_lib.save_state(best, state, meta)
      logging.info("epoch %d: val %s = %.4f (best %.4f at step %d)", meta["epoch"],
                   "/".join(setup_lib.task(config).selection), score, meta["best"]["score"],
                   meta["best"]["step"])  # fmt: skip
    if stop and step < total:
      meta["preempted"] = True  # saved with the checkpoint; the resumed run drops it
    if epoch_end or periodic or stop:
      setup_lib.save_state(latest, state, meta, data_iterator=it)
      last_save = time.perf_counter()
    if meta.get("preempted"):
      logging.warning(
        "SIGTERM: stopped at step %d/%d and saved %s; run the same command again to resume",
        step, total, latest.directory,
      )  # fmt: skip
      break
  latest.close()
  best.close()
  if writer:
    writer.close()
  return meta
