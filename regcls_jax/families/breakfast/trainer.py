"""The Breakfast progress trainer (paper Sec. 3.3, Tab. 5).

``train_and_evaluate(config, workdir)`` reads every frame's features once (`frames`), plans one
model per (split, activity, seed) for each method (`plan`), trains each method's models together
in one compiled program (`program`), and writes ``results.csv`` (split, activity, method,
target, seed, rmse, ...), ``table5.md`` (`report`) and an Orbax checkpoint (saved after each
method; a rerun with the same workdir resumes). The "random" rows are the untrained models'
RMSE from the same program. With ``config.select_lam``, reg+cls's lambda is first chosen per
split on held-out training videos (`select_lam`; ``lam_search.csv``). ``evaluate(config,
workdir)`` restores the checkpoint and recomputes every RMSE.
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
from regcls_jax.train_lib import checkpoint, guards, pytrees, selection, sharding
from regcls_jax.train_lib import workdir as workdir_lib
from regcls_jax.train_lib.progress import format_seconds


def select_lam(config, frames, models, method, mesh, features, targets):
  """reg+cls's lambda per split, chosen on validation (paper Sec. 3.3).

  Every model trains on two thirds of its training videos once per candidate of
  ``config.lam_search[target]`` (all candidates side by side in one program) and is scored on
  the held-out third (`plan.validation_frames`); per split, the candidate with the lowest mean
  validation RMSE over the activities wins (`selection.select`).

  Returns:
    (each model's selected lambda ``[models]``, the search rows for ``lam_search.csv``).
  """
  candidates = [float(v) for v in config.lam_search[config.target]]
  if not candidates:
    raise ValueError(f"config.lam_search.{config.target}: expected at least one lambda")
  val_pairs = [plan.validation_frames(frames, m) for m in models]
  expanded = [m for _ in candidates for m in models]
  lams = np.repeat(candidates, len(models))
  inputs = plan.method_inputs(
    config, frames, expanded, method, mesh.devices.size, val_pairs * len(candidates), lams
  )
  _, metrics = program.train(plan.statics_for(config, method), mesh, features, targets, *inputs)
  rmse = np.asarray(jax.device_get(metrics["rmse"]))[: len(expanded)]
  scale = report.report_scale(config.target)
  search = [
    dict(split=m.split, activity=m.activity, method=method, seed=m.seed, lam=float(lam),
         val_rmse=scale * float(v))
    for m, lam, v in zip(expanded, lams, rmse)
  ]  # fmt: skip
  best = selection.select(search, by=("split",), choose=("lam",), score="val_rmse")
  for row in search:
    row["selected"] = int(row["lam"] == best[(row["split"],)]["lam"])
  for b in best.values():
    logging.info("%s %s: lambda %g selected (val RMSE %.3f)", method, b["split"], b["lam"],
                 b["val_rmse"])  # fmt: skip
  return np.array([best[(m.split,)]["lam"] for m in models]), search


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
  rows, params, done, search = [], {}, [], []
  if ckpt.latest_step() is not None:
    params, meta = ckpt.restore()
    workdir_lib.check_resume(meta, config, plan.PLAN_FIELDS, ckpt.directory)
    rows, done = list(meta["rows"]), list(meta["methods_done"])
    search = list(meta.get("lam_search", []))
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
    lams = None
    if plan.selects_lam(config, method):
      lams, method_search = select_lam(config, frames, models, method, mesh, features, targets)
      search += method_search
    else:
      lams = plan.method_lams(config, method, len(models))
    model_in, train_in, test_in = plan.method_inputs(
      config, frames, models, method, mesh.devices.size, lams=lams
    )
    out_params, metrics = program.train(
      plan.statics_for(config, method), mesh, features, targets, model_in, train_in, test_in
    )
    out_params, metrics = jax.device_get((out_params, metrics))
    real = len(models)
    if not rows:  # the untrained models: the "random" baseline, from the first method's run
      init = {k: metrics[f"{k}_init"] for k in ("rmse", "rmse_pooled")}
      rows += report.rows_of(models, "random", config.target, init, None, pairs)
    loss = metrics["train_loss"][:real, -1]
    rows += report.rows_of(models, method, config.target, metrics, loss, pairs, lams)
    params[method] = pytrees.flatten(pytrees.take(out_params, np.arange(real)))
    done.append(method)
    meta = dict(
      rows=rows,
      methods_done=done,
      lam_search=search,
      **workdir_lib.resume_meta(config, plan.PLAN_FIELDS),
    )
    ckpt.save((ckpt.latest_step() or 0) + 1, params, meta)  # steps only grow
    elapsed = time.perf_counter() - start
    logging.info(
      "%s: %d models x %d epochs in %s | %d/%d methods, elapsed %s",
      method, real, config.epochs, format_seconds(time.perf_counter() - t), len(done),
      len(config.methods), format_seconds(elapsed),
    )  # fmt: skip
  ckpt.close()
  report.write_reports(rows, config, workdir, search=search)
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
    scores = jax.device_get(evaluate_params(pytrees.take(stacked, order)))
    if not rows:  # "random": the untrained models, rebuilt from their seeds
      seeds = np.array([m.seed for m in models])[order]
      ids = np.array([m.model_id for m in models])[order]
      init = jax.vmap(functools.partial(program.init_params, statics))(seeds, ids)
      init_scores = jax.device_get(evaluate_params(init))
      rows += report.rows_of(models, "random", config.target, init_scores, None, pairs)
    trained = {
      (r["split"], r["activity"], r["seed"]): r for r in meta["rows"] if r["method"] == method
    }
    loss = [trained[(m.split, m.activity, m.seed)]["train_loss"] for m in models]
    lams = [trained[(m.split, m.activity, m.seed)]["lam"] for m in models]
    rows += report.rows_of(models, method, config.target, scores, loss, pairs, lams)
  report.write_reports(rows, config, workdir, suffix="_eval")
  before = {(r["method"], r["split"], r["activity"], r["seed"]): r["rmse"] for r in meta["rows"]}
  diff = max(
    abs(before[(r["method"], r["split"], r["activity"], r["seed"])] - r["rmse"]) for r in rows
  )
  logging.info("eval: %d rows; max |RMSE - trained run's| = %.3g", len(rows), diff)
  return rows
