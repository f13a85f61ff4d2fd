"""The 1D grid: which models to train (`Run`s), and how they are cut into chunks.

`plan_runs` turns a config into runs (functions x dataset versions x samplings x scenarios x
method x K x balanced x lambda), `plan_chunks` groups runs of one static shape and cuts each
group into device-sized chunks, which `program.train_chunk` trains as one compiled program.
`Progress` prints the per-chunk progress line with its ETA.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence

import jax
import numpy as np
from absl import logging

from regcls_jax.data import synthetic1d
from regcls_jax.method import registry
from regcls_jax.train_lib import validate
from regcls_jax.train_lib.progress import Eta
from regcls_jax.train_lib.sharding import round_up


@dataclasses.dataclass(frozen=True)
class Run:
  """One trained model of the grid."""

  scenario: str
  sampling: str
  function: int
  version: int
  method: str  # one of registry.METHODS: 'reg', 'regcls' or a baseline
  num_classes: int  # K of the classification / histogram head; 0 without one
  balanced: bool
  lam: float  # 0 for 'reg'
  lr: float
  noise: float = synthetic1d.Sizes.noise_std  # target noise std (used by the noisy scenario)

  @classmethod
  def from_row(cls, row: dict) -> Run:
    """The run of a ``results.csv`` / checkpoint row."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return cls(**{n: row[n] if n in row else f.default for n, f in fields.items()})

  @property
  def seed(self) -> int:
    return synthetic1d.TRAIN_SEEDS[self.version]

  @property
  def dataset(self) -> tuple[str, str, int, int, float]:
    return (self.scenario, self.sampling, self.function, self.version, self.noise)

  @property
  def group(self) -> str:
    """Name of the runs of one method that share one compiled program (and one checkpoint
    array): the method's name, with ``_k{K}`` (and ``_bal``) for methods with a K-way head."""
    if not self.num_classes:
      return self.method
    return f"{self.method}_k{self.num_classes}" + ("_bal" if self.balanced else "")


def program_group(run: Run, config) -> str:
  """The group a run trains in: `Run.group`, or with ``config.share_methods`` the group of
  every method of its parameter shape (``reghead``, ``clshead_k{K}``; balanced reg+cls keeps
  ``regcls_k{K}_bal``), which puts methods on the vmapped model axis of one program."""
  own = run.method in registry.FEATURE_METHODS + registry.TWO_VIEWS  # their own forward / batch
  if not config.get("share_methods") or run.balanced or own:
    return run.group
  return "reghead" if not run.num_classes else f"clshead_k{run.num_classes}"


def group_methods(group: str, config) -> tuple[str, ...]:
  """The methods a group's compiled program can train, in `registry.METHODS` order; a run's
  position in this tuple is its method index in the program (so every chunk of a group compiles
  alike)."""
  if group == "reghead":
    own = registry.FEATURE_METHODS + registry.TWO_VIEWS
    family = tuple(m for m in registry.REG_HEAD if m not in own)
  elif group.startswith("clshead_k"):
    family = tuple(
      m for m in registry.CLS_HEAD if m not in registry.CLASSIFIES or False in config.balanced
    )
  else:
    return (group.rsplit("_k", 1)[0],)
  return tuple(m for m in family if m in config.methods)


def dataset_id(scenario: str, sampling: str, function: int) -> int:
  """A small integer naming a dataset within one version, for seeding."""
  sampling_idx = list(synthetic1d.SAMPLINGS).index(sampling)
  return (synthetic1d.SCENARIOS.index(scenario) * 4 + sampling_idx) * 100 + function


# ---------------------------------------------------------------------------------------------
# The grid.


