"""The image-folder experiment: a grid of image-model runs, selection on validation, a verdict.

``config.grid`` names the runs: every method of ``grid.methods`` with every head size of
``grid.num_classes`` (the methods with a head) and every ``grid.lams`` (reg+cls), for every
seed. Each run is one complete age-model run (`run.train_and_evaluate`: the best checkpoint
on validation RMSE, i.e. its epoch count chosen on validation) in ``runs/<name>/``; when it
ends, ``candidate.json`` records its validation score, and a rerun skips it (an interrupted
run resumes from its own latest checkpoint). Then each method's (K, lambda) is chosen per seed
on validation (`selection.winning_rows`) and only the chosen runs are scored on test
(`evaluation.evaluate` from their best checkpoints). ``W`` gets candidates.csv, selected.csv,
summary.md (`train_lib.summary`: mean +- std over seeds and a verdict against reg) and
shots.png; ``--mode=eval`` re-selects from the stored validation scores and rescores the
chosen checkpoints into the ``*_eval`` files.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from absl import logging

from regcls_jax.data import pipeline
from regcls_jax.families.images import evaluation, run
from regcls_jax.method import metrics, registry
from regcls_jax.train_lib import metric_writers, selection, summary
from regcls_jax.train_lib import workdir as workdir_lib
from regcls_jax.train_lib.progress import Eta

# The names grid.methods takes: the age model's methods and regcls_bal (reg+cls with
# equalised classes, Eq. 12, and keep masks, Eq. 13).
METHOD_NAMES = (
  "reg",
  "regcls",
  "regcls_bal",
  *(m for m in registry.METHODS if m not in ("reg", "regcls", *registry.FEATURE_METHODS)),
)
CANDIDATE_COLUMNS = ("run", "method", "seed", "num_classes", "lam", "epochs", "val_rmse")
CANDIDATE_FILE = "candidate.json"


@dataclasses.dataclass(frozen=True)
class Run:
  method: str  # a grid.methods name
  num_classes: int  # 0: no head
  lam: float  # 0 for the methods without the reg+cls loss
  seed: int

  @property
  def name(self) -> str:
    k = f"_k{self.num_classes}" if self.num_classes else ""
    lam = f"_lam{self.lam:g}" if self.method in ("regcls", "regcls_bal", "regcls+ranksim") else ""
    return f"{self.method}{k}{lam}_seed{self.seed}"

  @property
  def objective(self) -> str:
    return "regcls" if self.method == "regcls_bal" else self.method


def check_grid(config) -> None:
  """Raises ValueError naming the ``config.grid`` key of an unknown method or an empty list."""
  for key in ("methods", "num_classes", "lams", "seeds"):
    if not config.grid[key]:
      raise ValueError(f"config.grid.{key}: expected at least one value")
  for m in config.grid.methods:
    registry.check_method(m, "config.grid.methods", METHOD_NAMES)
  if not 0 <= config.few_shot <= config.many_shot:
    raise ValueError(
      f"config.few_shot: {config.few_shot} must lie in [0, config.many_shot={config.many_shot}]"
    )


def plan_runs(config) -> list[Run]:
  runs = []
  for method in config.grid.methods:
    objective = Run(method, 0, 0.0, 0).objective
    ks = config.grid.num_classes if registry.head_classes(objective, 2) else (0,)
    lams = config.grid.lams if objective in registry.CLASSIFIES else (0.0,)
    runs += [
      Run(method, int(k), float(lam), int(seed))
      for k in ks
      for lam in lams
      for seed in config.grid.seeds
    ]
  return runs


def run_config(config, r: Run):
  """The single-run config of ``r``: the folder config with its method, K, lambda and seed."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.method = r.objective
    c.balanced = r.method == "regcls_bal"
    c.num_classes = r.num_classes or config.num_classes
    c.lam = r.lam if r.objective in registry.CLASSIFIES else 1.0
    c.seed = r.seed
    c.data.seed = r.seed
    c.data.views = 2 if r.objective in registry.TWO_VIEWS else 1
  return c


def _run_dir(workdir: str, r: Run) -> str:
  return os.path.join(workdir, "runs", r.name)


