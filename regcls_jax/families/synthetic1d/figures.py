"""The paper's other 1D figures from a grid's rows: Fig. 4 (lambda), Fig. 5 (noise), Fig. 7.

- Fig. 4: validation MSE against lambda for each K, per scenario and sampling, and the lambda
  that validation selects (`lambda_markdown`, `plot_fig4`).
- Fig. 5: reg and reg+cls test MSE as the target noise grows (`noise_markdown`, `plot_fig5`).
- Fig. 7: the predictions of reg, reg+cls and reg+cls bal. over x beside the training samples
  (`plot_fig7`, fed by `trainer` with the models' predictions).

Every function is pure over result rows (``results.csv`` dicts); the choice of a model or a
lambda uses validation MSE only (`train_lib.selection`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from regcls_jax.families.synthetic1d import report
from regcls_jax.train_lib import metric_writers, selection

_COLORS = {"reg": "tab:blue", "reg+cls": "tab:orange", "reg+cls bal.": "tab:green"}


def _variant(row: dict) -> str:
  if row["method"] == "reg":
    return "reg"
  return "reg+cls bal." if row["balanced"] else "reg+cls"


def _mean(rows: Sequence[dict], field: str) -> float:
  return float(np.mean([r[field] for r in rows])) if rows else float("nan")


def lambda_sweep(rows: Sequence[dict]) -> bool:
  """Whether the rows hold several lambdas of one scenario (a Fig. 4 grid)."""
  lams: dict[str, set] = {}
  for r in rows:
    if r["method"] == "regcls":
      lams.setdefault(r["scenario"], set()).add(r["lam"])
  return any(len(v) > 1 for v in lams.values())


# ---------------------------------------------------------------------------------------------
# Fig. 4: validation MSE against lambda.


def lambda_curves(rows: Sequence[dict]) -> dict:
  """``{(scenario, sampling, variant, K): {lam: mean val MSE}}`` over functions and versions."""
  cells: dict[tuple, dict[float, list[float]]] = {}
  for r in rows:
    if r["method"] != "regcls":
      continue
    key = (r["scenario"], r["sampling"], _variant(r), r["num_classes"])
    cells.setdefault(key, {}).setdefault(r["lam"], []).append(r["val_mse"])
  return {k: {lam: float(np.mean(v)) for lam, v in sorted(c.items())} for k, c in cells.items()}


def lambda_markdown(rows: Sequence[dict], scenarios, samplings, title: str) -> str:
  """The lambda that validation selects, per scenario (the paper's choice: one lambda per
  scenario), and per (scenario, sampling, variant, K), with the selected models' test MSE."""
  regcls = [dict(r, variant=_variant(r)) for r in rows if r["method"] == "regcls"]
  lines = [
    f"# {title}: lambda on validation (paper Fig. 4)",
    "",
    "Mean validation MSE over functions, dataset versions, samplings and K; the lambda with the "
    "lowest is what the paper selects per scenario (the authors' demo script: clean 1e2, "
    "noisy 1e3, ood 1e4).",
    "",
    "| scenario | selected lambda | mean val MSE |",
    "|---|---|---|",
  ]
  per_scenario = selection.select(regcls, ("scenario", "variant"), ("lam",), "val_mse")
  for best in sorted(per_scenario.values(), key=lambda b: list(scenarios).index(b["scenario"])):
    lines.append(
      f"| {best['scenario']} ({best['variant']}) | {best['lam']:g} | {best['val_mse']:.4f} |"
    )
  lines += [
    "",
    "Per sampling and K: the lambda with the lowest mean validation MSE, the test MSE at that "
    "lambda, and reg's (mean over functions and versions).",
    "",
    "| scenario | sampling | variant | K | lambda | val MSE | test MSE | reg val MSE | "
    "reg test MSE |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  by = ("scenario", "sampling", "variant", "num_classes")
  chosen = selection.select(regcls, by, ("lam",), "val_mse")
  for sc in scenarios:
    for sa in samplings:
      reg_rows = [
        r for r in rows if r["method"] == "reg" and (r["scenario"], r["sampling"]) == (sc, sa)
      ]
      for key, best in chosen.items():
        if key[:2] != (sc, sa):
          continue
        picked = [r for r in regcls if tuple(r[f] for f in by) == key and r["lam"] == best["lam"]]
        lines.append(
          f"| {sc} | {sa} | {key[2]} | {key[3]} | {best['lam']:g} | {best['val_mse']:.4f} | "
          f"{_mean(picked, 'test_mse'):.4f} | {_mean(reg_rows, 'val_mse'):.4f} | "
          f"{_mean(reg_rows, 'test_mse'):.4f} |"
        )
  return "\n".join(lines) + "\n"


def plot_fig4(rows: Sequence[dict], scenarios, samplings, path: str) -> None:
  """Fig. 4: one panel per (scenario, sampling), mean validation MSE against lambda, one line per
  K (dashed: balanced classes), reg's as a horizontal line."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  curves = lambda_curves(rows)
  scenarios = [sc for sc in scenarios if any(k[0] == sc for k in curves)]
  ks = sorted({k[3] for k in curves})
  cmap = plt.get_cmap("viridis")
  fig, axes = plt.subplots(
    len(scenarios), len(samplings), figsize=(3.6 * len(samplings), 3.0 * len(scenarios)),
    squeeze=False,
  )  # fmt: skip
  for i, sc in enumerate(scenarios):
    for j, sa in enumerate(samplings):
      ax = axes[i][j]
      reg = [
        r["val_mse"]
        for r in rows
        if r["method"] == "reg" and (r["scenario"], r["sampling"]) == (sc, sa)
      ]
      if reg:
        ax.axhline(np.mean(reg), color="black", ls=":", lw=1.5, label="reg")
      for (c_sc, c_sa, variant, k), curve in curves.items():
        if (c_sc, c_sa) != (sc, sa):
          continue
        color = cmap(ks.index(k) / max(len(ks) - 1, 1))
        ls = "--" if variant == "reg+cls bal." else "-"
        suffix = " bal." if variant == "reg+cls bal." else ""
        ax.plot(
          list(curve), list(curve.values()), "o" + ls, color=color, ms=3, label=f"K={k}{suffix}"
        )
      ax.set_xscale("log")
      ax.set_title(f"{sc} {sa}", fontsize=9)
      ax.set_xlabel("lambda")
      ax.set_ylabel("val MSE")
      ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.suptitle("reg+cls validation MSE against lambda per number of classes (paper Fig. 4)")
  metric_writers.save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Fig. 5: growing target noise.


def noise_stats(rows: Sequence[dict], samplings) -> dict:
  """``{noise: fig3 cell stats of the noisy scenario}`` (`report.fig3_stats` per noise level)."""
  noisy = [r for r in rows if r["scenario"] == "noisy"]
  levels = sorted({r["noise"] for r in noisy})
  return {
    level: report.fig3_stats([r for r in noisy if r["noise"] == level], ["noisy"], samplings)
    for level in levels
  }


def noise_markdown(rows: Sequence[dict], samplings, title: str) -> str:
  stats = noise_stats(rows, samplings)
  labels = [label for _, label in report.variants(rows)]
  lines = [
    f"# {title}: growing target noise (paper Fig. 5)",
    "",
    "The noisy scenario at several target noise stds (added to the train, val and test "
    "targets); test MSE mean ± std over functions, versions and K; gap = reg − reg+cls; win % "
    "as in Tab. 1. The test targets are noisy too, so every MSE grows by about the noise "
    "variance.",
    "",
  ]
  lines += report.cell_header(["sampling", "noise std"], labels)
  for sa in samplings:
    for level, cells in stats.items():
      columns = report.cell_columns(cells[("noisy", sa)], labels)
      lines.append("| " + " | ".join([sa, f"{level:g}", *columns]) + " |")
  return "\n".join(lines) + "\n"


def plot_fig5(rows: Sequence[dict], samplings, path: str) -> None:
  """Fig. 5: one panel per sampling, test MSE mean ± std against the noise std."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  stats = noise_stats(rows, samplings)
  levels = np.array(list(stats))
  labels = ["reg"] + [label for _, label in report.variants(rows)]
  fig, axes = plt.subplots(1, len(samplings), figsize=(3.8 * len(samplings), 3.4), squeeze=False)
  for ax, sa in zip(axes[0], samplings):
    for j, label in enumerate(labels):
      cells = [stats[level][("noisy", sa)].get(label) for level in levels]
      means = np.array([c[0] if c else np.nan for c in cells])
      stds = np.array([c[1] if c else np.nan for c in cells])
      shift = 1.0 + 0.04 * (j - (len(labels) - 1) / 2)  # side by side on the log axis
      ax.errorbar(levels * shift, means, yerr=stds, fmt="o-", capsize=3, ms=3, label=label,
                  color=_COLORS.get(label))  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(levels, [f"{v:g}" for v in levels])
    ax.minorticks_off()
    ax.set_title(f"noisy {sa}", fontsize=9)
    ax.set_xlabel("target noise std")
    ax.set_ylabel("test MSE")
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=8)
  fig.suptitle("reg vs reg+cls under growing target noise (paper Fig. 5)")
  metric_writers.save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Fig. 7: predictions.