def validate_config(config) -> None:
  """Raises ValueError naming the config key and what was expected."""
  validate.check_config(config)  # every numeric field's range, as in every family
  for name in config.scenarios:
    if name not in synthetic1d.SCENARIOS:
      raise ValueError(
        f"config.scenarios: unknown scenario {name!r}; expected one of {synthetic1d.SCENARIOS}"
      )
  for name in config.samplings:
    if name not in synthetic1d.SAMPLINGS:
      raise ValueError(
        f"config.samplings: unknown sampling {name!r}; expected one of "
        f"{tuple(synthetic1d.SAMPLINGS)}"
      )
  for name in config.methods:
    registry.check_method(name, "config.methods")
  registry.Settings.from_config(config.get("peers"))
  for f in config.functions:
    if not 0 <= f < synthetic1d.NUM_FUNCTIONS:
      raise ValueError(f"config.functions: index {f} outside [0, {synthetic1d.NUM_FUNCTIONS})")
  for v in config.versions:
    if not 0 <= v < len(synthetic1d.VERSION_SEEDS):
      raise ValueError(f"config.versions: index {v} outside [0, {len(synthetic1d.VERSION_SEEDS)})")
  for level in noise_levels(config):
    if not level >= 0:
      raise ValueError(f"config.noise_levels: expected target noise stds >= 0, got {level}")
  for scenario in config.scenarios:
    lams = config.lam[scenario] if scenario in config.lam else None
    if not lams:
      raise ValueError(f"config.lam.{scenario}: expected a non-empty tuple of lambdas")
    if scenario not in config.lr:
      raise ValueError(f"config.lr.{scenario}: expected a learning rate > 0, got None")
  if not (
    config.scenarios
    and config.samplings
    and config.functions
    and config.versions
    and config.methods
  ):
    raise ValueError(
      "config: scenarios, samplings, functions, versions and methods must each "
      "name at least one value"
    )
  if set(registry.CLS_HEAD) & set(config.methods) and not config.num_classes:
    raise ValueError(f"config.num_classes must be non-empty for {registry.CLS_HEAD}")
  if set(registry.CLASSIFIES) & set(config.methods) and not config.balanced:
    raise ValueError(f"config.balanced must be non-empty for {registry.CLASSIFIES}")


def noise_levels(config) -> tuple[float, ...]:
  """The target noise stds of the noisy scenario: ``config.noise_levels`` (the Fig. 5 sweep),
  or the one of ``config.data.noise_std``."""
  levels = config.get("noise_levels") or (config.data.noise_std,)
  return tuple(float(v) for v in levels)


def plan_runs(config) -> list[Run]:
  """Every model the config asks for, in a fixed order."""
  validate_config(config)
  runs = []
  for scenario in config.scenarios:
    lr = float(config.lr[scenario])
    # Only the noisy scenario's data depend on the noise level.
    levels = noise_levels(config) if scenario == "noisy" else (float(config.data.noise_std),)
    for noise, sampling, function, version in itertools.product(
      levels, config.samplings, config.functions, config.versions
    ):
      base = dict(
        scenario=scenario,
        sampling=sampling,
        function=int(function),
        version=int(version),
        lr=lr,
        noise=noise,
      )
      for method in (m for m in registry.METHODS if m in config.methods):
        if method in registry.REG_HEAD:
          runs.append(Run(method=method, num_classes=0, balanced=False, lam=0.0, **base))
        elif method in registry.HISTOGRAM:
          for k in config.num_classes:
            runs.append(Run(method=method, num_classes=int(k), balanced=False, lam=0.0, **base))
        else:
          for k in config.num_classes:
            for balanced in config.balanced:
              for lam in config.lam[scenario]:
                runs.append(
                  Run(
                    method=method,
                    num_classes=int(k),
                    balanced=bool(balanced),
                    lam=float(lam),
                    **base,
                  )
                )
  return runs


class DatasetCache:
  """Generates each dataset once; the Fig. 3 test set is the uniform sampling's test split."""

  def __init__(self, sizes: synthetic1d.Sizes):
    self._sizes = sizes
    self._cache: dict[tuple, synthetic1d.Dataset1D] = {}

  def get(self, scenario, sampling, function, version, noise=None) -> synthetic1d.Dataset1D:
    noise = self._sizes.noise_std if noise is None else float(noise)
    key = (scenario, sampling, function, version, noise)
    if key not in self._cache:
      sizes = dataclasses.replace(self._sizes, noise_std=noise)
      self._cache[key] = synthetic1d.make_dataset(function, version, scenario, sampling, sizes)
    return self._cache[key]

  def train_size(self, run: Run) -> int:
    return len(self.get(*run.dataset).train)

  def splits(self, run: Run) -> tuple[synthetic1d.Split, synthetic1d.Split, synthetic1d.Split]:
    """(train, val, test) for a run: own train and val, the uniform sampling's test split."""
    ds = self.get(*run.dataset)
    uniform = self.get(run.scenario, "uniform", run.function, run.version, run.noise)
    return ds.train, ds.val, uniform.test


# Logits (float32 elements) one device holds per step when ``config.logits_budget`` is 0 (auto).
# On a CPU a few models per core keep the step's working set in cache: at the paper's sizes
# (2-core CPU, `benchmarks/sweep1d.py`) 2**18 took 10% less time than 2**19 at K=64 and 8% less
# at K=256; K=1024 wants 2 models per core (1406 s per 600 models; 4 took 1495 s, 1 took
# 3514 s), which `models_per_device`'s floor of 2 keeps. An accelerator wants as many models as
# fit: 2**28 elements is 1 GiB per logits buffer.
AUTO_LOGITS_BUDGET = {"cpu": 2**18}
AUTO_LOGITS_BUDGET_ACCELERATOR = 2**28


