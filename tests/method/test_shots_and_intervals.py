"""Shot groups of a continuous target and the paired interval behind the tabular verdicts."""

import math

import numpy as np

from regcls_jax.method import metrics


def test_binned_shot_groups_count_training_labels_per_uniform_bin():
  # Training range 0..10 in 5 bins of width 2: counts [3, 1, 0, 0, 2].
  train = np.array([0.0, 0.5, 1.9, 2.0, 9.0, 10.0])
  groups, counts, bins = metrics.binned_shot_groups(
    np.array([1.0, 2.5, 5.0, 9.5, -3.0, 12.0]), train, bins=5, many=2, few=1
  )
  np.testing.assert_array_equal(bins, [0, 1, 2, 4, 0, 4])  # outside the range: the end bins
  np.testing.assert_array_equal(counts, [3, 1, 0, 2, 3, 2])
  assert groups.tolist() == ["many", "medium", "few", "medium", "many", "medium"]


def test_paired_interval_is_students_t():
  mean, lo, hi = metrics.paired_interval([1.0, 2.0, 3.0])
  half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) x sd 1 / sqrt(3)
  assert mean == 2.0 and math.isclose(lo, 2 - half) and math.isclose(hi, 2 + half)
  assert metrics.paired_interval([0.5]) == (0.5, -math.inf, math.inf)
  assert metrics.paired_interval([-0.2, -0.2]) == (-0.2, -0.2, -0.2)


def test_verdicts():
  assert metrics.verdict(-0.3, -0.1) == "helps"
  assert metrics.verdict(0.1, 0.3) == "hurts"
  assert metrics.verdict(-0.1, 0.3) == "no clear difference"
  assert metrics.verdict(-math.inf, math.inf) == "no clear difference"
