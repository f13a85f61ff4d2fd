"""Results of the 1D grid: ``results.csv``, ``summary.md`` (Fig. 3 / Tab. 1), ``fig3.png``."""

from __future__ import annotations

import csv
from collections.abc import Sequence

import numpy as np

from regcls_jax.train_lib import metric_writers

COLUMNS = (
  "scenario",
  "sampling",
  "function",
  "version",
  "seed",
  "method",
  "num_classes",
  "balanced",
  "lam",
  "lr",
  "noise",
  "val_mse",
  "test_mse",
  "train_loss",
  "group",
  "index",
)


def write_results_csv(rows: Sequence[dict], path: str) -> None:
  """``results.csv``: one row per model, the `COLUMNS` (written atomically)."""
  metric_writers.write_csv(rows, path, COLUMNS)


def read_csv(path: str) -> list[dict]:
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  for r in rows:
    for k in ("function", "version", "seed", "num_classes", "index"):
      r[k] = int(r[k])
    r.setdefault("noise", "0.1")  # results.csv written before the noise sweep
    for k in ("lam", "lr", "noise", "val_mse", "test_mse", "train_loss"):
      r[k] = float(r[k])
    r["balanced"] = r["balanced"] in ("True", "true", "1")
  return rows


def _ordered(values, order):
  present = set(values)
  return [v for v in order if v in present]


def dataset_key(row: dict) -> tuple:
  """The dataset a row's model was trained on (as `plan.Run.dataset`)."""
  return (row["scenario"], row["sampling"], row["function"], row["version"], row["noise"])


def variants(rows):
  """The reg+cls variants in the rows: (balanced,) pairs, labelled as in the paper."""
  bal = sorted({r["balanced"] for r in rows if r["method"] == "regcls"})
  return [(b, "reg+cls bal." if b else "reg+cls") for b in bal]


def fig3_stats(rows: Sequence[dict], scenarios, samplings) -> dict:
  """``{(scenario, sampling): {'reg': (mean, std, n), label: (mean, std, n, win %)}}``.

  Means and stds of test MSE over functions, versions (and K, lambda for reg+cls); the win
  percentage is Tab. 1's: the share of reg+cls runs with lower test MSE than the reg model of
  the same dataset.
  """
  reg = {dataset_key(r): r["test_mse"] for r in rows if r["method"] == "reg"}
  out = {}
  for sc in scenarios:
    for sa in samplings:
      cell = {}
      reg_vals = [v for key, v in reg.items() if key[:2] == (sc, sa)]
      if reg_vals:
        cell["reg"] = (float(np.mean(reg_vals)), float(np.std(reg_vals)), len(reg_vals))
      for balanced, label in variants(rows):
        sel = [
          r
          for r in rows
          if r["method"] == "regcls"
          and r["balanced"] == balanced
          and (r["scenario"], r["sampling"]) == (sc, sa)
        ]
        if not sel:
          continue
        vals = [r["test_mse"] for r in sel]
        wins = [r["test_mse"] < reg[dataset_key(r)] for r in sel if dataset_key(r) in reg]
        win = 100.0 * float(np.mean(wins)) if wins else float("nan")
        cell[label] = (float(np.mean(vals)), float(np.std(vals)), len(vals), win)
      out[(sc, sa)] = cell
  return out


# The authors' own Fig. 3 results (their code, 1000 runs per scenario): mean test MSE of
# (reg, reg+cls); OOD is "about equal", given for both.
AUTHORS_FIG3 = {
  ("clean", "uniform"): (0.152, 0.149),
  ("clean", "mild"): (0.307, 0.264),
  ("clean", "moderate"): (0.394, 0.321),
  ("clean", "severe"): (0.393, 0.270),
  ("noisy", "uniform"): (0.149, 0.124),
  ("noisy", "mild"): (0.337, 0.240),
  ("noisy", "moderate"): (0.377, 0.244),
  ("noisy", "severe"): (0.393, 0.235),
  ("ood", "uniform"): (1.26, 1.26),
  ("ood", "mild"): (1.14, 1.14),
  ("ood", "moderate"): (0.98, 0.98),
  ("ood", "severe"): (0.99, 0.99),
}


