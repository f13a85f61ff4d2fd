"""Reports of models selected on validation: the method table, verdicts, the shots plot.

Shared by the families that select one model per method and seed (the tabular family, the
image folder). A row is a dict with at least ``method``, ``seed``, ``num_classes``, ``lam``,
``epochs``, ``val_rmse``, ``test_rmse``, ``test_mae`` and ``test_rmse_<group>`` for DIR's shot
groups. Each method's verdict against ``reg`` comes from the paired 95% t interval of the
per-seed test RMSE differences (`metrics.paired_interval`, `metrics.verdict`).
"""

from __future__ import annotations

import collections

import numpy as np

from regcls_jax.method import metrics
from regcls_jax.train_lib import metric_writers

REFERENCE = "reg"
SELECTED_COLUMNS = (
  "method", "seed", "num_classes", "lam", "epochs", "val_rmse", "test_rmse", "test_mae",
  "test_rmse_many", "test_rmse_medium", "test_rmse_few",
)  # fmt: skip


def rmse(err: np.ndarray) -> float:
  err = np.asarray(err, np.float64)
  return float(np.sqrt(np.mean(err**2))) if err.size else float("nan")


def mean_std(values) -> str:
  """``'mean +- std'`` over seeds (4 significant digits), one value as is, ``-`` for none."""
  v = np.asarray(values, np.float64)
  if v.size == 0 or np.all(np.isnan(v)):
    return "-"
  return f"{np.nanmean(v):.4g} +- {np.nanstd(v):.2g}" if v.size > 1 else f"{v[0]:.4g}"


def choices(values) -> str:
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


def selected_table(rows: list[dict]) -> list[str]:
  """The markdown table: per method its chosen K / lambda / epochs over seeds and the mean +-
  std of its errors."""
  lines = [
    "| method | K | lambda | epochs | val RMSE | test RMSE | test MAE | many | medium | few |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  by_method = collections.defaultdict(list)
  for r in rows:
    by_method[r["method"]].append(r)
  for method, rs in by_method.items():
    cells = [method]
    for key in ("num_classes", "lam", "epochs"):
      cells.append(choices([r[key] for r in rs]) if rs[0].get(key) not in ("", None) else "-")
    for key in ("val_rmse", "test_rmse", "test_mae", *(f"test_rmse_{g}" for g in metrics.GROUPS)):
      cells.append(mean_std([r[key] for r in rs]))
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def verdict_lines(rows: list[dict]) -> list[str]:
  """One markdown bullet per method: its verdict against reg with the paired interval."""
  lines = [f"Against `{REFERENCE}` (test RMSE difference, paired by seed, 95% t interval):", ""]
  for method, (word, mean, lo, hi, n) in verdicts(rows).items():
    lines.append(f"- `{method}`: {word} ({mean:+.4g}, interval {lo:+.4g} .. {hi:+.4g}, {n} seeds)")
  return lines


def plot_shots(path: str, predictions: dict, y: np.ndarray, counts, config, target: str) -> None:
  """Test RMSE against the training frequency of the test sample's target bin, one line per
  method (``predictions``: method -> one prediction array per seed, aligned with ``y``): test
  samples pooled by their bin's training count in powers of two (1, 2-3, 4-7, ...), the RMSE
  of each pool averaged over seeds; dotted lines mark the few / many-shot thresholds."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  pool = np.floor(np.log2(np.maximum(counts, 0.5))).astype(int)  # count 0 -> pool -1
  pools = np.unique(pool)
  x = 2.0**pools * np.where(pools >= 0, 1.5, 1.0)  # a pool's middle (0.5 for empty bins)
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for method, pred in predictions.items():
    values = [np.mean([rmse(p[pool == q] - y[pool == q]) for p in pred]) for q in pools]
    ax.plot(x, values, marker="o", ms=4, lw=1.2, label=method)
  for threshold in (config.few_shot, config.many_shot):
    ax.axvline(max(threshold, 0.5), color="grey", ls=":", lw=1)
  ax.set_xscale("log")
  ax.set_xlabel(f"training samples in the test sample's target bin (of {config.shot_bins})")
  ax.set_ylabel(f"test RMSE of {target}")
  ax.set_title("error against the target's training frequency (few | medium | many)")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  metric_writers.save_figure(fig, path)
  plt.close(fig)
