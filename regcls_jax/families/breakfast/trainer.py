"""The Breakfast progress trainer (paper Sec. 3.3, Tab. 5).

``train_and_evaluate(config, workdir)`` reads every frame's features once (`frames`), plans one
model per (split, activity, seed) for each method (`plan`), trains each method's models together
in one compiled program (`program`), and writes ``results.csv`` (split, activity, method,
target, seed, rmse, ...), ``table5.md`` (`report`) and an Orbax checkpoint (saved after each
method; a rerun with the same workdir resumes). The "random" rows are the untrained models'
RMSE from the same program. ``evaluate(config, workdir)`` restores the checkpoint and
recomputes every RMSE.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import numpy as np
from absl import logging

from regcls_jax.families.breakfast import frames as frames_lib
from regcls_jax.families.breakfast import plan, program, report
from regcls_jax.train_lib import checkpoint, guards, pytrees, sharding
from regcls_jax.train_lib import workdir as workdir_lib
from regcls_jax.train_lib.progress import format_seconds


@guards.preemptible
def train_and_evaluate(
  config, workdir: str, preemption: guards.Preemption | None = None
) -> list[dict]:
  """Trains every method's models, writes results.csv, table5.md and the checkpoint.

  SIGTERM stops after the method in flight (its models saved); the same command resumes.
  """
  plan.check_methods(config)
  workdir_lib.prepare_workdir(workdir)
  models = plan.plan_models(config)
  frames = frames_lib.load(config)
  pairs = [plan.model_frames(frames, m) for m in models]  # checks every split/activity first
  mesh = sharding.models_mesh()
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  rows, params, done = [], {}, []
  if ckpt.latest_step() is not None:
    params, meta = ckpt.restore()
    workdir_lib.check_resume(meta, config, plan.PLAN_FIELDS, ckpt.directory)
    rows, done = list(meta["rows"]), list(meta["methods_done"])
    logging.info("resuming: %s already trained", ", ".join(done))
  workdir_lib.write_config(config, workdir)
  features, start = jax.device_put(frames.features), time.perf_counter()
  targets = jax.device_put(frames.targets(config.target))
  todo = [m for m in config.methods if m not in done]
  for method in todo:
    if preemption.requested:
      logging.warning(
        "SIGTERM: stopped after %s with %d method(s) to go; %s keeps the finished ones; run "
        "the same command again to resume", ", ".join(done), len(todo) - todo.index(method),
        ckpt.directory,
      )  # fmt: skip
      ckpt.close()
      return rows
    t = time.perf_counter()
    model_in, train_in, test_in = plan.method_inputs(
      config, frames, models, method, mesh.devices.size
    )
    out_params, metrics = program.train(
      plan.statics_for(config, method), mesh, features, targets, model_in, train_in, test_in
    )
    out_params, metrics = jax.device_get((out_params, metrics))
    real = len(models)
    if not rows:  # the untrained models: the "random" baseline, from the first method's run
      rows += report.rows_of(models, "random", config.target, metrics["rmse_init"], None, pairs)
    loss = metrics["train_loss"][:real, -1]
    rows += report.rows_of(models, method, config.target, metrics["rmse"][:real], loss, pairs)
    params[method] = pytrees.flatten(pytrees.take(out_params, np.arange(real)))
    done.append(method)
    meta = dict(rows=rows, methods_done=done, **workdir_lib.resume_meta(config, plan.PLAN_FIELDS))
    ckpt.save((ckpt.latest_step() or 0) + 1, params, meta)  # steps only grow
    elapsed = time.perf_counter() - start
    logging.info(
      "%s: %d models x %d epochs in %s | %d/%d methods, elapsed %s",
      method, real, config.epochs, format_seconds(time.perf_counter() - t), len(done),
      len(config.methods), format_seconds(elapsed),
    )  # fmt: skip
  ckpt.close()
  report.write_reports(rows, config, workdir)
  return rows


def evaluate(config, workdir: str) -> list[dict]:
  """Recomputes every RMSE from the checkpoint; writes results_eval.csv and table5_eval.md."""
  workdir_lib.check_workdir(workdir)
  params, meta = checkpoint.restore_for_eval(os.path.join(workdir, "checkpoints"))
  models = plan.plan_models(config)
  frames = frames_lib.load(config)
  pairs = [plan.model_frames(frames, m) for m in models]
  mesh = sharding.models_mesh()
  features, targets = jax.device_put(frames.features), jax.device_put(frames.targets(config.target))
  rows = []
  for method in meta["methods_done"]:
    statics = plan.statics_for(config, method)
    model_in, _, test_in = plan.method_inputs(config, frames, models, method, mesh.devices.size)
    evaluate_params = functools.partial(
      program.evaluate,
      statics,
      mesh,
      features,
      targets,
      priors=model_in["priors"],
      test_split=test_in,
    )
    order = sharding.padded_order(len(models), mesh.devices.size)
    stacked = pytrees.unflatten(program.param_template(statics), params[method])
    rmse = np.asarray(evaluate_params(pytrees.take(stacked, order)))
    if not rows:  # "random": the untrained models, rebuilt from their seeds
      seeds = np.array([m.seed for m in models])[order]
      ids = np.array([m.model_id for m in models])[order]
      init = jax.vmap(functools.partial(program.init_params, statics))(seeds, ids)
      init_rmse = np.asarray(evaluate_params(init))
      rows += report.rows_of(models, "random", config.target, init_rmse, None, pairs)
    trained = {
      (r["split"], r["activity"], r["seed"]): r for r in meta["rows"] if r["method"] == method
    }
    loss = [trained[(m.split, m.activity, m.seed)]["train_loss"] for m in models]
    rows += report.rows_of(models, method, config.target, rmse, loss, pairs)
  report.write_reports(rows, config, workdir, suffix="_eval")
  before = {(r["method"], r["split"], r["activity"], r["seed"]): r["rmse"] for r in meta["rows"]}
  diff = max(
    abs(before[(r["method"], r["split"], r["activity"], r["seed"])] - r["rmse"]) for r in rows
  )
  logging.info("eval: %d rows; max |RMSE - trained run's| = %.3g", len(rows), diff)
  return rows