def authors_comparison_markdown(stats: dict, label: str, scenarios, samplings) -> list[str]:
  """Cell by cell beside the authors' Fig. 3 numbers: reg, reg+cls and their gap."""
  lines = [
    "",
    f"Beside the authors' Fig. 3 (their code, 1000 runs per scenario; OOD given as about "
    f"equal), mean test MSE, {label}:",
    "",
    "| scenario | sampling | reg | authors' reg | reg+cls | authors' reg+cls | gap | "
    "authors' gap |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for sc in scenarios:
    for sa in samplings:
      cell, theirs = stats[(sc, sa)], AUTHORS_FIG3.get((sc, sa))
      reg, ours = cell.get("reg"), cell.get(label)
      if not (reg and ours and theirs):
        continue
      lines.append(
        f"| {sc} | {sa} | {reg[0]:.3f} | {theirs[0]:.3f} | {ours[0]:.3f} | {theirs[1]:.3f} | "
        f"{reg[0] - ours[0]:+.3f} | {theirs[0] - theirs[1]:+.3f} |"
      )
  return lines


def cell_header(keys: Sequence[str], labels: Sequence[str]) -> list[str]:
  """The header and rule of a table of `fig3_stats` cells: ``keys``, reg, then per reg+cls
  variant its MSE, gap and win %."""
  header = [*keys, "reg"]
  for label in labels:
    header += [label, "gap", "win %"]
  return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]


def cell_columns(cell: dict, labels: Sequence[str]) -> list[str]:
  """One `fig3_stats` cell as the columns of `cell_header` after its keys."""
  reg = cell.get("reg")
  row = [f"{reg[0]:.4f} ± {reg[1]:.4f}" if reg else "-"]
  for label in labels:
    v = cell.get(label)
    if v is None:
      row += ["-", "-", "-"]
      continue
    gap = f"{reg[0] - v[0]:+.4f}" if reg else "-"
    row += [f"{v[0]:.4f} ± {v[1]:.4f}", gap, f"{v[3]:.1f}"]
  return row


def summary_markdown(rows: Sequence[dict], scenarios, samplings, title: str) -> str:
  stats = fig3_stats(rows, scenarios, samplings)
  labels = [label for _, label in variants(rows)]
  lines = [
    f"# {title}",
    "",
    "Test MSE (mean ± std over functions, dataset versions, K and lambda) of the "
    "regression model alone and with the auxiliary classification loss; gap = reg − "
    "reg+cls (positive: the cls loss helps); win % = share of reg+cls runs with lower test "
    "MSE than the reg model of the same dataset (paper Tab. 1).",
    "",
  ]
  lines += cell_header(["scenario", "sampling"], labels)
  for sc in scenarios:
    for sa in samplings:
      lines.append("| " + " | ".join([sc, sa, *cell_columns(stats[(sc, sa)], labels)]) + " |")
  # Per-K breakdown: the mean test MSE of reg+cls for each number of classes.
  ks = sorted({r["num_classes"] for r in rows if r["method"] == "regcls"})
  if ks:
    lines += ["", "Mean test MSE of reg+cls per number of classes K:", ""]
    head = ["scenario", "sampling", "variant"] + [f"K={k}" for k in ks]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc in scenarios:
      for sa in samplings:
        for balanced, label in variants(rows):
          vals = []
          for k in ks:
            sel = [
              r["test_mse"]
              for r in rows
              if r["method"] == "regcls"
              and r["num_classes"] == k
              and r["balanced"] == balanced
              and (r["scenario"], r["sampling"]) == (sc, sa)
            ]
            vals.append(f"{np.mean(sel):.4f}" if sel else "-")
          lines.append("| " + " | ".join([sc, sa, label, *vals]) + " |")
  if labels:
    lines += authors_comparison_markdown(stats, labels[0], scenarios, samplings)
  return "\n".join(lines) + "\n"


