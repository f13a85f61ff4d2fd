"""The 1D selected-models report: K and lambda chosen on validation, scored against reg."""

import math

from regcls_jax.families.synthetic1d import selected


def _row(method, function, k, lam, val, test, balanced=False):
  return dict(scenario="clean", sampling="severe", function=function, version=0, noise=0.1,
              seed=0, method=method, num_classes=k, lam=lam, balanced=balanced, val_mse=val,
              test_mse=test)  # fmt: skip


ROWS = [
  _row("reg", 0, 0, 0.0, 0.5, 0.50),
  _row("regcls", 0, 4, 1.0, 0.4, 0.45),  # lowest val: chosen
  _row("regcls", 0, 16, 1.0, 0.6, 0.10),  # best test, never chosen
  _row("reg", 1, 0, 0.0, 0.5, 0.30),
  _row("regcls", 1, 4, 1.0, 0.7, 0.20),
  _row("regcls", 1, 16, 1.0, 0.3, 0.40),  # chosen: loses to reg
  _row("reg", 2, 0, 0.0, 0.5, 0.60),
  _row("regcls", 2, 4, 1.0, 0.2, 0.50),  # chosen
  _row("regcls", 2, 16, 1.0, 0.9, 0.90),
]


def test_selection_is_by_validation_and_scored_against_reg():
  pairs = selected.selected_pairs(ROWS, balanced=False)[("clean", "severe")]
  assert [(c["function"], c["num_classes"]) for c, _ in pairs] == [(0, 4), (1, 16), (2, 4)]
  text = selected.selected_markdown(ROWS, ["clean"], ["severe"], "t")
  diffs = [0.45 - 0.50, 0.40 - 0.30, 0.50 - 0.60]  # mean -0.0167, sd 0.1041
  half = 4.302652729911275 * 0.10408329997330663 / math.sqrt(3)
  mean = sum(diffs) / 3
  row = next(line for line in text.splitlines() if line.startswith("| clean | severe"))
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert cells[3:7] == ["3", "0.4667", "0.4500", "67"]
  assert cells[7] == f"{mean:+.4f} ({mean - half:+.4f} .. {mean + half:+.4f})"
  assert cells[8] == "no clear difference" and cells[9] == "4"
