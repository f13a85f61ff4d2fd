"""Binning against hand-worked examples of Eq. 12 / Eq. 13 and against numpy."""

import numpy as np
import pytest

from regcls_jax.method import binning

# Counts per unit bin on [0, 5] with K=5: [4, 0, 1, 1, 2].
HAND_TARGETS = np.array([0.0, 0.2, 0.5, 0.9, 2.5, 3.5, 4.5, 5.0])


def test_uniform_edges_and_assignment():
  edges = binning.uniform_edges(HAND_TARGETS, 5)
  np.testing.assert_allclose(edges, [0, 1, 2, 3, 4, 5])
  # [e_k, e_k+1) is class k; the max goes to the last class; outside values are clipped.
  cls = binning.assign_classes(np.array([0.0, 0.999, 1.0, 4.999, 5.0, -3.0, 9.0]), edges)
  np.testing.assert_array_equal(cls, [0, 0, 1, 4, 4, 0, 4])
  np.testing.assert_array_equal(
    binning.class_counts(binning.assign_classes(HAND_TARGETS, edges), 5), [4, 0, 1, 1, 2]
  )


def test_equalised_edges_hand_example():
  # Cumulative counts c = [4, 4, 5, 6, 8], N = 8, K = 5:
  # q = ceil(5 c / 8) - 1 = [2, 2, 3, 3, 4] -> classes {bins 0,1}, {2,3}, {4}.
  edges = binning.equalised_edges(HAND_TARGETS, 5)
  np.testing.assert_allclose(edges, [0, 2, 4, 5])
  cls = binning.assign_classes(HAND_TARGETS, edges)
  np.testing.assert_array_equal(cls, [0, 0, 0, 0, 1, 1, 2, 2])
  counts = binning.class_counts(cls, 3)
  np.testing.assert_array_equal(counts, [4, 2, 2])
  # Eq. 13: min count / count.
  np.testing.assert_allclose(binning.keep_probabilities(counts), [0.5, 1.0, 1.0])


def test_equalised_merges_everything_when_one_bin_dominates():
  # 9 samples in bin 0 and one at the top: c = [9, 9, 9, 10], K = 4 -> q = [3, 3, 3, 3].
  t = np.array([0.0] * 9 + [4.0])
  np.testing.assert_allclose(binning.equalised_edges(t, 4), [0.0, 4.0])


def test_balanced_classes_fall_back_to_uniform_below_two_classes():
  """The authors' image / video code keeps the uniform classes (with their Eq. 13 keep
  probabilities) when equalisation leaves fewer than 2: never a 1-way head whose CE is 0."""
  t = np.array([0.0] * 9 + [4.0])
  edges, keep = binning.make_classes(t, 4, balanced=True)
  np.testing.assert_allclose(edges, [0.0, 1.0, 2.0, 3.0, 4.0])
  np.testing.assert_allclose(keep, [1 / 9, 0.0, 0.0, 1.0])  # counts [9, 0, 0, 1]
  edges, keep = binning.make_classes(t, 2, balanced=True)
  np.testing.assert_allclose(edges, [0.0, 2.0, 4.0])
  np.testing.assert_allclose(keep, [1 / 9, 1.0])


def test_equalised_uniform_data_keeps_all_classes():
  t = np.arange(1000) / 999.0
  edges = binning.equalised_edges(t, 10)
  assert len(edges) == 11
  np.testing.assert_allclose(edges, np.linspace(0, 1, 11))


@pytest.mark.parametrize("k", [2, 4, 16, 64, 256, 1024])
def test_equalised_properties(k):
  rng = np.random.default_rng(k)
  t = np.concatenate([rng.exponential(0.1, 5000), rng.uniform(0, 3, 200)])
  edges = binning.equalised_edges(t, k)
  k_eq = len(edges) - 1
  assert 1 <= k_eq <= k
  assert np.all(np.diff(edges) > 0)
  cls = binning.assign_classes(t, edges)
  assert cls.min() >= 0 and cls.max() < k_eq
  counts = binning.class_counts(cls, k_eq)
  assert np.all(counts > 0)  # merged classes are never empty
  uniform = binning.class_counts(binning.assign_classes(t, binning.uniform_edges(t, k)), k)
  if k_eq > 1:  # flatter: smaller relative spread than the uniform bins' counts
    assert counts.std() / counts.mean() < uniform.std() / uniform.mean()


def test_keep_probabilities_numpy_reference():
  counts = np.array([10, 0, 5, 40])
  np.testing.assert_allclose(binning.keep_probabilities(counts), [0.5, 0.0, 1.0, 0.125])
  with pytest.raises(ValueError):
    binning.keep_probabilities(np.array([0, 0]))


def test_make_classes():
  edges, keep = binning.make_classes(HAND_TARGETS, 5, balanced=False)
  np.testing.assert_allclose(edges, [0, 1, 2, 3, 4, 5])
  np.testing.assert_allclose(keep, np.ones(5))
  edges, keep = binning.make_classes(HAND_TARGETS, 5, balanced=True)
  np.testing.assert_allclose(edges, [0, 2, 4, 5])
  np.testing.assert_allclose(keep, [0.5, 1.0, 1.0])


@pytest.mark.parametrize("k", [1, 0, 2.5])
def test_bad_num_classes(k):
  with pytest.raises(ValueError, match="num_classes"):
    binning.uniform_edges(HAND_TARGETS, k)


def test_nan_targets():
  with pytest.raises(ValueError, match="NaN"):
    binning.uniform_edges(np.array([0.0, np.nan]), 4)


def test_round_and_ceil_equalisation_by_hand():
  """counts 1, 2, 5 over 3 bins (N = 8, cum 1, 3, 8): ceil(3 c / 8) - 1 = 0, 1, 2 keeps 3
  classes; the image code's max(round(3 c / 8) - 1, 0) = max(-1, 0), 0, 2 merges bins 0-1."""
  t = np.array([0.1, 1.2, 1.5, 2.2, 2.4, 2.5, 2.6, 2.9])
  np.testing.assert_allclose(binning.equalised_edges(t, 3, value_range=(0, 3)), [0, 1, 2, 3])
  np.testing.assert_allclose(
    binning.equalised_edges(t, 3, value_range=(0, 3), rounding="round"), [0, 2, 3]
  )
  with pytest.raises(ValueError, match="rounding 'floor'"):
    binning.equalised_edges(t, 3, rounding="floor")


def test_fixed_value_range_and_its_errors():
  t = np.array([20.0, 30.0, 45.0])
  np.testing.assert_allclose(binning.uniform_edges(t, 4, (0, 100)), [0, 25, 50, 75, 100])
  edges, keep = binning.make_classes(t, 4, False, value_range=(0, 100))
  np.testing.assert_allclose(edges, [0, 25, 50, 75, 100])
  np.testing.assert_allclose(keep, 1.0)
  with pytest.raises(ValueError, match="low < high"):
    binning.uniform_edges(t, 4, (5, 5))
