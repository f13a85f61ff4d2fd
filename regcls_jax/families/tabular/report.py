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
from regcls_jax.train_lib import metric_writers

COLUMNS = (
  "method", "seed", "num_classes", "lam", "epochs", "val_rmse", "test_rmse", "test_mae",
  "test_rmse_many", "test_rmse_medium", "test_rmse_few", "params",
)  # fmt: skip
REFERENCE = "reg"


def _rmse(err: np.ndarray) -> float:
  return float(np.sqrt(np.mean(err**2))) if err.size else float("nan")


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
  row = dict(fields, val_rmse=_rmse(val_err), test_rmse=_rmse(test_err))
  row["test_mae"] = float(np.mean(np.abs(test_err)))
  for g in metrics.GROUPS:
    row[f"test_rmse_{g}"] = _rmse(test_err[groups == g])
  return row


def read_csv(path: str) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _mean_std(values) -> str:
  v = np.asarray(values, np.float64)
  if v.size == 0 or np.all(np.isnan(v)):
    return "-"
  return f"{np.nanmean(v):.4g} +- {np.nanstd(v):.2g}" if v.size > 1 else f"{v[0]:.4g}"


def _choices(values) -> str:
  """The selected values over seeds: ``'16'``, or ``'16 x3, 4 x2'`` when seeds differ."""
  counts = collections.Counter(values)
  if len(counts) == 1:
    return str(next(iter(counts)))
  return ", ".join(f"{v} x{n}" for v, n in counts.most_common())


def verdicts(rows: list[dict]) -> dict[str, tuple[str, float, float, float, int]]:
  """Per method (not reg): ``(verdict, mean, low, high, seeds)`` of its test RMSE minus reg's,
  paired by seed."""
  reg = {r["seed"]: r["test_rmse"] for r in rows if r["method"] == REFERENCE}
  out = {}
  for method in dict.fromkeys(r["method"] for r in rows):
    if method == REFERENCE:
      continue
    diffs = [
      r["test_rmse"] - reg[r["seed"]] for r in rows if r["method"] == method and r["seed"] in reg
    ]
    if diffs:
      mean, lo, hi = metrics.paired_interval(diffs)
      out[method] = (metrics.verdict(lo, hi), mean, lo, hi, len(diffs))
  return out


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
    "| method | K | lambda | epochs | val RMSE | test RMSE | test MAE | many | medium | few |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  by_method = collections.defaultdict(list)
  for r in rows:
    by_method[r["method"]].append(r)
  for method, rs in by_method.items():
    cells = [method]
    for key in ("num_classes", "lam", "epochs"):
      cells.append(_choices([r[key] for r in rs]) if rs[0].get(key) not in ("", None) else "-")
    for key in ("val_rmse", "test_rmse", "test_mae", *(f"test_rmse_{g}" for g in metrics.GROUPS)):
      cells.append(_mean_std([r[key] for r in rs]))
    lines.append("| " + " | ".join(cells) + " |")
  lines += [
    "",
    f"Against `{REFERENCE}` (test RMSE difference, paired by seed, 95% t interval):",
    "",
  ]
  for method, (word, mean, lo, hi, n) in verdicts(rows).items():
    lines.append(f"- `{method}`: {word} ({mean:+.4g}, interval {lo:+.4g} .. {hi:+.4g}, {n} seeds)")
  lines += [""] + [f"Note: {n}" for n in notes]
  return "\n".join(lines).rstrip() + "\n"


def plot_shots(path: str, predictions: dict, table: tabular.Table, counts, config) -> None:
  """Test RMSE against the training frequency of the test sample's target bin, one line per
  method: test samples pooled by their bin's training count in powers of two (1, 2-3, 4-7,
  ...), the RMSE of each pool averaged over seeds; dotted lines mark the few / many-shot
  thresholds."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  y = table.splits["test"].y_raw
  pool = np.floor(np.log2(np.maximum(counts, 0.5))).astype(int)  # count 0 -> pool -1
  pools = np.unique(pool)
  x = 2.0**pools * np.where(pools >= 0, 1.5, 1.0)  # a pool's middle (0.5 for empty bins)
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for method, pred in predictions.items():
    rmse = [np.mean([_rmse(p[pool == q] - y[pool == q]) for p in pred]) for q in pools]
    ax.plot(x, rmse, marker="o", ms=4, lw=1.2, label=method)
  for threshold in (config.few_shot, config.many_shot):
    ax.axvline(max(threshold, 0.5), color="grey", ls=":", lw=1)
  ax.set_xscale("log")
  ax.set_xlabel(f"training rows in the test sample's target bin (of {config.shot_bins})")
  ax.set_ylabel(f"test RMSE of {table.target}")
  ax.set_title("error against the target's training frequency (few | medium | many)")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  metric_writers.save_figure(fig, path)
  plt.close(fig)


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
