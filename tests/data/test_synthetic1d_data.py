"""The 1D data generator: the reference's functions, sizes, sampling fractions and splits."""

import numpy as np
import pytest

from regcls_jax.data import synthetic1d as s1d


def test_functions_follow_the_reference_rule():
  fs = s1d.functions()
  assert len(fs) == 10
  # Python's random seeded 0: the first random() is 0.8444218515250481 (CPython's MT19937).
  assert fs[0].a == pytest.approx(0.8444218515250481)
  for f in fs:
    assert 0 <= f.a < 1 and f.b == pytest.approx(1.5 - f.a)
    assert 9 <= f.c <= 30 and f.d == f.c // 3
  x = np.linspace(-1, 1, 7)
  f = fs[3]
  np.testing.assert_allclose(f(x), f.a * np.sin(f.c * x) + f.b * np.sin(f.d * x))


def test_version_seeds_are_numpy_legacy_seed0():
  assert s1d.VERSION_SEEDS == tuple(np.random.RandomState(0).randint(0, 10000, 5).tolist())
  assert s1d.TRAIN_SEEDS == (0, 421, 8125, 2481, 849)


def test_uniform_sampling_sizes_and_flat_target_histogram():
  ds = s1d.make_dataset(0, 0, "clean", "uniform")
  n = len(ds.train) + len(ds.val) + len(ds.test)
  # 59 draws from each non-empty of 1024 y-bins (all are non-empty for a continuous f).
  assert n == 1024 * (60000 // 1024 + 1)
  assert abs(len(ds.train) - n / 3) <= 2 and abs(len(ds.test) - n / 3) <= 2
  f = s1d.functions()[0]
  y = np.concatenate([ds.train.y, ds.val.y, ds.test.y])
  np.testing.assert_allclose(y, f(np.concatenate([ds.train.x, ds.val.x, ds.test.x])), atol=1e-6)
  counts = np.histogram(y, bins=16)[0]
  assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


@pytest.mark.parametrize("sampling", ["mild", "moderate", "severe"])
def test_imbalanced_sampling_fraction_in_peak(sampling):
  ds = s1d.make_dataset(1, 2, "clean", sampling)
  n = len(ds.train) + len(ds.val) + len(ds.test)
  assert n == (60000 - 1024 - 5) + 6 * 1024  # 58,971 peak + 6 per full-range bin
  f = s1d.functions()[1]
  grid = f(np.linspace(-1, 1, 200_001))
  half = s1d.SAMPLINGS[sampling] * (grid.max() - grid.min())
  y = np.concatenate([ds.train.y, ds.val.y, ds.test.y])
  in_peak = np.mean(np.abs(y - ds.peak) <= half)
  # The peak holds 58,971 of 65,115 samples (~90.6%) plus the background that falls inside it.
  assert 0.88 < in_peak < 0.97
  # Splits are a random three-way cut: each holds the same share of the peak.
  for split in (ds.train, ds.val, ds.test):
    assert abs(np.mean(np.abs(split.y - ds.peak) <= half) - in_peak) < 0.02


def test_noisy_targets_have_std_0_1():
  ds = s1d.make_dataset(2, 0, "noisy", "uniform")
  f = s1d.functions()[2]
  residual = ds.train.y - f(ds.train.x)
  assert abs(residual.std() - 0.1) < 0.005 and abs(residual.mean()) < 0.005


def test_ood_splits_cover_alternating_intervals():
  ds = s1d.make_dataset(0, 1, "ood", "uniform")
  width = 2 / 9
  for split, first in ((ds.train, 0), (ds.val, 1), (ds.test, 2)):
    interval = np.floor((split.x + 1) / width).astype(int)
    # Each x lies in one of the split's intervals or in the random overlap past its upper end.
    own = np.isin(interval, [first, first + 3, first + 6])
    spill = np.isin(interval, [first + 1, first + 4, first + 7])
    assert np.all(own | spill)
    assert own.mean() > 0.6
  # Train and test never share an interval (they are two apart).
  assert not set(np.floor((ds.train.x + 1) / width).astype(int)) & {2, 5, 8}


def test_deterministic_and_versions_differ():
  a = s1d.make_dataset(4, 3, "clean", "severe")
  b = s1d.make_dataset(4, 3, "clean", "severe")
  c = s1d.make_dataset(4, 4, "clean", "severe")
  np.testing.assert_array_equal(a.train.x, b.train.x)
  assert a.peak == b.peak and a.peak != c.peak
  assert a.train.x.dtype == np.float32


@pytest.mark.parametrize(
  "scenario,sampling,match", [("dirty", "uniform", "scenario"), ("clean", "extreme", "sampling")]
)
def test_bad_names(scenario, sampling, match):
  with pytest.raises(ValueError, match=match):
    s1d.make_dataset(0, 0, scenario, sampling)


def test_noisy_uniform_bins_noisy_targets():
  # The reference lays the 1024 bins over NOISY targets: the clean targets of the kept x are then
  # far from flat, with about twice the mean count in the two extreme eighths (a binning of clean
  # targets, as the clean scenario's, gives a flat histogram).
  f = s1d.functions()[2]
  noisy = s1d.make_dataset(2, 0, "noisy", "uniform")
  clean = s1d.make_dataset(2, 0, "clean", "uniform")
  for ds, lo, hi in ((noisy, 1.5, 2.5), (clean, 0.95, 1.05)):
    x = np.concatenate([ds.train.x, ds.val.x, ds.test.x])
    counts = np.histogram(f(x), bins=8)[0]
    assert lo < counts[0] / counts.mean() < hi and lo < counts[-1] / counts.mean() < hi
  # Fewer bins are non-empty at the noisy range's tails, so fewer samples than 1024 * 59.
  assert len(noisy.train) + len(noisy.val) + len(noisy.test) < 1024 * 59


def test_ood_imbalanced_follows_the_per_interval_budget():
  sizes = s1d.Sizes()
  ds = s1d.make_dataset(0, 0, "ood", "severe")
  f = s1d.functions()[0]
  for split, first in ((ds.train, 0), (ds.val, 1), (ds.test, 2)):
    # Count the split's intervals whose y-range holds the peak, from a dense grid per interval.
    width = 2 / 9
    n_in = 0
    for i in (first, first + 3, first + 6):
      inside = split.x[np.floor((split.x + 1) / width).astype(int) == i]
      y = f(np.linspace(inside.min(), inside.max(), 20_001))
      n_in += y.min() < ds.peak < y.max()
    budget = sizes.all_samples // (3 * n_in)
    # Per peak interval: budget - 1024 - 1 peak samples; per interval 2 per non-empty y-bin.
    peak_part = n_in * (budget - sizes.max_bins - 1)
    assert peak_part < len(split) <= peak_part + 3 * 2 * sizes.max_bins
    # The peak's draws are about 75% of a severe OOD set (the reference's sizes).
    assert 0.7 < peak_part / len(split) < 0.8
