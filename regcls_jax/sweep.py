"""The 1D grid (paper Fig. 3, Tab. 1) as one vmapped, scanned, sharded program.

Every trained model of the grid is a `Run`. Runs that share a static shape (method, number of
classes, balanced or not) are grouped; a group is cut into chunks, and each chunk trains as ONE
jitted program: ``jax.vmap`` over models, ``lax.scan`` over epochs and steps, ``shard_map`` over
the devices (on a CPU the cores are exposed as devices, see `main.py`). There is no Python loop
over steps or models; the Python loop runs over chunks, which only bounds memory, and every chunk
of a group reuses one compiled executable.

The regression-only model does not depend on K, lambda or the bins, so it is trained once per
dataset, not once per K as the reference driver does.

Precision: float32. The reference trains in float64; float32 halves memory traffic and is what
GPUs and TPUs run fast. On this MLP the two agree to well within the seed-to-seed spread.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from regcls_jax import binning, core, losses
from regcls_jax.data import synthetic1d
from regcls_jax.models.mlp import MLP

METHODS = ("reg", "regcls")


@dataclasses.dataclass(frozen=True)
class Run:
  """One trained model of the grid."""

  scenario: str
  sampling: str
  function: int
  version: int
  method: str  # 'reg' or 'regcls'
  num_classes: int  # 0 for 'reg'
  balanced: bool
  lam: float  # 0 for 'reg'
  lr: float

  @property
  def seed(self) -> int:
    return synthetic1d.TRAIN_SEEDS[self.version]

  @property
  def dataset(self) -> tuple[str, str, int, int]:
    return (self.scenario, self.sampling, self.function, self.version)

  @property
  def group(self) -> str:
    """Name of the runs that share one compiled program (and one checkpoint array)."""
    if self.method == "reg":
      return "reg"
    return f"regcls_k{self.num_classes}" + ("_bal" if self.balanced else "")


def dataset_id(scenario: str, sampling: str, function: int) -> int:
  """A small integer naming a dataset within one version, for seeding."""
  sampling_idx = list(synthetic1d.SAMPLINGS).index(sampling)
  return (synthetic1d.SCENARIOS.index(scenario) * 4 + sampling_idx) * 100 + function


# ---------------------------------------------------------------------------------------------
# The grid.


def validate_config(config) -> None:
  """Raises ValueError naming the config key and what was expected."""
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
    if name not in METHODS:
      raise ValueError(f"config.methods: unknown method {name!r}; expected one of {METHODS}")
  for k in config.num_classes:
    if int(k) != k or k < 2:
      raise ValueError(f"config.num_classes: every K must be an integer >= 2, got {k!r}")
  for f in config.functions:
    if not 0 <= f < synthetic1d.NUM_FUNCTIONS:
      raise ValueError(f"config.functions: index {f} outside [0, {synthetic1d.NUM_FUNCTIONS})")
  for v in config.versions:
    if not 0 <= v < len(synthetic1d.VERSION_SEEDS):
      raise ValueError(f"config.versions: index {v} outside [0, {len(synthetic1d.VERSION_SEEDS)})")
  for scenario in config.scenarios:
    lams = config.lam[scenario] if scenario in config.lam else None
    if not lams:
      raise ValueError(f"config.lam.{scenario}: expected a non-empty tuple of lambdas")
    for lam in lams:
      if not lam >= 0:
        raise ValueError(f"config.lam.{scenario}: lambda must be >= 0, got {lam!r}")
    lr = config.lr[scenario] if scenario in config.lr else None
    if lr is None or not lr > 0:
      raise ValueError(f"config.lr.{scenario}: expected a learning rate > 0, got {lr!r}")
  for key in ("epochs", "batch_size"):
    if int(config[key]) != config[key] or config[key] < 1:
      raise ValueError(f"config.{key}: expected an integer >= 1, got {config[key]!r}")
  if not config.scale > 0:
    raise ValueError(f"config.scale: expected a loss scale > 0, got {config.scale!r}")
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
  if "regcls" in config.methods and not (config.num_classes and config.balanced):
    raise ValueError("config.num_classes and config.balanced must be non-empty for 'regcls'")


def plan_runs(config) -> list[Run]:
  """Every model the config asks for, in a fixed order."""
  validate_config(config)
  runs = []
  for scenario in config.scenarios:
    lr = float(config.lr[scenario])
    for sampling in config.samplings:
      for function in config.functions:
        for version in config.versions:
          base = dict(
            scenario=scenario,
            sampling=sampling,
            function=int(function),
            version=int(version),
            lr=lr,
          )
          if "reg" in config.methods:
            runs.append(Run(method="reg", num_classes=0, balanced=False, lam=0.0, **base))
          if "regcls" in config.methods:
            for k in config.num_classes:
              for balanced in config.balanced:
                for lam in config.lam[scenario]:
                  runs.append(
                    Run(
                      method="regcls",
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

  def get(self, scenario, sampling, function, version) -> synthetic1d.Dataset1D:
    key = (scenario, sampling, function, version)
    if key not in self._cache:
      self._cache[key] = synthetic1d.make_dataset(
        function, version, scenario, sampling, self._sizes
      )
    return self._cache[key]

  def splits(self, run: Run) -> tuple[synthetic1d.Split, synthetic1d.Split, synthetic1d.Split]:
    """(train, val, test) for a run: own train and val, the uniform sampling's test split."""
    ds = self.get(*run.dataset)
    uniform = self.get(run.scenario, "uniform", run.function, run.version)
    return ds.train, ds.val, uniform.test


