"""The tabular trainer: your own table, every method's grid, selection on validation.

``train_and_evaluate(config, workdir)`` reads and splits the table (`data.tabular`), trains
each group (one method and head size K; its lambdas x seeds side by side, `program`) with the
epoch count chosen on validation inside the program, saves an Orbax checkpoint after each
group (a rerun resumes), then selects each method's (K, lambda) per seed on validation
(`train_lib.selection`) and scores only the selected models on test, beside the reference
rows (`references`). Writes candidates.csv (every model's validation score), selected.csv,
summary.md, shots.png and predictions_test.npz (`report`). ``evaluate(config, workdir)``
restores the checkpoint, repeats the selection from the stored validation scores and rescores
the selected models (``*_eval`` files).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging

from regcls_jax.data import fixtures, tabular
from regcls_jax.families.tabular import plan, program, references, report
from regcls_jax.method import registry
from regcls_jax.train_lib import checkpoint, guards, metric_writers, pytrees, selection, sharding
from regcls_jax.train_lib import workdir as workdir_lib
from regcls_jax.train_lib.progress import Eta

CANDIDATE_COLUMNS = ("method", "group", "num_classes", "lam", "seed", "epochs", "val_rmse")


def load(config) -> tabular.Table:
  """The configured table; with ``data.fixture`` and no path, the fixture table."""
  data = config.data
  path = data.path
  if not path and data.fixture:
    path = os.path.join(fixtures.cached("tabular"), fixtures.TABLE_FILE)
  if not path:
    raise ValueError("config.data.path: expected a .csv or .parquet file (--config.data.path=)")
  if not data.target:
    raise ValueError(f"config.data.target: expected the target column of {path}")
  table = tabular.load_table(path, data.target, tuple(data.features), data.split_column, data.seed)
  logging.info(
    "%s: target %r, %d features, %s rows", path, table.target, len(table.features),
    " / ".join(f"{len(table.splits[s])} {s}" for s in tabular.SPLITS),
  )  # fmt: skip
  return table


def _candidates(group, models, metrics, config, table) -> list[dict]:
  """One candidates.csv row per trained model: its best check's epoch and val RMSE (units)."""
  scale = float(table.y_scale.std)
  best = np.asarray(metrics["best_check"])
  scores = np.asarray(metrics["val_rmse"])
  return [
    dict(method=group.method, group=group.name, num_classes=group.num_classes or "",
         lam=m.lam if group.objective in registry.CLASSIFIES else "", seed=m.seed,
         epochs=int(best[i] + 1) * config.eval_every, val_rmse=scale * float(scores[i, best[i]]),
         index=i)
    for i, m in enumerate(models)
  ]  # fmt: skip


def select_and_score(config, table, candidates, params, mesh) -> tuple[list[dict], dict]:
  """Each method's best (K, lambda) per seed on validation, scored on val and test.

  Returns:
    (selected.csv rows, ``{method: [seeds x test predictions]}`` in the target's units).
  """
  best = selection.winning_rows(candidates, ("method", "seed"), ("group", "lam"), "val_rmse")
  chosen = {}  # group name -> its chosen candidates
  for row in best.values():
    chosen.setdefault(row["group"], []).append(row)
  groups = {g.name: g for g in plan.plan_groups(config)}
  shot = report.shot_groups(config, table)[0]
  scored = {}
  for name, rows in chosen.items():
    statics = plan.statics_for(config, groups[name], len(table.features))
    priors = plan.group_priors(config, table, groups[name])
    order = sharding.padded_order(len(rows), mesh.devices.size)
    stacked = pytrees.unflatten(program.param_template(statics), params[name])
    chosen_params = pytrees.take(stacked, np.array([rows[i]["index"] for i in order]))
    pred = {
      s: table.y_scale.invert(jax.device_get(
        program.predict(statics, mesh, priors, chosen_params, table.splits[s].x)))
      for s in ("val", "test")
    }  # fmt: skip
    for i, c in enumerate(rows):
      fields = {k: c[k] for k in ("method", "seed", "num_classes", "lam", "epochs")}
      row = report.score_row(config, table, shot, {s: p[i] for s, p in pred.items()}, **fields)
      scored[(c["method"], c["seed"])] = (row, pred["test"][i])
  rows, predictions = [], {}
  for method in config.methods:
    for seed in config.seeds:
      row, test_pred = scored[(method, seed)]
      rows.append(row)
      predictions.setdefault(method, []).append(test_pred)
  return rows, predictions