def logits_budget(config) -> int:
  if config.logits_budget:
    return int(config.logits_budget)
  return AUTO_LOGITS_BUDGET.get(jax.default_backend(), AUTO_LOGITS_BUDGET_ACCELERATOR)


def models_per_device(loss_width: int, batch_size: int, budget: int) -> int:
  """How many models one device trains at once: bounded by the logits it holds per step, and
  at least 2 whatever the budget (one model per core ran K=1024 2.5x slower on a CPU)."""
  width = max(loss_width, 16)  # the trunk's activations bound the regression-only models
  return int(np.clip(budget // (batch_size * width), 2, 4096))


@dataclasses.dataclass(frozen=True)
class Chunk:
  group: str
  runs: tuple[Run, ...]  # padded to a multiple of the device count by repeating the last run
  num_real: int
  width: int = 0  # per-sample loss width of the group's program (`loss_width`)


def loss_width(group: str, num_classes: int, config) -> int:
  """Per-sample width of the widest intermediates of a group's loss: the K logits, plus the
  batch x batch logits of BMC and the bins of BNI when those share the program (with several
  methods in a group every one of their losses is computed, see `registry.switch`)."""
  names = group_methods(group, config)
  settings = registry.Settings.from_config(config.get("peers"))
  width = num_classes
  width += config.batch_size if "bmc" in names else 0
  width += settings.bins if "bni" in names else 0
  width += 2 * num_classes if set(names) & set(registry.HISTOGRAM) else 0
  # RankSim's and ConR's batch x batch similarities (ConR's over two views: 2B x 2B).
  width += config.batch_size if {"ranksim", "regcls+ranksim"} & set(names) else 0
  width += 4 * config.batch_size if "conr" in names else 0
  return width


def plan_chunks(
  runs: Sequence[Run], num_devices: int, config, size_of: Callable[[Run], int] | None = None
) -> list[Chunk]:
  """Groups runs by static shape and cuts each group into device-sized chunks.

  With ``size_of`` (a run's training-set size), each group is ordered by size first, so a chunk
  holds datasets of similar length: less padding (padded steps are computed, then skipped) and
  fewer distinct compiled shapes.
  """
  groups: dict[str, list[Run]] = {}
  for run in runs:
    groups.setdefault(program_group(run, config), []).append(run)
  chunks = []
  for name, members in groups.items():
    if size_of is not None:
      members = sorted(members, key=size_of)
    width = loss_width(name, members[0].num_classes, config)
    per_device = models_per_device(width, config.batch_size, logits_budget(config))
    size = per_device * num_devices
    # Shrink the chunk when the group is small, keeping a multiple of the device count.
    size = min(size, round_up(len(members), num_devices))
    for start in range(0, len(members), size):
      part = tuple(members[start : start + size])
      chunks.append(Chunk(name, part + (part[-1],) * (size - len(part)), len(part), width))
  return chunks


def chunk_cost(chunk: Chunk) -> float:
  """Relative cost of a chunk, for the ETA, in regression-only models: fitted to
  `benchmarks/sweep1d.py` on a CPU, where a reg+cls model costs about 2 + K / 46 of those
  (measured on 2026-12-03: K=4 1.9, K=64 3.4, K=1024 24)."""
  k = chunk.width
  return len(chunk.runs) * (2.0 + k / 46.0 if k else 1.0)


class Progress:
  """Logs one line per chunk with the rate and an ETA weighted by chunk cost."""

  def __init__(self, chunks: Sequence[Chunk], print_fn: Callable[[str], None] = logging.info):
    self._eta = Eta(sum(chunk_cost(c) for c in chunks))
    self._num_models = sum(c.num_real for c in chunks)
    self._done_models = 0
    self._print = print_fn

  def skip(self, chunk: Chunk) -> None:
    """A chunk restored from a checkpoint: counted as done, not in the rate."""
    self._eta.skip(chunk_cost(chunk))
    self._num_models -= chunk.num_real

  def update(self, index: int, num_chunks: int, chunk: Chunk, seconds: float) -> None:
    self._eta.advance(chunk_cost(chunk))
    self._done_models += chunk.num_real
    self._print(
      f"chunk {index + 1}/{num_chunks} [{chunk.group}, {chunk.num_real} models] "
      f"{seconds:.1f}s | {self._done_models}/{self._num_models} models, "
      f"{self._done_models / self._eta.elapsed:.2f} models/s | {self._eta.line()}"
    )