def plot_fig3(rows: Sequence[dict], scenarios, samplings, path: str) -> None:
  """Paper Fig. 3: one panel per scenario, test MSE mean ± std per sampling, gap printed."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  stats = fig3_stats(rows, scenarios, samplings)
  labels = ["reg"] + [label for _, label in variants(rows)]
  colors = {"reg": "tab:blue", "reg+cls": "tab:orange", "reg+cls bal.": "tab:green"}
  fig, axes = plt.subplots(1, len(scenarios), figsize=(4.6 * len(scenarios), 3.8), squeeze=False)
  x = np.arange(len(samplings))
  for ax, sc in zip(axes[0], scenarios):
    for j, label in enumerate(labels):
      means = np.array([stats[(sc, sa)].get(label, (np.nan,))[0] for sa in samplings])
      stds = np.array([stats[(sc, sa)].get(label, (np.nan, np.nan))[1] for sa in samplings])
      offset = (j - (len(labels) - 1) / 2) * 0.12
      ax.errorbar(
        x + offset, means, yerr=stds, fmt="o-", capsize=3, label=label, color=colors.get(label)
      )
    for i, sa in enumerate(samplings):
      cell = stats[(sc, sa)]
      if "reg" in cell and "reg+cls" in cell:
        gap = cell["reg"][0] - cell["reg+cls"][0]
        top = max(cell["reg"][0] + cell["reg"][1], cell["reg+cls"][0] + cell["reg+cls"][1])
        ax.annotate(
          f"{gap:+.3f}",
          (x[i], top),
          textcoords="offset points",
          xytext=(0, 6),
          ha="center",
          fontsize=8,
          color="green" if gap > 0 else "red",
        )
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top + 0.1 * (top - bottom))  # room for the gap labels
    ax.set_xticks(x, samplings)
    ax.set_title(sc)
    ax.set_ylabel("test MSE")
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=8)
  fig.suptitle("reg vs reg+cls on the 1D functions (gap = reg − reg+cls)")
  metric_writers.save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Methods comparison (reg, reg+cls and the baselines of `method.registry` on one grid).


def method_label(row: dict) -> str:
  """``reg``, ``lds``, ... or ``regcls K=64`` (``bal.``) for methods with a K-way head."""
  if not row["num_classes"]:
    return row["method"]
  return f"{row['method']} K={row['num_classes']}" + (" bal." if row["balanced"] else "")


def methods_stats(rows: Sequence[dict], scenarios, samplings) -> dict:
  """``{label: {(scenario, sampling): (mean, std, n)}}`` of test MSE over functions, dataset
  versions (and lambdas), labels in first-appearance order."""
  cells: dict[str, dict[tuple, list[float]]] = {}
  for r in rows:
    cells.setdefault(method_label(r), {}).setdefault((r["scenario"], r["sampling"]), [])
    cells[method_label(r)][(r["scenario"], r["sampling"])].append(r["test_mse"])
  return {
    label: {
      (sc, sa): (float(np.mean(v)), float(np.std(v)), len(v))
      for sc in scenarios
      for sa in samplings
      if (v := by_cell.get((sc, sa)))
    }
    for label, by_cell in cells.items()
  }


def methods_markdown(rows: Sequence[dict], scenarios, samplings, title: str) -> str:
  """One row per method, one column per (scenario, sampling): mean test MSE (std), the best
  of each column in bold, and the method's mean rank over the columns."""
  stats = methods_stats(rows, scenarios, samplings)
  columns = [(sc, sa) for sc in scenarios for sa in samplings]
  ranks: dict[str, list[int]] = {label: [] for label in stats}
  for col in columns:
    present = sorted((s[col][0], label) for label, s in stats.items() if col in s)
    for rank, (_, label) in enumerate(present, 1):
      ranks[label].append(rank)
  lines = [
    f"# {title}",
    "",
    "Test MSE on the uniform test set, mean (std) over functions and dataset versions, per "
    "method; bold: the lowest of the column; rank: mean rank over the columns (1 = best).",
    "",
  ]
  header = ["method"] + [f"{sc} {sa}" for sc, sa in columns] + ["rank"]
  lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  best = {c: min((s[c][0] for s in stats.values() if c in s), default=None) for c in columns}
  for label, s in stats.items():
    row = [label]
    for col in columns:
      if col not in s:
        row.append("-")
        continue
      text = f"{s[col][0]:.4f} ({s[col][1]:.3f})"
      row.append(f"**{text}**" if s[col][0] == best[col] else text)
    row.append(f"{np.mean(ranks[label]):.2f}" if ranks[label] else "-")
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines) + "\n"


def plot_methods(rows: Sequence[dict], scenarios, samplings, path: str) -> None:
  """One panel per scenario: mean test MSE per sampling, one line per method."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  stats = methods_stats(rows, scenarios, samplings)
  fig, axes = plt.subplots(1, len(scenarios), figsize=(4.6 * len(scenarios), 3.8), squeeze=False)
  x = np.arange(len(samplings))
  for ax, sc in zip(axes[0], scenarios):
    for label, s in stats.items():
      means = [s.get((sc, sa), (np.nan,))[0] for sa in samplings]
      style = "o-" if label.startswith(("reg ", "regcls")) or label == "reg" else "o--"
      ax.plot(x, means, style, label=label, lw=2.2 if style == "o-" else 1.2, ms=4)
    ax.set_xticks(x, samplings)
    ax.set_title(sc)
    ax.set_ylabel("test MSE")
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.suptitle("reg, reg+cls and the imbalanced-regression baselines on the 1D functions")
  metric_writers.save_figure(fig, path)
