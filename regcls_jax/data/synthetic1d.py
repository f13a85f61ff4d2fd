"""The paper's controlled 1D study: sums of two sines under imbalanced sampling.

Paper Sec. 2.1 / 3.1; the exact generation rules are the reference code's
(the authors' ``1d/`` code, docs/synthetic1d.md):

* f(x) = A sin(C x) + B sin(D x) on x in [-1, 1]; 10 functions drawn from Python's ``random``
  seeded 0: A = random(), B = 1.5 - A, C = randint(9, 30), D = C // 3.
* 5 dataset versions, seeds ``np.random.RandomState(0).randint(0, 10000, 5)``.
* "uniform" sampling is uniform in the target: a pool of x is binned by y into 1024 bins and each
  non-empty bin contributes ``n // 1024 + 1`` samples (with replacement).
* mild / moderate / severe sampling put most samples into a peak of half-width
  ``r * (ymax - ymin)``, r = 0.3 / 0.1 / 0.03, around a random y, plus 6 samples from every one
  of the 1024 full-range bins; the sizes are the reference's (about 90% in the peak).
* Scenarios: clean; noisy (targets + N(0, 0.1); its uniform sampling lays the 1024 bins over
  noisy targets, as the reference does); out-of-distribution (x-intervals alternate between
  train, val and test, with small random overlaps). OOD imbalanced sampling follows the
  reference per interval: a split spends ``all_samples // (3 * n_in)`` on each of its ``n_in``
  intervals that hold the peak, the peak's half-width is the ratio times that interval's own
  y-range, and every interval adds 2 samples per y-bin (``min_spls = 5 // 3``).

Datasets are a pure function of (function, version, scenario, sampling): every draw comes from
``np.random.default_rng`` seeded with those ids. Bit-exact agreement with the reference's random
stream is not a goal; the distributions and sizes are.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np

SCENARIOS = ("clean", "noisy", "ood")
# Half-width of the peak region as a fraction of the target range; None = uniform in y.
SAMPLINGS = {"uniform": None, "mild": 0.3, "moderate": 0.1, "severe": 0.03}
NUM_FUNCTIONS = 10
VERSION_SEEDS = tuple(int(s) for s in np.random.RandomState(0).randint(0, 10000, 5))
TRAIN_SEEDS = (0, 421, 8125, 2481, 849)  # the i-th training seed goes with dataset version i


@dataclasses.dataclass(frozen=True)
class Sizes:
  """The reference's sample-count constants."""

  all_samples: int = 60000
  max_bins: int = 1024
  min_spls: int = 5
  pool: int = 100_000  # x values drawn before binning by y
  noise_std: float = 0.1
  ood_intervals: int = 9


@dataclasses.dataclass(frozen=True)
class SineFunction:
  """f(x) = a sin(c x) + b sin(d x)."""

  a: float
  b: float
  c: int
  d: int

  def __call__(self, x: np.ndarray) -> np.ndarray:
    return self.a * np.sin(self.c * x) + self.b * np.sin(self.d * x)


@dataclasses.dataclass(frozen=True)
class Split:
  x: np.ndarray  # float32 [n]
  y: np.ndarray  # float32 [n]

  def __len__(self) -> int:
    return len(self.x)


@dataclasses.dataclass(frozen=True)
class Dataset1D:
  function: int
  version: int
  scenario: str
  sampling: str
  train: Split
  val: Split
  test: Split
  peak: float | None  # the peak's centre in y, None for uniform sampling


