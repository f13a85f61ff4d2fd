"""Model selection on validation: pick each group's hyper-parameters from validation scores only.

One pure function over result rows (dicts), shared by every family that selects (Breakfast's
lambda on held-out training videos, the 1D grid's per-dataset choice): rows are grouped by the
``by`` fields; within a group every distinct value of the ``choose`` fields is a candidate, its
score the mean of ``score`` over the group's rows with that value (e.g. over the activities of a
split); the candidate with the lowest mean wins, ties going to the candidate seen first. Test
metrics never enter: a row's other fields are carried along untouched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def _key(row: dict, fields: Sequence[str]) -> tuple:
  try:
    return tuple(row[f] for f in fields)
  except KeyError as e:
    raise ValueError(f"selection: a row lacks the field {e.args[0]!r}; it has {sorted(row)}") from e


def select(
  rows: Iterable[dict], by: Sequence[str], choose: Sequence[str], score: str
) -> dict[tuple, dict]:
  """The best candidate of each group, by the mean of ``score`` (lower is better).

  Args:
    rows: result rows, each with the ``by``, ``choose`` and ``score`` fields.
    by: the fields that name a group (``()``: one group).
    choose: the fields whose values are the candidates (e.g. ``("lam",)``).
    score: the validation metric; NaN or inf scores make a candidate lose.

  Returns:
    ``{group key: {**by fields, **choose fields, score: mean score, "num_rows": n}}``, groups in
    the order they first appear.
  """
  sums: dict[tuple, dict[tuple, list[float]]] = {}
  for row in rows:
    (value,) = _key(row, (score,))
    sums.setdefault(_key(row, by), {}).setdefault(_key(row, choose), []).append(float(value))
  best = {}
  for group, candidates in sums.items():
    winner, winner_score, count = None, math.inf, 0
    for candidate, values in candidates.items():
      mean = sum(values) / len(values)
      mean = mean if math.isfinite(mean) else math.inf
      if winner is None or mean < winner_score:
        winner, winner_score, count = candidate, mean, len(values)
    best[group] = {
      **dict(zip(by, group)),
      **dict(zip(choose, winner)),
      score: winner_score,
      "num_rows": count,
    }
  return best


def winning_rows(
  rows: Sequence[dict], by: Sequence[str], choose: Sequence[str], score: str
) -> dict[tuple, dict]:
  """``{group key: the first row of the group's winning candidate}`` (`select`'s choice): the
  row the chosen model wrote, with every field it carries (its test metrics included)."""
  best = select(rows, by, choose, score)
  out = {}
  for row in rows:
    key = _key(row, by)
    if key not in out and _key(row, choose) == _key(best[key], choose):
      out[key] = row
  return {key: out[key] for key in best}
