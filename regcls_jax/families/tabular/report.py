"""The tabular family's reports: selected.csv, summary.md, shots.png, predictions_test.npz.

A row scores one selected model (or reference) of one seed in the target's units: val and test
RMSE, test MAE and the test RMSE per shot group (`metrics.binned_shot_groups`: DIR's
many / medium / few thresholds over uniform bins of the training range). The summary gives
each method's mean +- std over seeds and its verdict against ``reg`` from the paired 95%
interval of the per-seed test RMSE differences (`metrics.paired_interval`).
"""

from __future__ import annotations

import collections
import csv
import os

import numpy as np

from regcls_jax.data import tabular
from regcls_jax.method import metrics
from regcls_jax.train_lib import metric_writers, summary

verdicts = summary.verdicts

COLUMNS = (*summary.SELECTED_COLUMNS, "params")


def shot_groups(config, table: tabular.Table):
  """``(group, training count, bin)`` of every test sample (`metrics.binned_shot_groups`)."""
  return metrics.binned_shot_groups(
    table.splits["test"].y_raw, table.splits["train"].y_raw, config.shot_bins,
    config.many_shot, config.few_shot,
  )  # fmt: skip


def score_row(config, table, groups, pred: dict, **fields) -> dict:
  """One selected.csv row from val / test predictions in the target's units."""
  val_err = pred["val"] - table.splits["val"].y_raw
  test_err = pred["test"] - table.splits["test"].y_raw
  row = dict(fields, val_rmse=summary.rmse(val_err), test_rmse=summary.rmse(test_err))
  row["test_mae"] = float(np.mean(np.abs(test_err)))
  for g in metrics.GROUPS:
    row[f"test_rmse_{g}"] = summary.rmse(test_err[groups == g])
  return row


def read_csv(path: str) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def summary_markdown(rows: list[dict], config, table: tabular.Table, groups, notes=()) -> str:
  sizes = {s: len(table.splits[s]) for s in tabular.SPLITS}
  shots = collections.Counter(groups.tolist())
  lines = [
    f"# {os.path.basename(table.path)}: target `{table.target}`",
    "",
    f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test rows, "
    f"{len(table.features)} features. Test shot groups ({config.shot_bins} bins of the training "
    f"range; many > {config.many_shot}, few < {config.few_shot} training rows): "
    + ", ".join(f"{g} {shots.get(g, 0)}" for g in metrics.GROUPS)
    + ".",
    "",
    "Each method's K, lambda and epochs are chosen on validation per seed; only the chosen model "
    f"is scored on test. Mean +- std over {len(config.seeds)} seeds, in the target's units.",
    "",
    *summary.selected_table(rows),
    "",
    *summary.verdict_lines(rows),
  ]
  lines += [""] + [f"Note: {n}" for n in notes]
  return "\n".join(lines).rstrip() + "\n"


def plot_shots(path: str, predictions: dict, table: tabular.Table, counts, config) -> None:
  """`summary.plot_shots` of the test predictions against the test targets."""
  y = table.splits["test"].y_raw
  summary.plot_shots(path, predictions, y, counts, config, table.target)


def write_reports(rows, predictions, config, table, workdir, notes=(), suffix="") -> None:
  """selected{suffix}.csv, summary{suffix}.md, shots{suffix}.png, predictions_test{suffix}.npz."""
  groups, counts, _ = shot_groups(config, table)
  metric_writers.write_csv(rows, os.path.join(workdir, f"selected{suffix}.csv"), COLUMNS)
  text = summary_markdown(rows, config, table, groups, notes)
  metric_writers.write_text(os.path.join(workdir, f"summary{suffix}.md"), text)
  plot_shots(os.path.join(workdir, f"shots{suffix}.png"), predictions, table, counts, config)
  arrays = {f"pred_{m}": np.stack(p) for m, p in predictions.items()}
  arrays |= {"label": table.splits["test"].y_raw, "rows": table.splits["test"].rows}
  tmp = os.path.join(workdir, f".predictions_test{suffix}.npz")
  np.savez(tmp, **arrays)
  os.replace(tmp, os.path.join(workdir, f"predictions_test{suffix}.npz"))