# ---------------------------------------------------------------------------------------------
# One chunk: the compiled program.


@dataclasses.dataclass(frozen=True)
class Statics:
  """Everything that fixes the compiled program of a chunk."""

  num_classes: int
  balanced: bool
  hidden: tuple[int, ...]
  epochs: int
  batch_size: int
  weight_decay: float
  steps_per_epoch: int


def _fmix32(h: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finaliser: a cheap, well-mixing bijection on uint32."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def epoch_permutation(key: jax.Array, n: jax.Array, n_pad: int) -> jax.Array:
  """A random order of ``[0, n)`` followed by ``[n, n_pad)``: one epoch's shuffle.

  Sorting random floats with an index payload (``argsort``) is the slowest part of the sweep's
  small models on a CPU, so each position gets one uint32 sort key instead: random high bits
  from a keyed hash, its own index in the low bits. A single-operand sort of those keys is ~6x
  faster than ``argsort``, and the low bits give the permutation back. Padding gets all-ones
  high bits and sorts last. Positions whose random high bits tie keep their index order; with
  16 random bits and ~22k samples that touches a few percent of adjacent pairs and does not
  change what an epoch contains. The keys of position i do not depend on ``n_pad``, so a model's
  shuffle is the same in any chunk.

  Args:
    key: PRNG key of this model and epoch.
    n: number of valid samples (traced scalar).
    n_pad: static length, at most 2**24.

  Returns:
    int32 ``[n_pad]``.
  """
  index_bits = max(16, int(np.ceil(np.log2(max(n_pad, 2)))))
  if index_bits > 24:
    raise ValueError(f"epoch_permutation: {n_pad} samples per model exceed 2**24")
  positions = jnp.arange(n_pad, dtype=jnp.uint32)
  salt = jax.random.bits(key, (), jnp.uint32)
  high = _fmix32(positions * jnp.uint32(0x9E3779B9) + salt) >> index_bits << index_bits
  high = jnp.where(positions < n, high, jnp.uint32(0xFFFFFFFF) >> index_bits << index_bits)
  order = jnp.sort(high | positions)
  return (order & jnp.uint32((1 << index_bits) - 1)).astype(jnp.int32)


def _train_one(statics: Statics, seed, ds_id, lr, lam, scale, train, val, test):
  """Trains and scores ONE model; vmapped over models by `_chunk_program`.

  Args:
    statics: the static configuration.
    seed, ds_id: int32 scalars; the model's keys are derived from them.
    lr, lam, scale: float32 scalars.
    train: dict ``x, y, cls, keep`` of ``[N]`` arrays plus ``n`` (valid count).
    val, test: dicts ``x, y`` of ``[N']`` and ``n``.

  Returns:
    (final params, metrics dict).
  """
  base = jax.random.fold_in(jax.random.key(seed), ds_id)
  init_key, shuffle_key, mask_key = (jax.random.fold_in(base, i) for i in range(3))
  model = MLP(1, statics.hidden, statics.num_classes, rngs=nnx.Rngs(params=init_key))
  graphdef, params = nnx.split(model)
  tx = core.adam_l2(0.0, statics.weight_decay)
  state = core.init_state(params, tx, lam, scale)
  state = state.replace(opt_state=core.set_learning_rate(state.opt_state, lr))
  train_step = core.make_train_step(graphdef, tx)
  bsz, n_pad = statics.batch_size, train["x"].shape[0]

  def epoch_body(state, epoch):
    # Valid samples first, in a fresh random order; padding sorts last.
    perm = epoch_permutation(jax.random.fold_in(shuffle_key, epoch), train["n"], n_pad)
    epoch_mask_key = jax.random.fold_in(mask_key, epoch)

    def step_body(state, s):
      idx = jax.lax.dynamic_slice(perm, (s * bsz,), (bsz,))
      valid = s * bsz + jnp.arange(bsz) < train["n"]
      batch = {"x": train["x"][idx][:, None], "y": train["y"][idx], "weight": valid}
      if statics.num_classes:
        batch["cls"] = train["cls"][idx]
        if statics.balanced:  # Eq. 13: a fresh keep draw every time a sample is seen
          u = jax.random.uniform(jax.random.fold_in(epoch_mask_key, s), (bsz,))
          batch["cls_mask"] = u < train["keep"][idx]
      new_state, metrics = train_step(state, batch, epoch_mask_key)
      # A batch past the end of a shorter dataset is empty: skip it (no Adam step either), so
      # each model sees exactly ceil(n / batch) batches per epoch, like a drop_last=False loader.
      state = jax.tree.map(lambda a, b: jnp.where(valid[0], a, b), new_state, state)
      return state, (metrics["loss"], valid[0])

    state, (step_losses, used) = jax.lax.scan(step_body, state, jnp.arange(statics.steps_per_epoch))
    return state, jnp.sum(step_losses * used) / jnp.maximum(jnp.sum(used), 1)

  state, epoch_losses = jax.lax.scan(epoch_body, state, jnp.arange(statics.epochs))
  metrics = {
    "train_loss": epoch_losses,
    "val_mse": _mse(graphdef, state.params, val),
    "test_mse": _mse(graphdef, state.params, test),
  }
  return state.params, metrics


def _mse(graphdef, params, split) -> jax.Array:
  pred = nnx.merge(graphdef, params).predict(split["x"][:, None])
  weight = jnp.arange(split["x"].shape[0]) < split["n"]
  return losses.regression_loss(pred, split["y"], weight)


@functools.cache
def _chunk_program(statics: Statics, mesh: Mesh) -> Callable:
  """The jitted program that trains a whole chunk; cached per static configuration."""
  vmapped = jax.vmap(functools.partial(_train_one, statics))
  sharded = jax.shard_map(
    vmapped, mesh=mesh, in_specs=P("models"), out_specs=P("models"), check_vma=False
  )
  return jax.jit(sharded, compiler_options=_compiler_options(statics))


def _compiler_options(statics: Statics) -> dict[str, str]:
  """XLA:CPU runs the wide heads' matmuls fastest through its YNNPACK fusions, but the tiny
  batched matmuls of the trunk and narrow heads faster without them: at the paper's sizes the
  regression-only group took 106 s per 600 models without and 135 s with, K=16 202 vs 227 s,
  while K=256 took 578 vs 388 s and K=1024 1856 vs 1170 s (`benchmarks/sweep1d.py`)."""
  if jax.default_backend() == "cpu" and statics.num_classes < 64:
    return {"xla_cpu_experimental_ynn_fusion_type": ""}
  return {}


@functools.cache
def _eval_program(hidden: tuple[int, ...], num_classes: int, mesh: Mesh) -> Callable:
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: MLP(1, hidden, num_classes, rngs=nnx.Rngs(0))))
  vmapped = jax.vmap(functools.partial(_mse, graphdef))
  return jax.jit(
    jax.shard_map(vmapped, mesh=mesh, in_specs=P("models"), out_specs=P("models"), check_vma=False)
  )