def functions(n: int = NUM_FUNCTIONS) -> list[SineFunction]:
  """The reference's n functions (Python ``random`` seeded 0)."""
  rng = random.Random(0)
  out = []
  for _ in range(n):
    a = rng.random()
    c = rng.randint(9, 30)
    out.append(SineFunction(a=a, b=1.5 - a, c=c, d=c // 3))
  return out


def check_names(scenario: str, sampling: str) -> None:
  if scenario not in SCENARIOS:
    raise ValueError(f"unknown scenario {scenario!r}; expected one of {SCENARIOS}")
  if sampling not in SAMPLINGS:
    raise ValueError(f"unknown sampling {sampling!r}; expected one of {tuple(SAMPLINGS)}")


def _draw_per_bin(rng, xs, ys, lo, hi, num_bins, per_bin):
  """``per_bin`` draws with replacement from each non-empty y-bin of ``[lo, hi]``."""
  inside = (ys >= lo) & (ys <= hi)
  xs, ys = xs[inside], ys[inside]
  if xs.size == 0 or per_bin <= 0:
    return np.zeros(0)
  bins = np.clip(((ys - lo) / (hi - lo) * num_bins).astype(np.int64), 0, num_bins - 1)
  # int16 keys make numpy's stable sort a radix sort: ~5x faster on the 100k-sample pools.
  order = np.argsort(bins.astype(np.int16) if num_bins < 2**15 else bins, kind="stable")
  counts = np.bincount(bins, minlength=num_bins)
  starts = np.cumsum(counts) - counts
  full = np.flatnonzero(counts)
  offsets = (rng.random((full.size, per_bin)) * counts[full, None]).astype(np.int64)
  return xs[order][(starts[full, None] + offsets).ravel()]


def _sample_x(rng, xs, ys, n_total, sizes, ratio, centre, min_spls=None, bin_ys=None):
  """The reference's target-space sampling of about ``n_total`` x values from a pool ``(xs, ys)``.

  Uniform (``ratio`` None): ``n_total // max_bins + 1`` draws from each non-empty of
  ``max_bins`` y-bins over the pool's range. Imbalanced: when ``centre`` lies strictly inside
  the pool's y-range, ``(n_total - max_bins * min_spls) // max_bins * 2`` draws per sub-bin of
  the peak ``centre +- ratio * (pool's y-range)``, shuffled and cut to
  ``n_total - max_bins - min_spls``; then ``min_spls + 1`` draws from every full-range bin.

  Args:
    bin_ys: the values the bins are laid over (default ``ys``); the noisy scenario's uniform
      sampling bins noisy targets, as the reference does.
  """
  min_spls = sizes.min_spls if min_spls is None else min_spls
  ys = ys if bin_ys is None else bin_ys
  lo, hi = ys.min(), ys.max()
  if ratio is None:
    return _draw_per_bin(rng, xs, ys, lo, hi, sizes.max_bins, n_total // sizes.max_bins + 1)
  parts = []
  if lo < centre < hi:
    half = ratio * (hi - lo)
    per_bin = (n_total - sizes.max_bins * min_spls) // sizes.max_bins * 2
    peak_x = _draw_per_bin(rng, xs, ys, centre - half, centre + half, sizes.max_bins, per_bin)
    parts.append(rng.permutation(peak_x)[: n_total - sizes.max_bins - min_spls])
  parts.append(_draw_per_bin(rng, xs, ys, lo, hi, sizes.max_bins, min_spls + 1))
  return np.concatenate(parts)


def _ood_intervals(rng, sizes):
  width = 2.0 / sizes.ood_intervals
  lo = -1.0 + width * np.arange(sizes.ood_intervals)
  hi = np.minimum(lo + width + np.abs(rng.normal(0.0, width / 4, sizes.ood_intervals)), 1.0)
  return lo, hi


def make_dataset(
  function: int, version: int, scenario: str, sampling: str, sizes: Sizes = Sizes()
) -> Dataset1D:
  """One (function, version, scenario, sampling) dataset with its train / val / test splits.

  Args:
    function: index into `functions()`, 0..9.
    version: dataset version 0..4 (its seed is ``VERSION_SEEDS[version]``).
    scenario: 'clean', 'noisy' or 'ood'.
    sampling: 'uniform', 'mild', 'moderate' or 'severe'.
    sizes: sample-count constants.

  Returns:
    the dataset; splits are float32.
  """
  check_names(scenario, sampling)
  if not 0 <= function < NUM_FUNCTIONS:
    raise ValueError(f"function index must be in [0, {NUM_FUNCTIONS}), got {function}")
  if not 0 <= version < len(VERSION_SEEDS):
    raise ValueError(f"dataset version must be in [0, {len(VERSION_SEEDS)}), got {version}")
  f = functions()[function]
  seed = VERSION_SEEDS[version]
  ids = [seed, function, SCENARIOS.index(scenario), list(SAMPLINGS).index(sampling)]
  rng = np.random.default_rng(ids)
  ratio = SAMPLINGS[sampling]

  if scenario != "ood":
    xs = rng.uniform(-1.0, 1.0, sizes.pool)
    ys = f(xs)
    centre = None if ratio is None else rng.uniform(ys.min(), ys.max())
    # Noisy uniform sampling lays its bins over noisy targets (the reference adds the noise
    # before binning); the splits' targets then get fresh noise below.
    noisy_bins = scenario == "noisy" and ratio is None
    bin_ys = ys + rng.normal(0.0, sizes.noise_std, ys.shape) if noisy_bins else None
    x = rng.permutation(
      _sample_x(rng, xs, ys, sizes.all_samples, sizes, ratio, centre, bin_ys=bin_ys)
    )
    third = len(x) // 3
    parts = [x[:third], x[third : 2 * third], x[2 * third :]]
  else:
    # The intervals depend on (function, version) only, so every sampling of one dataset version
    # shares them, and the uniform test split scores the same x-regions.
    lo, hi = _ood_intervals(np.random.default_rng([seed, function, 2, 99]), sizes)
    pools = [rng.uniform(a, b, sizes.pool) for a, b in zip(lo, hi)]
    pool_y = [f(p) for p in pools]
    glob = f(np.linspace(-1.0, 1.0, sizes.pool))
    ranges = [(py.min(), py.max()) for py in pool_y]
    splits_of = [range(s, sizes.ood_intervals, 3) for s in range(3)]
    centre, budgets = None, [sizes.all_samples // sizes.ood_intervals] * 3
    if ratio is not None:
      for _ in range(10_000):  # re-draw until every split has an interval containing the peak
        centre = rng.uniform(glob.min(), glob.max())
        hits = [sum(ranges[i][0] <= centre <= ranges[i][1] for i in idx) for idx in splits_of]
        if min(hits) > 0:
          break
      else:
        raise RuntimeError(f"no OOD peak found for function {function}, version {version}")
      # Each split spends one third of the samples on the intervals that hold the peak.
      budgets = [sizes.all_samples // (3 * h) for h in hits]
    min_spls = sizes.min_spls // 3  # the reference divides by the 3 intervals of a split
    per_interval = [
      _sample_x(rng, p, py, budgets[i % 3], sizes, ratio, centre, min_spls=min_spls)
      for i, (p, py) in enumerate(zip(pools, pool_y))
    ]
    parts = [rng.permutation(np.concatenate(per_interval[s::3])) for s in range(3)]

  def split(x):
    x = x.astype(np.float32)
    y = f(x.astype(np.float64))  # targets of the stored (float32) inputs
    if scenario == "noisy":
      y = y + rng.normal(0.0, sizes.noise_std, y.shape)
    return Split(x.astype(np.float32), y.astype(np.float32))

  train, val, test = (split(p) for p in parts)
  return Dataset1D(function, version, scenario, sampling, train, val, test, centre)
