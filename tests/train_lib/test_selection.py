"""Selection on validation: the lowest mean validation score per group, by hand."""

import math

import pytest

from regcls_jax.train_lib import selection


def test_lowest_mean_score_per_group_by_hand():
  rows = [  # two splits x two activities x three lambdas; test_rmse must never matter
    dict(split="s1", activity="a", lam=0.1, val=3.0, test_rmse=0.0),
    dict(split="s1", activity="b", lam=0.1, val=5.0, test_rmse=0.0),  # mean 4.0
    dict(split="s1", activity="a", lam=1.0, val=2.0, test_rmse=9.0),
    dict(split="s1", activity="b", lam=1.0, val=5.5, test_rmse=9.0),  # mean 3.75: best
    dict(split="s1", activity="a", lam=10.0, val=1.0, test_rmse=0.0),
    dict(split="s1", activity="b", lam=10.0, val=math.nan, test_rmse=0.0),  # NaN loses
    dict(split="s2", activity="a", lam=0.1, val=1.0, test_rmse=9.0),
    dict(split="s2", activity="b", lam=0.1, val=1.0, test_rmse=9.0),  # tie: first seen wins
    dict(split="s2", activity="a", lam=1.0, val=1.0, test_rmse=0.0),
    dict(split="s2", activity="b", lam=1.0, val=1.0, test_rmse=0.0),
  ]
  best = selection.select(rows, by=("split",), choose=("lam",), score="val")
  assert list(best) == [("s1",), ("s2",)]
  assert best[("s1",)] == {"split": "s1", "lam": 1.0, "val": 3.75, "num_rows": 2}
  assert best[("s2",)]["lam"] == 0.1
  # Corrupting the test metric changes nothing.
  corrupted = [{**r, "test_rmse": -r["test_rmse"] - 100} for r in rows]
  assert selection.select(corrupted, ("split",), ("lam",), "val") == best
  # One group over everything, two fields chosen together.
  (only,) = selection.select(rows, (), ("lam", "activity"), "val").values()
  assert (only["lam"], only["activity"]) == (10.0, "a") and only["val"] == 1.0


def test_missing_field_names_it():
  with pytest.raises(ValueError, match="lacks the field 'lam'"):
    selection.select([dict(split="s1", val=1.0)], ("split",), ("lam",), "val")
  with pytest.raises(ValueError, match="lacks the field 'val'"):
    selection.select([dict(split="s1", lam=1.0)], ("split",), ("lam",), "val")


def test_winning_rows_are_the_rows_of_the_chosen_candidates():
  rows = [
    dict(g="a", lam=1, val=0.3, test=9.0),
    dict(g="a", lam=2, val=0.1, test=8.0),
    dict(g="b", lam=1, val=0.2, test=7.0),
    dict(g="b", lam=1, val=0.4, test=6.0),  # same candidate (mean 0.3) as the row above
    dict(g="b", lam=2, val=0.5, test=5.0),
  ]
  won = selection.winning_rows(rows, ("g",), ("lam",), "val")
  assert won == {("a",): rows[1], ("b",): rows[2]}  # b: lam 1 (mean 0.3 < 0.5), its first row