def param_template(hidden: Sequence[int], num_classes: int) -> nnx.State:
  """Abstract parameters (shapes only) of one model."""
  return nnx.state(nnx.eval_shape(lambda: MLP(1, tuple(hidden), num_classes, rngs=nnx.Rngs(0))))


# ---------------------------------------------------------------------------------------------
# Chunk assembly on the host.


def _round_up(n: int, multiple: int) -> int:
  return max(multiple, -(-n // multiple) * multiple)


def _pad(a: np.ndarray, n: int) -> np.ndarray:
  return np.pad(a, (0, n - len(a)))


def _split_arrays(splits: Sequence[synthetic1d.Split], n_pad: int) -> dict[str, np.ndarray]:
  return {
    "x": np.stack([_pad(s.x, n_pad) for s in splits]),
    "y": np.stack([_pad(s.y, n_pad) for s in splits]),
    "n": np.array([len(s) for s in splits], np.int32),
  }


def chunk_inputs(runs: Sequence[Run], cache: DatasetCache, scale: float, pad_multiple: int):
  """Host arrays for a chunk of runs of one group, padded to a common length."""
  splits = [cache.splits(r) for r in runs]
  n_train = _round_up(max(len(s[0]) for s in splits), pad_multiple)
  n_eval = _round_up(max(max(len(s[1]), len(s[2])) for s in splits), pad_multiple)
  train = _split_arrays([s[0] for s in splits], n_train)
  cls = np.zeros((len(runs), n_train), np.int32)
  keep = np.ones((len(runs), n_train), np.float32)
  for i, (run, (tr, _, _)) in enumerate(zip(runs, splits)):
    if run.num_classes:
      edges, keep_probs = binning.make_classes(tr.y, run.num_classes, run.balanced)
      c = binning.assign_classes(tr.y, edges)
      cls[i, : len(c)] = c
      keep[i, : len(c)] = keep_probs[c]
  train.update(cls=cls, keep=keep)
  scalars = dict(
    seed=np.array([r.seed for r in runs], np.int32),
    ds_id=np.array([dataset_id(r.scenario, r.sampling, r.function) for r in runs], np.int32),
    lr=np.array([r.lr for r in runs], np.float32),
    lam=np.array([r.lam for r in runs], np.float32),
    scale=np.full(len(runs), scale, np.float32),
  )
  val = _split_arrays([s[1] for s in splits], n_eval)
  test = _split_arrays([s[2] for s in splits], n_eval)
  return scalars, train, val, test


# Logits (float32 elements) one device holds per step when ``config.logits_budget`` is 0 (auto).
# On a CPU a few K=1024 models per core keep the step's working set in cache: at the paper's
# sizes 2 models per core took 1406 s per 600 models, 4 took 1495 s and 1 took 3514 s. An
# accelerator wants as many models as fit: 2**28 elements is 1 GiB per logits buffer.
AUTO_LOGITS_BUDGET = {"cpu": 2**19}
AUTO_LOGITS_BUDGET_ACCELERATOR = 2**28


def logits_budget(config) -> int:
  if config.logits_budget:
    return int(config.logits_budget)
  return AUTO_LOGITS_BUDGET.get(jax.default_backend(), AUTO_LOGITS_BUDGET_ACCELERATOR)


def models_per_device(num_classes: int, batch_size: int, budget: int) -> int:
  """How many models one device trains at once: bounded by the logits it holds per step."""
  width = max(num_classes, 32)  # the trunk's activations bound the regression-only models
  return int(np.clip(budget // (batch_size * width), 1, 4096))


@dataclasses.dataclass(frozen=True)
class Chunk:
  group: str
  runs: tuple[Run, ...]  # padded to a multiple of the device count by repeating the last run
  num_real: int


def plan_chunks(runs: Sequence[Run], num_devices: int, config) -> list[Chunk]:
  """Groups runs by static shape and cuts each group into device-sized chunks."""
  groups: dict[str, list[Run]] = {}
  for run in runs:
    groups.setdefault(run.group, []).append(run)
  chunks = []
  for name, members in groups.items():
    per_device = models_per_device(members[0].num_classes, config.batch_size, logits_budget(config))
    size = per_device * num_devices
    # Shrink the chunk when the group is small, keeping a multiple of the device count.
    size = min(size, _round_up(len(members), num_devices))
    for start in range(0, len(members), size):
      part = tuple(members[start : start + size])
      chunks.append(Chunk(name, part + (part[-1],) * (size - len(part)), len(part)))
  return chunks


def chunk_cost(chunk: Chunk) -> float:
  """Relative cost of a chunk, for the ETA (fitted to `benchmarks/sweep1d.py`: a K=1024 model
  costs about 6x a regression-only one on a CPU)."""
  k = chunk.runs[0].num_classes
  return len(chunk.runs) * (1.0 + k / 200.0)


def statics_for(chunk: Chunk, config, n_train: int) -> Statics:
  run = chunk.runs[0]
  return Statics(
    num_classes=run.num_classes,
    balanced=run.balanced,
    hidden=tuple(config.hidden),
    epochs=int(config.epochs),
    batch_size=int(config.batch_size),
    weight_decay=float(config.weight_decay),
    steps_per_epoch=n_train // int(config.batch_size),
  )


def train_chunk(chunk: Chunk, cache: DatasetCache, config, mesh: Mesh):
  """Trains one chunk. Returns (params of the real runs as numpy, metrics dict of numpy)."""
  pad_multiple = config.batch_size * -(-1024 // config.batch_size)
  scalars, train, val, test = chunk_inputs(chunk.runs, cache, config.scale, pad_multiple)
  statics = statics_for(chunk, config, train["x"].shape[1])
  program = _chunk_program(statics, mesh)
  params, metrics = program(
    scalars["seed"],
    scalars["ds_id"],
    scalars["lr"],
    scalars["lam"],
    scalars["scale"],
    train,
    val,
    test,
  )
  params, metrics = jax.device_get((params, metrics))
  keep = slice(0, chunk.num_real)
  return jax.tree.map(lambda a: a[keep], params), {k: v[keep] for k, v in metrics.items()}


def evaluate_group(
  runs: Sequence[Run], params: nnx.State, cache: DatasetCache, config, mesh: Mesh
) -> tuple[np.ndarray, np.ndarray]:
  """Val and test MSE of stored parameters of one group (no training)."""
  n_dev = mesh.devices.size
  program = _eval_program(tuple(config.hidden), runs[0].num_classes, mesh)
  val_out, test_out = [], []
  size = _round_up(min(len(runs), 256), n_dev)
  for start in range(0, len(runs), size):
    n = min(size, len(runs) - start)
    idx = np.arange(start, start + _round_up(n, n_dev)).clip(max=start + n - 1)
    p = jax.tree.map(lambda a, idx=idx: a[idx], params)
    _, _, val, test = chunk_inputs([runs[i] for i in idx], cache, config.scale, 1024)
    val_out.append(np.asarray(program(p, val))[:n])
    test_out.append(np.asarray(program(p, test))[:n])
  return np.concatenate(val_out), np.concatenate(test_out)


def make_mesh() -> Mesh:
  return Mesh(np.array(jax.devices()), ("models",))


class Progress:
  """Logs one line per chunk with the rate and an ETA weighted by chunk cost."""

  def __init__(self, chunks: Sequence[Chunk], print_fn: Callable[[str], None] = logging.info):
    self._total = sum(chunk_cost(c) for c in chunks)
    self._num_models = sum(c.num_real for c in chunks)
    self._done_cost = 0.0
    self._done_models = 0
    self._start = time.perf_counter()
    self._print = print_fn

  def skip(self, chunk: Chunk) -> None:
    """A chunk restored from a checkpoint: counted as done, not in the rate."""
    self._total -= chunk_cost(chunk)
    self._num_models -= chunk.num_real

  def update(self, index: int, num_chunks: int, chunk: Chunk, seconds: float) -> None:
    self._done_cost += chunk_cost(chunk)
    self._done_models += chunk.num_real
    elapsed = time.perf_counter() - self._start
    eta = elapsed / self._done_cost * (self._total - self._done_cost)
    self._print(
      f"chunk {index + 1}/{num_chunks} [{chunk.group}, {chunk.num_real} models] "
      f"{seconds:.1f}s | {self._done_models}/{self._num_models} models, "
      f"{self._done_models / elapsed:.2f} models/s | elapsed {format_seconds(elapsed)}, "
      f"ETA {format_seconds(eta)}"
    )


def format_seconds(s: float) -> str:
  s = int(math.ceil(s))
  h, rem = divmod(s, 3600)
  m, sec = divmod(rem, 60)
  return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"
