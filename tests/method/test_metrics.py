"""DIR metrics against hand-computed values."""

import math

import numpy as np
import pytest

from regcls_jax.method import metrics


def test_nyud2_bin_lists_cover_every_bin_once():
  all_bins = sorted(b for g in metrics.GROUPS for b in metrics.NYUD2_BINS[g])
  assert all_bins == list(range(100))
  assert [len(metrics.NYUD2_BINS[g]) for g in metrics.GROUPS] == [39, 15, 46]


def test_geometric_mean():
  assert metrics.geometric_mean([1.0, 4.0, 16.0]) == pytest.approx(4.0)
  assert metrics.geometric_mean([0.0, 4.0]) == 0.0  # DIR's (scipy's) definition
  assert metrics.geometric_mean([0.0, 3.0], eps=1.0) == pytest.approx(2.0)
  assert math.isnan(metrics.geometric_mean([]))


def test_age_metrics_by_hand():
  # Training counts: age 30 x 150 (many), age 50 x 50 (medium), age 70 x 5 (few), 90 x 0 (few).
  train = np.array([30] * 150 + [50] * 50 + [70] * 5)
  label = np.array([30, 30, 50, 70, 90])
  pred = np.array([31, 28, 54, 62, 90.5])
  out = metrics.age_metrics(pred, label, train)
  assert out["all"]["count"] == 5
  assert out["all"]["mae"] == pytest.approx((1 + 2 + 4 + 8 + 0.5) / 5)
  assert out["all"]["mse"] == pytest.approx((1 + 4 + 16 + 64 + 0.25) / 5)
  assert out["all"]["gm"] == pytest.approx((1 * 2 * 4 * 8 * 0.5) ** (1 / 5))
  assert out["many"] == pytest.approx({"count": 2, "mae": 1.5, "mse": 2.5, "gm": math.sqrt(2)})
  assert out["medium"] == pytest.approx({"count": 1, "mae": 4, "mse": 16, "gm": 4})
  assert out["few"]["count"] == 2 and out["few"]["mae"] == pytest.approx(4.25)
  # Balanced MAE: per-label MAEs 1.5 (30), 4 (50), 8 (70), 0.5 (90) -> mean 3.5.
  assert out["balanced"] == pytest.approx({"count": 4, "mae": 3.5})


def test_empty_shot_group_is_nan_not_a_crash():
  train = np.array([30] * 150)
  out = metrics.age_metrics(np.array([29.0, 31.0]), np.array([30, 30]), train)
  assert out["medium"]["count"] == 0 and math.isnan(out["medium"]["mae"])
  assert out["few"]["count"] == 0 and math.isnan(out["few"]["gm"])
  assert out["many"]["mae"] == 1.0


def test_shot_group_thresholds():
  train = np.array([1] * 101 + [2] * 100 + [3] * 20 + [4] * 19)
  groups = metrics.shot_groups(np.array([1, 2, 3, 4, 5]), train)
  assert groups.tolist() == ["many", "medium", "medium", "few", "few"]


def test_depth_metrics_by_hand():
  # Targets in bins 20 (many), 50 (medium), 70 (few); one pixel masked out, one invalid (0).
  target = np.array([[2.0, 5.0], [7.0, 2.0], [0.0, 3.0]])
  pred = np.array([[2.5, 4.0], [7.0, 100.0], [1.0, 3.0]])
  mask = np.array([[True, True], [True, False], [True, True]])
  m = metrics.DepthMetrics()
  m.update(pred[:2], target[:2], mask[:2])  # two batches pool like one
  m.update(pred[2:], target[2:], mask[2:])
  out = m.result()
  # Counted pixels: (2.5, 2), (4, 5), (7, 7), (3, 3).
  err = np.array([0.5, -1.0, 0.0, 0.0])
  t = np.array([2.0, 5.0, 7.0, 3.0])
  p = t + err
  assert out["all"]["count"] == 4
  assert out["all"]["mse"] == pytest.approx(np.mean(err**2))
  assert out["all"]["rmse"] == pytest.approx(math.sqrt(np.mean(err**2)))
  assert out["all"]["mae"] == pytest.approx(np.mean(np.abs(err)))
  assert out["all"]["absrel"] == pytest.approx(np.mean(np.abs(err) / t))
  assert out["all"]["log10"] == pytest.approx(np.mean(np.abs(np.log10(p) - np.log10(t))))
  ratio = np.maximum(p / t, t / p)  # 1.25, 1.25, 1, 1
  assert out["all"]["delta1"] == pytest.approx(np.mean(ratio <= 1.25))
  assert out["many"]["count"] == 2 and out["many"]["mae"] == pytest.approx(0.25)  # bins 20, 30
  assert out["medium"]["count"] == 1 and out["medium"]["mse"] == pytest.approx(1.0)
  assert out["few"]["count"] == 1 and out["few"]["rmse"] == 0.0


def test_depth_metrics_empty_group_and_derived_bins():
  m = metrics.DepthMetrics(
    bins={"many": range(0, 50), "medium": range(50, 60), "few": range(60, 100)}
  )
  m.update(np.array([1.0]), np.array([1.2]))
  out = m.result()
  assert out["medium"]["count"] == 0 and math.isnan(out["medium"]["rmse"])
  groups = metrics.depth_bin_groups(np.array([3e7, 1.5e7, 5e6, 0]))
  assert groups == {"many": (0,), "medium": (1,), "few": (2, 3)}
  table = metrics.markdown_table(out, ("rmse", "mae"))
  assert "| medium | 0 | nan | nan |" in table
