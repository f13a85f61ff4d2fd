"""Breakfast results: ``results.csv`` (one row per model and method) and ``table5.md`` (Tab. 5)."""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from regcls_jax.families.breakfast.frames import SPLITS
from regcls_jax.families.breakfast.plan import METHOD_NAMES
from regcls_jax.train_lib import metric_writers

COLUMNS = (
  "split",
  "activity",
  "method",
  "target",
  "seed",
  "rmse",
  "rmse_pooled",
  "lam",
  "train_loss",
  "n_train",
  "n_test",
)
# Paper Tab. 5 (RMSE, mean over the 10 activities), for the table's comparison rows.
PAPER_TABLE5 = {
  "fraction": {  # the paper reports RMSE x 100 of fraction targets
    "random": (58.50, 58.37, 58.39, 58.38),
    "reg": (32.57, 33.30, 32.52, 33.08),
    "regcls": (28.71, 28.84, 28.46, 28.44),
  },
  "percent": {
    "random": (58.50, 58.37, 58.39, 58.38),
    "reg": (32.57, 33.30, 32.52, 33.08),
    "regcls": (28.71, 28.84, 28.46, 28.44),
  },
  "frames": {
    "random": (1394.48, 1511.04, 1450.26, 1420.21),
    "reg": (860.17, 891.39, 862.65, 845.48),
    "regcls": (837.59, 870.55, 845.65, 809.76),
    "regcls_bal": (837.61, 870.54, 845.65, 809.76),
  },
}
LABELS = {
  "random": "random (untrained)",
  "reg": "reg",
  "regcls": "reg+cls",
  "regcls_bal": "reg+cls bal.",
  **{m: m for m in METHOD_NAMES if m not in ("reg", "regcls", "regcls_bal")},
}


LAM_SEARCH_COLUMNS = ("split", "activity", "method", "seed", "lam", "val_rmse", "selected")


def report_scale(target: str) -> float:
  """Reported RMSE = RMSE x this: the paper's table gives fraction targets' RMSE x 100."""
  return 100.0 if target == "fraction" else 1.0


def rows_of(models, method, target, metrics, train_loss, pairs, lams=None) -> list[dict]:
  """One results.csv row per model; ``metrics`` holds ``rmse`` and ``rmse_pooled`` per model
  (in target units; reported x `report_scale`)."""
  scale = report_scale(target)
  return [
    dict(
      split=m.split,
      activity=m.activity,
      method=method,
      target=target,
      seed=m.seed,
      rmse=scale * float(metrics["rmse"][i]),
      rmse_pooled=scale * float(metrics["rmse_pooled"][i]),
      lam=float(lams[i]) if lams is not None else 0.0,
      train_loss=float(train_loss[i]) if train_loss is not None else float("nan"),
      n_train=len(pairs[i][0]),
      n_test=len(pairs[i][1]),
    )
    for i, m in enumerate(models)
  ]


def _method_rows(rows, splits, column) -> list[str]:
  lines = []
  for method in ("random", *METHOD_NAMES):
    cells = []
    for s in splits:
      v = np.array([r[column] for r in rows if r["method"] == method and r["split"] == s])
      cells.append(f"{v.mean():.2f} ({v.std():.2f})" if v.size else "-")
    if any(c != "-" for c in cells):
      lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
  return lines


def table5_markdown(rows: list[dict], target: str, search: list[dict] | None = None) -> str:
  """Paper Tab. 5's layout: RMSE mean (std over activities, ddof=0) per split, per method;
  the authors' batched RMSE, then the pooled one, then the lambdas selected on validation."""
  splits = [s for s in SPLITS if any(r["split"] == s for r in rows)]
  unit = {"fraction": "x100", "percent": "%"}.get(target, "frames")
  head = "| method | " + " | ".join(f"{s.upper()} {unit}" for s in splits) + " |"
  lines = [
    f"RMSE on the test participants ({target} targets, reported {unit}), mean (std) over the "
    "10 activities; the authors' metric: the mean over batches of 40 test frames of each "
    "batch's RMSE.",
    "",
  ]
  lines += [head, "|---|" + "---|" * len(splits), *_method_rows(rows, splits, "rmse")]
  lines += ["", "Pooled RMSE over all test frames of an activity (same layout):", ""]
  lines += [head, "|---|" + "---|" * len(splits), *_method_rows(rows, splits, "rmse_pooled")]
  if search:
    lines += ["", "lambda selected per split on a third of the training videos (val RMSE):", ""]
    chosen = sorted({(r["method"], r["split"], r["lam"]) for r in search if r["selected"]})
    lines += ["| method | split | lambda |", "|---|---|---|"]
    lines += [f"| {LABELS[m]} | {s.upper()} | {lam:g} |" for m, s, lam in chosen]
  paper = PAPER_TABLE5[target]
  lines += ["", "Paper Tab. 5 (same layout, means only):", "", head, "|---|" + "---|" * len(splits)]
  for method, values in paper.items():
    cells = [f"{values[SPLITS.index(s)]:.2f}" for s in splits]
    lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_reports(
  rows: list[dict], config, workdir: str, suffix: str = "", search: list[dict] | None = None
) -> None:
  metric_writers.write_csv(rows, os.path.join(workdir, f"results{suffix}.csv"), COLUMNS)
  if search:
    metric_writers.write_csv(search, os.path.join(workdir, "lam_search.csv"), LAM_SEARCH_COLUMNS)
  with open(os.path.join(workdir, f"table5{suffix}.md"), "w") as f:
    f.write(table5_markdown(rows, config.target, search))
  logging.info("wrote %s", os.path.join(workdir, f"results{suffix}.csv / table5{suffix}.md"))
