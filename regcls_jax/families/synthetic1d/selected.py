"""The 1D grid's selected models: reg+cls's K and lambda chosen per dataset on validation.

Beside the full grid (Fig. 3 averages every K), this is what a user of the method would
deploy: per dataset (scenario, sampling, function, version, noise) and seed, each reg+cls
variant's (K, lambda) with the lowest validation MSE (`train_lib.selection.select`), its test
MSE against the reg model of the same dataset and seed. Per (scenario, sampling): the mean test
MSEs, the share of datasets where the selected model wins, and the paired 95% interval of the
test MSE difference over datasets (`method.metrics.paired_interval`) with its verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from regcls_jax.families.synthetic1d import report
from regcls_jax.method import metrics
from regcls_jax.train_lib import selection

BY = ("scenario", "sampling", "function", "version", "noise", "seed")


def selected_pairs(rows: Sequence[dict], balanced: bool) -> dict[tuple, tuple[dict, dict]]:
  """``{(scenario, sampling): [(selected reg+cls row, reg row)]}`` over the datasets."""
  regcls = [r for r in rows if r["method"] == "regcls" and r["balanced"] == balanced]
  reg = {tuple(r[f] for f in BY): r for r in rows if r["method"] == "reg"}
  pairs = {}
  for key, chosen in selection.winning_rows(regcls, BY, ("num_classes", "lam"), "val_mse").items():
    if key in reg:
      pairs.setdefault(key[:2], []).append((chosen, reg[key]))
  return pairs


def selected_markdown(rows: Sequence[dict], scenarios, samplings, title: str) -> str:
  lines = [
    f"# {title}: reg+cls with K and lambda selected on validation",
    "",
    "Per dataset and seed, each variant's (K, lambda) of lowest validation MSE, scored on test "
    "against reg's model of the same dataset; mean test MSE over the datasets, the share the "
    "selected model wins, and the paired 95% interval of (selected - reg) test MSE.",
    "",
    "| scenario | sampling | variant | datasets | reg test MSE | selected test MSE | win % | "
    "difference (interval) | verdict | K chosen most |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for balanced, label in report.variants(rows):
    pairs = selected_pairs(rows, balanced)
    for sc in scenarios:
      for sa in samplings:
        if (sc, sa) not in pairs:
          continue
        chosen, reg = zip(*pairs[(sc, sa)])
        sel = np.array([r["test_mse"] for r in chosen])
        base = np.array([r["test_mse"] for r in reg])
        mean, lo, hi = metrics.paired_interval(sel - base)
        ks, counts = np.unique([r["num_classes"] for r in chosen], return_counts=True)
        lines.append(
          f"| {sc} | {sa} | {label} | {len(sel)} | {base.mean():.4f} | {sel.mean():.4f} | "
          f"{100 * np.mean(sel < base):.0f} | {mean:+.4f} ({lo:+.4f} .. {hi:+.4f}) | "
          f"{metrics.verdict(lo, hi)} | {ks[np.argmax(counts)]} |"
        )
  return "\n".join(lines) + "\n"