def reference_rows(config, table) -> tuple[list[dict], dict, list[str]]:
  """The reference rows (one per seed; both fits are deterministic, so fitted once)."""
  rows, predictions, notes = [], {}, []
  shot = report.shot_groups(config, table)[0]
  for name in config.references:
    if name == "hgb" and not references.hgb_available():
      notes.append("hgb (gradient-boosted trees) skipped: scikit-learn is not installed "
                   "(pip install -e '.[tabular]')")  # fmt: skip
      continue
    pred = references.ols(table) if name == "ols" else references.hgb(table, 0)
    for seed in config.seeds:
      rows.append(report.score_row(config, table, shot, pred, method=name, seed=seed,
                                   params=pred["params"]))  # fmt: skip
      predictions.setdefault(name, []).append(pred["test"])
  return rows, predictions, notes


@guards.preemptible
def train_and_evaluate(config, workdir: str, preemption: guards.Preemption | None = None):
  """Trains every group, selects on validation, writes the reports and the checkpoint.

  SIGTERM stops after the group in flight (its models saved); the same command resumes.
  """
  plan.check_config(config)
  table = load(config)
  workdir_lib.prepare_workdir(workdir)
  groups = plan.plan_groups(config)
  mesh = sharding.models_mesh()
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  candidates, params, done = [], {}, []
  if ckpt.latest_step() is not None:
    params, meta = ckpt.restore()
    workdir_lib.check_resume(meta, config, plan.PLAN_FIELDS, ckpt.directory)
    candidates, done = list(meta["candidates"]), list(meta["groups_done"])
    logging.info("resuming: %s already trained", ", ".join(done))
  workdir_lib.write_config(config, workdir)
  cost = {g.name: len(plan.group_models(config, g)) * config.epochs for g in groups}
  eta = Eta(sum(cost.values()))
  for name in done:
    eta.skip(cost.get(name, 0))
  todo = [g for g in groups if g.name not in done]
  for i, group in enumerate(todo):
    if preemption.requested:
      logging.warning(
        "SIGTERM: stopped with %d group(s) to go; %s keeps the finished ones; run the same "
        "command again to resume", len(todo) - i, ckpt.directory,
      )  # fmt: skip
      ckpt.close()
      return None
    models = plan.group_models(config, group)
    statics = plan.statics_for(config, group, len(table.features))
    inputs = plan.group_inputs(config, table, group, models, mesh.devices.size)
    best_params, metrics = jax.device_get(program.train(statics, mesh, *inputs))
    candidates += _candidates(group, models, metrics, config, table)
    params[group.name] = pytrees.flatten(pytrees.take(best_params, np.arange(len(models))))
    done.append(group.name)
    meta = dict(candidates=candidates, groups_done=done,
                **workdir_lib.resume_meta(config, plan.PLAN_FIELDS))  # fmt: skip
    ckpt.save((ckpt.latest_step() or 0) + 1, params, meta)
    eta.advance(cost[group.name])
    logging.info("%s: %d models x %d epochs | %d/%d groups, %s", group.name, len(models),
                 config.epochs, len(done), len(groups), eta.line())  # fmt: skip
  ckpt.close()
  return _write(config, table, candidates, params, mesh, workdir)


def _write(config, table, candidates, params, mesh, workdir, suffix="") -> list[dict]:
  rows, predictions = select_and_score(config, table, candidates, params, mesh)
  ref_rows, ref_predictions, notes = reference_rows(config, table)
  rows += ref_rows
  predictions |= ref_predictions
  metric_writers.write_csv(
    candidates, os.path.join(workdir, f"candidates{suffix}.csv"), CANDIDATE_COLUMNS
  )
  report.write_reports(rows, predictions, config, table, workdir, notes, suffix)
  for method, (word, mean, lo, hi, _) in report.verdicts(rows).items():
    logging.info("%s vs reg: %s (test RMSE %+.4g, interval %+.4g .. %+.4g)", method, word, mean,
                 lo, hi)  # fmt: skip
  return rows


def evaluate(config, workdir: str) -> list[dict]:
  """Restores the checkpoint, selects again from its validation scores, rescores on test."""
  workdir_lib.check_workdir(workdir)
  params, meta = checkpoint.restore_for_eval(os.path.join(workdir, "checkpoints"))
  table = load(config)
  missing = [g.name for g in plan.plan_groups(config) if g.name not in meta["groups_done"]]
  if missing:
    raise ValueError(f"{workdir}: groups {missing} were not trained; rerun training first")
  rows = _write(config, table, meta["candidates"], params, sharding.models_mesh(), workdir, "_eval")
  before = {(r["method"], int(r["seed"])): float(r["test_rmse"])
            for r in report.read_csv(os.path.join(workdir, "selected.csv"))}  # fmt: skip
  diff = max(abs(before[(r["method"], r["seed"])] - r["test_rmse"]) for r in rows)
  logging.info("eval: %d rows; max |test RMSE - trained run's| = %.3g", len(rows), diff)
  return rows