def _candidate(workdir: str, r: Run) -> dict | None:
  path = os.path.join(_run_dir(workdir, r), CANDIDATE_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def _write_candidate(workdir: str, r: Run, meta: dict, steps_per_epoch: int) -> dict:
  row = dict(run=r.name, method=r.method, seed=r.seed, num_classes=r.num_classes or "",
             lam=r.lam if r.objective in registry.CLASSIFIES else "",
             epochs=meta["best"]["step"] // steps_per_epoch,
             val_rmse=float(meta["best"]["score"]))  # fmt: skip
  if jax.process_index() == 0:
    metric_writers.write_text(os.path.join(_run_dir(workdir, r), CANDIDATE_FILE), json.dumps(row))
  return row


def train_and_evaluate(config, workdir: str) -> dict | None:
  """Trains every run not finished yet, then selects on validation and scores on test."""
  check_grid(config)
  runs = plan_runs(config)
  workdir_lib.prepare_workdir(workdir)
  workdir_lib.write_config(config, workdir)
  done = {r: _candidate(workdir, r) for r in runs}
  todo = [r for r in runs if done[r] is None]
  logging.info("image folder: %d runs, %d to train", len(runs), len(todo))
  eta = Eta(len(todo))
  for i, r in enumerate(todo):
    c = run_config(config, r)
    meta = run.train_and_evaluate(c, _run_dir(workdir, r))
    if meta.get("preempted"):
      logging.warning("stopped in run %s; run the same command again to resume", r.name)
      return None
    steps_per_epoch = max(meta["step"] // max(meta["epoch"], 1), 1)
    done[r] = _write_candidate(workdir, r, meta, steps_per_epoch)
    eta.advance(1)
    logging.info("run %d/%d %s: val RMSE %.4g | %s", i + 1, len(todo), r.name,
                 done[r]["val_rmse"], eta.line())  # fmt: skip
  return report(config, workdir, runs, done, suffix="")


def evaluate(config, workdir: str) -> dict:
  """Re-selects from the runs' stored validation scores and rescores the chosen checkpoints
  (``selected_eval.csv``, ``summary_eval.md``, ``shots_eval.png``)."""
  check_grid(config)
  runs = plan_runs(config)
  done = {r: _candidate(workdir, r) for r in runs}
  missing = [r.name for r in runs if done[r] is None]
  if missing:
    raise ValueError(f"{workdir}: runs not trained yet: {', '.join(missing[:3])}; train first")
  return report(config, workdir, runs, done, suffix="_eval")


def report(config, workdir: str, runs: list[Run], done: dict, suffix: str) -> dict:
  """Selection on validation, test scores of the chosen runs, and the reports."""
  candidates = [done[r] for r in runs]
  by_name = {r.name: r for r in runs}
  best = selection.winning_rows(candidates, ("method", "seed"), ("num_classes", "lam"), "val_rmse")
  rows, predictions = [], {}
  y_test = train = None
  for cand in best.values():
    r = by_name[cand["run"]]
    c = run_config(config, r)
    out = evaluation.evaluate(c, _run_dir(workdir, r))
    test, val = out["test"], out["val"]
    row = {k: cand[k] for k in ("method", "seed", "num_classes", "lam", "epochs")}
    row |= dict(val_rmse=val["all"]["rmse"], test_rmse=test["all"]["rmse"],
                test_mae=test["all"]["mae"])  # fmt: skip
    row |= {f"test_rmse_{g}": test[g]["rmse"] for g in metrics.GROUPS}
    rows.append(row)
    with np.load(os.path.join(_run_dir(workdir, r), "predictions_test.npz")) as f:
      predictions.setdefault(r.method, []).append(f["pred"])
      y_test = f["label"]
    if train is None:
      builder = pipeline.prepare(c.data)
      scale = pipeline.target_scale(builder, c.data)
      train = scale.invert(pipeline.targets(builder, c.data, "train"))
      sizes = {s: builder.info.splits[s].num_examples for s in ("train", "val", "test")}
  if jax.process_index() == 0:
    metric_writers.write_csv(
      candidates, os.path.join(workdir, f"candidates{suffix}.csv"), CANDIDATE_COLUMNS
    )
    metric_writers.write_csv(
      rows, os.path.join(workdir, f"selected{suffix}.csv"), summary.SELECTED_COLUMNS
    )
    groups, counts, _ = metrics.binned_shot_groups(
      y_test, train, config.shot_bins, config.many_shot, config.few_shot
    )
    text = summary_markdown(config, rows, groups, sizes)
    metric_writers.write_text(os.path.join(workdir, f"summary{suffix}.md"), text)
    summary.plot_shots(os.path.join(workdir, f"shots{suffix}.png"), predictions, y_test, counts,
                       config, "the target")  # fmt: skip
  for method, (word, mean, lo, hi, n) in summary.verdicts(rows).items():
    logging.info("%s against reg: %s (%+.4g, %+.4g .. %+.4g, %d seeds)", method, word, mean, lo,
                 hi, n)  # fmt: skip
  return {"selected": rows, "candidates": candidates}


def summary_markdown(config, rows: list[dict], groups: np.ndarray, sizes: dict) -> str:
  shots = {g: int(np.sum(groups == g)) for g in metrics.GROUPS}
  lines = [
    f"# {config.data.data_dir or 'the fixture folder'}: image regression",
    "",
    f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test images at "
    f"{config.data.image_size} px. Test shot groups ({config.shot_bins} bins of the training "
    f"range; many > {config.many_shot}, few < {config.few_shot} training images): "
    + ", ".join(f"{g} {n}" for g, n in shots.items())
    + ".",
    "",
    "Each method's K and lambda are chosen on validation per seed, its epochs by the best "
    "validation RMSE of the run; only the chosen run is scored on test. Mean +- std over "
    f"{len(config.grid.seeds)} seeds, in the target's units.",
    "",
    *summary.selected_table(rows),
    "",
    *summary.verdict_lines(rows),
  ]
  return "\n".join(lines).rstrip() + "\n"