def prediction_models(rows: Sequence[dict]) -> dict[tuple, dict[str, int]]:
  """The model of each variant to draw, per dataset: ``{dataset: {variant: row position}}``.

  reg is one model per dataset; of the reg+cls models of a variant, the (K, lambda) with the
  lowest validation MSE.
  """
  keyed = [
    dict(r, variant=_variant(r), position=i, dataset=report.dataset_key(r))
    for i, r in enumerate(rows)
    if r["method"] in ("reg", "regcls")
  ]
  best = selection.select(keyed, ("dataset", "variant"), ("num_classes", "lam"), "val_mse")
  out: dict[tuple, dict[str, int]] = {}
  for r in keyed:
    pick = best[(r["dataset"], r["variant"])]
    if (r["num_classes"], r["lam"]) == (pick["num_classes"], pick["lam"]):
      out.setdefault(r["dataset"], {}).setdefault(r["variant"], r["position"])
  return out


def plot_fig7(
  rows: Sequence[dict],
  predictions: Mapping[int, np.ndarray],
  x: np.ndarray,
  datasets: Mapping[tuple, tuple],
  path: str,
) -> None:
  """Fig. 7: one panel per dataset: training samples, the true function, and the predictions
  over ``x`` of the models of `prediction_models`.

  Args:
    rows: the result rows.
    predictions: row position -> predictions at ``x``.
    x: the inputs the predictions are at.
    datasets: dataset key -> (train x, train y, f(x) at ``x``).
    path: the PNG to write.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  chosen = prediction_models(rows)
  fig, axes = plt.subplots(1, len(chosen), figsize=(4.8 * len(chosen), 3.8), squeeze=False)
  rng = np.random.default_rng(0)
  for ax, (key, models) in zip(axes[0], chosen.items()):
    train_x, train_y, truth = datasets[key]
    show = rng.permutation(len(train_x))[:3000]
    ax.scatter(train_x[show], train_y[show], s=2, color="0.75", label="train samples")
    ax.plot(x, truth, color="black", lw=1.0, label="f(x)")
    for variant, position in models.items():
      r = rows[position]
      label = variant if variant == "reg" else f"{variant} K={r['num_classes']}"
      ax.plot(x, predictions[position], lw=1.4, color=_COLORS.get(variant),
              label=f"{label}: test MSE {r['test_mse']:.3f}")  # fmt: skip
    scenario, sampling, function, version = key[:4]
    ax.set_title(f"{scenario} {sampling}, function {function}, version {version}", fontsize=9)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=7)
  fig.suptitle("Predictions of reg, reg+cls and reg+cls bal. (paper Fig. 7)")
  metric_writers.save_figure(fig, path)
