"""The 1D grid's compiled program: a chunk of models trained as ONE jitted program.

`plan.plan_chunks` cuts the grid into chunks of runs of one static shape (method, number of
classes, balanced or not); `train_chunk` trains a chunk with ``jax.vmap`` over models,
``lax.scan`` over epochs, a while loop over each epoch's steps, and ``shard_map`` over the
devices (on a CPU the cores are exposed as devices, see `train_lib/runtime.py`). There is no
Python loop over steps or models; the Python loop in `trainer` runs over chunks, which only
bounds memory, and the chunks of a group share one compiled executable (their splits padded to
1024 x a power of two, `padded_lengths`; the step count an argument, `chunk_steps`). On a CPU
the paper-size programs are not kept in JAX's on-disk cache: their shuffles call NumPy
(`scan_loop.sort_keys`), and JAX does not cache programs with host callbacks.

On a CPU the trunk's narrow layers run as unrolled multiply-adds (`_features`) and each group
compiles with its own XLA options (`compiler_options`); docs/synthetic1d.md ("How the grid
runs") has what each of these saves.

The regression-only model does not depend on K, lambda or the bins, so it is trained once per
dataset, not once per K as the reference driver does.

From K=256 on, reg+cls's K-way head is fused into its CE (`FUSED_HEAD_MIN_CLASSES`,
`losses.linear_cross_entropy`): the same models up to float rounding, 5-9% faster there.

Precision: float32. The reference trains in float64; float32 halves memory traffic and is what
GPUs and TPUs run fast. The default grid's means land within a few percent of the reference's
float64 numbers (docs/synthetic1d.md); a float64 run of this code has not been compared.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from regcls_jax.data import synthetic1d
from regcls_jax.families.synthetic1d.plan import Chunk, DatasetCache, Run, dataset_id, group_methods
from regcls_jax.method import binning, fds, losses, registry
from regcls_jax.models import mlp
from regcls_jax.models.mlp import MLP
from regcls_jax.train_lib import pytrees, scan_loop, sharding
from regcls_jax.train_lib import step as step_lib
from regcls_jax.train_lib.sharding import round_up

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
  drop_last: bool = True
  methods: tuple[str, ...] = ("reg",)  # the group's methods; a model picks one by index
  settings: registry.Settings = registry.Settings()
  view_jitter: float = 0.002  # ConR's two views: x + N(0, jitter^2), each view its own draw
  fused_head: bool = False  # the K-way head fused into the CE (`_cls_logits`)


# The K-way head is fused into the CE (`losses.LinearLogits`) from this many classes on, for
# the methods whose only use of the logits is that CE. At the paper's sizes on a 2-core CPU one
# chunk took 6-9% less time at K=1024 and 5% less at K=256, the same at K=64, and 6% more at K=4
# and 16, where the head is too narrow for the saved pass over its logits to pay.
FUSED_HEAD_MIN_CLASSES = 256
FUSED_HEAD_METHODS = frozenset({"regcls", "regcls+ranksim"})


def _cls_logits(model: MLP, h: jax.Array, fused: bool):
  """The K-way head's logits of the features ``h``: None without a head; with ``fused`` the
  unevaluated `losses.LinearLogits`, whose CE `losses.linear_cross_entropy` computes."""
  if model.cls_head is None:
    return None
  if fused:
    return losses.LinearLogits(h, model.cls_head.kernel[...])
  return model.cls_head(h)


def _features(model: MLP, x: jax.Array) -> jax.Array:
  """The trunk's features in training: on a CPU its narrow layers as unrolled multiply-adds
  (`mlp.unrolled_features`, the same up to float rounding), elsewhere `MLP.features`."""
  if jax.default_backend() == "cpu":
    return mlp.unrolled_features(model, x)
  return model.features(x)


def _train_one(
  statics: Statics,
  seed,
  ds_id,
  init_stream,
  lr,
  lam,
  scale,
  method,
  priors,
  train,
  val,
  test,
  num_steps,
):
  """Trains and scores ONE model; vmapped over models by `_chunk_program`.

  Args:
    statics: the static configuration.
    seed, ds_id: int32 scalars; the model's keys are derived from them.
    init_stream: int32 scalar; models of one dataset with the same stream start from the same
      trunk and regression head (`init_streams`).
    lr, lam, scale: float32 scalars.
    method: int32 index into ``statics.methods``.
    priors: the model's `registry.fit_priors` arrays.
    train: dict ``x, y, cls, keep`` of ``[N]`` arrays plus ``n`` (valid count).
    val, test: dicts ``x, y`` of ``[N']`` and ``n``.
    num_steps: int32 scalar shared by the chunk's models (unbatched): batches per epoch, enough
      for its longest training set (`chunk_steps`); one program serves every chunk padded to
      the same lengths.

  Returns:
    (final params, metrics dict).
  """
  base = jax.random.fold_in(jax.random.key(seed), ds_id)
  init_key, shuffle_key, mask_key = (jax.random.fold_in(base, i) for i in range(3))
  init_key = jax.random.fold_in(init_key, init_stream)
  model = MLP(1, statics.hidden, statics.num_classes, rngs=nnx.Rngs(params=init_key))
  graphdef, params = nnx.split(model)
  tx = step_lib.adam_l2(0.0, statics.weight_decay)
  state = step_lib.init_state(params, tx, lam, scale)
  state = state.replace(opt_state=step_lib.set_learning_rate(state.opt_state, lr))
  with_fds = statics.methods == ("fds",)
  two_views = statics.methods == registry.TWO_VIEWS
  with_features = bool(set(statics.methods) & set(registry.FEATURE_LOSSES))
  if with_fds:  # per-bucket feature statistics, carried in the (not differentiated) hparams
    buckets = binning.assign_classes_device(train["y"], priors["edges"])
    buckets = jnp.where(jnp.arange(buckets.shape[0]) < train["n"], buckets, -1)  # padding: none
    fds_state = fds.init(priors["edges"].shape[0] - 1, statics.hidden[-1])
    state = state.replace(hparams={**state.hparams, "fds": fds_state})

  def loss_fn(model, batch, hparams, rng):
    del rng
    h = _features(model, batch["x"])
    if with_fds:  # DIR's FDS: re-calibrate the features of each sample's bucket, then the head
      h = fds.calibrate(hparams["fds"], h, batch["bucket"])
      pred, logits = model.reg_head(h)[..., 0], None
    else:  # the model's forward pass, with the K-way head as `_cls_logits` builds it
      pred = model.reg_head(h)[..., 0]
      logits = _cls_logits(model, h, statics.fused_head)
    objective = functools.partial(
      registry.objective,
      pred=pred,
      logits=logits,
      batch=batch,
      priors=priors,
      hparams=hparams,
      settings=statics.settings,
      features=h if with_features else None,
    )
    return registry.switch(statics.methods, method, objective), {}

  train_step = step_lib.make_train_step(graphdef, tx, loss_fn)

  def make_batch(idx, valid, step_key):
    batch = {"x": train["x"][idx][:, None], "y": train["y"][idx], "weight": valid}
    if with_fds:
      batch["bucket"] = jnp.maximum(buckets[idx], 0)
    if statics.num_classes:
      batch["cls"] = train["cls"][idx]
      if statics.balanced:  # Eq. 13: a fresh keep draw every time a sample is seen
        u = jax.random.uniform(step_key, idx.shape)
        batch["cls_mask"] = u < train["keep"][idx]
    if two_views:  # ConR: the batch becomes two jittered views of its inputs, labels repeated
      noise = statics.view_jitter * jax.random.normal(
        jax.random.fold_in(step_key, 1), (2, *idx.shape)
      )
      batch = {
        "x": jnp.concatenate([batch["x"] + noise[0][:, None], batch["x"] + noise[1][:, None]]),
        "y": jnp.concatenate([batch["y"], batch["y"]]),
        "weight": jnp.concatenate([valid, valid]),
      }
    return batch

  state, epoch_losses = scan_loop.train_epochs(
    state,
    train_step,
    make_batch,
    train["n"],
    train["x"].shape[0],
    batch_size=statics.batch_size,
    epochs=statics.epochs,
    shuffle_key=shuffle_key,
    mask_key=mask_key,
    epoch_end=functools.partial(_fds_epoch_end, graphdef, train["x"], buckets)
    if with_fds
    else None,
    drop_last=statics.drop_last,
    num_steps=num_steps,
  )
  score = functools.partial(_mse, graphdef, statics.methods, state.params, method, priors)
  metrics = {"train_loss": epoch_losses, "val_mse": score(val), "test_mse": score(test)}
  return state.params, metrics


def _fds_epoch_end(graphdef, x, buckets, state: step_lib.TrainState) -> step_lib.TrainState:
  """FDS's once-per-epoch update from the features of every training sample (padding has
  bucket -1, which the per-bucket sums drop)."""
  features = nnx.merge(graphdef, state.params).features(x[:, None])
  stats = fds.update(state.hparams["fds"], features, buckets)
  return state.replace(hparams={**state.hparams, "fds": stats})


def _mse(graphdef, names, params, method, priors, split) -> jax.Array:
  """Test MSE of one model; ``method`` indexes ``names`` (it decides the prediction)."""
  pred = _predict(graphdef, names, params, method, priors, split["x"])
  weight = jnp.arange(split["x"].shape[0]) < split["n"]
  return losses.regression_loss(pred, split["y"], weight)


@functools.cache
def _chunk_program(statics: Statics, mesh: Mesh) -> Callable:
  """The jitted program that trains a whole chunk; cached per static configuration."""
  train_one = functools.partial(_train_one, statics)
  in_axes = (0,) * 11 + (None,)  # every input per model, but the chunk's step count
  return sharding.models_program(
    train_one, mesh, in_axes=in_axes, compiler_options=compiler_options(statics.num_classes)
  )


def compiler_options(num_classes: int) -> dict[str, object]:
  """XLA:CPU options of a group's program (K = ``num_classes``, 0 without a head; none off a
  CPU), measured at the paper's sizes on a 2-core CPU (`benchmarks/sweep1d.py`, 2026-12-03).

  - Every group: Eigen's matmuls single-threaded (``xla_cpu_multi_thread_eigen``): each core is
    its own JAX device already, and a device's matmuls spreading over the shared pool competed
    with the other device's (reg 10% faster, K = 1024 3%).
  - K < 64: no YNNPACK fusions: the trunk's and narrow heads' tiny batched matmuls ran faster
    without them (reg 106 s per 600 models without, 135 s with; K=16 202 vs 227 s), while
    K=256 took 578 vs 388 s and K=1024 1856 vs 1170 s.
  - K >= 64: 512-bit vectors (``xla_cpu_prefer_vector_width``; XLA defaults to 256 bits even
    where the cores have AVX-512, and uses what the cores have where they have less) for the
    softmax's exponentials and reductions over the wide logits: K = 256 and 1024 8-14% faster,
    K = 64 4%; the regression-only group 11% slower, K = 16 4%.
  """
  if jax.default_backend() != "cpu":
    return {}
  options: dict[str, object] = {"xla_cpu_multi_thread_eigen": False}
  if num_classes < 64:
    options["xla_cpu_experimental_ynn_fusion_type"] = ""
  else:
    options["xla_cpu_prefer_vector_width"] = 512
  return options


def _abstract_model(hidden: Sequence[int], num_classes: int) -> MLP:
  return nnx.eval_shape(lambda: MLP(1, tuple(hidden), num_classes, rngs=nnx.Rngs(0)))


@functools.cache
def _eval_program(
  hidden: tuple[int, ...], num_classes: int, names: tuple[str, ...], mesh: Mesh
) -> Callable:
  graphdef = nnx.graphdef(_abstract_model(hidden, num_classes))
  return sharding.models_program(functools.partial(_mse, graphdef, names), mesh)


def _predict(graphdef, names, params, method, priors, x) -> jax.Array:
  """One model's predictions at the inputs ``x`` [N] (the regression head, or the method's
  decoding of its K-way head)."""
  model = nnx.merge(graphdef, params)
  if model.cls_head is None:
    return model.predict(x[:, None])
  out, logits = model(x[:, None])
  return registry.switch(names, method, lambda m: registry.predict(m, out, logits, priors))


@functools.cache
def _predict_program(hidden: tuple[int, ...], num_classes: int, names: tuple[str, ...]):
  graphdef = nnx.graphdef(_abstract_model(hidden, num_classes))
  return jax.jit(jax.vmap(functools.partial(_predict, graphdef, names), in_axes=(0, 0, 0, None)))


def predict_group(
  group: str, runs: Sequence[Run], params: nnx.State, x: np.ndarray, cache: DatasetCache, config
) -> np.ndarray:
  """Predictions ``[len(runs), len(x)]`` of stored parameters of one group's runs."""
  names = group_methods(group, config)
  settings = registry.Settings.from_config(config.get("peers"))
  program = _predict_program(tuple(config.hidden), runs[0].num_classes, names)
  head = (method_indices(runs, names), run_priors(runs, cache, settings))
  return np.asarray(program(params, *head, jnp.asarray(x, jnp.float32)))


def param_template(hidden: Sequence[int], num_classes: int) -> nnx.State:
  """Abstract parameters (shapes only) of one model."""
  return nnx.state(_abstract_model(hidden, num_classes))


# ---------------------------------------------------------------------------------------------
# Chunk assembly on the host.


def _pad(a: np.ndarray, n: int) -> np.ndarray:
  return np.pad(a, (0, n - len(a)))


def _split_arrays(splits: Sequence[synthetic1d.Split], n_pad: int) -> dict[str, np.ndarray]:
  return {
    "x": np.stack([_pad(s.x, n_pad) for s in splits]),
    "y": np.stack([_pad(s.y, n_pad) for s in splits]),
    "n": np.array([len(s) for s in splits], np.int32),
  }


def run_priors(runs: Sequence[Run], cache: DatasetCache, settings: registry.Settings):
  """The runs' `registry.fit_priors` arrays, stacked along a leading model axis."""
  fitted: dict[tuple, dict] = {}
  for r in runs:
    key = (r.dataset, r.method, r.num_classes)
    if key not in fitted:
      fitted[key] = registry.fit_priors(r.method, cache.splits(r)[0].y, settings, r.num_classes)
  return pytrees.stack([fitted[(r.dataset, r.method, r.num_classes)] for r in runs])


def init_streams(runs: Sequence[Run], paired: bool) -> np.ndarray:
  """Which initialisation each run starts from (0 or 1), per dataset and seed.

  Unpaired (the authors' code): one seed, then the reg model and the other model are built one
  after the other, so every non-``reg`` model starts from other weights than ``reg``, and from the
  same trunk for every K (each K is its own process with the same seed there). Paired: every
  model of a dataset starts from the reg model's trunk and regression head (its K-way head is
  created last), which makes the reg / reg+cls comparison a paired one.
  """
  return np.array([0 if paired or r.method == "reg" else 1 for r in runs], np.int32)


def method_indices(runs: Sequence[Run], names: Sequence[str]) -> np.ndarray:
  return np.array([names.index(r.method) for r in runs], np.int32)


def length_multiple(config) -> int:
  """Every chunk's split lengths are padded to this (whole batches, >= 1024) times a power of
  two (`padded_lengths`)."""
  return config.batch_size * -(-1024 // config.batch_size)


def _bucket(n: int, multiple: int) -> int:
  """``multiple`` x the smallest power of two with at least ``n`` samples."""
  units = -(-n // multiple)
  return multiple * (1 << (units - 1).bit_length())


def padded_lengths(runs: Sequence[Run], cache: DatasetCache, multiple: int) -> tuple[int, int]:
  """``(train, eval)``: the padded split lengths of a chunk of ``runs``, each ``multiple`` x a
  power of two; with the group's static shape they decide which compiled program the chunk
  runs. At the paper's sizes (18.5k-25k training samples) every chunk pads to 32768: one
  program per group (each took ~2 s to compile; the padding costs only the shuffle's sort, the
  final scoring and FDS's epoch-end pass, the steps are the chunk's own, `chunk_steps`). A
  shuffle is the same at either length (`scan_loop.epoch_permutation`) when ``multiple`` is a
  power of two (1024 at batch 256): a power-of-two length needs no more index bits then."""
  splits = [cache.splits(r) for r in runs]
  n_train = _bucket(max(len(s[0]) for s in splits), multiple)
  return n_train, _bucket(max(max(len(s[1]), len(s[2])) for s in splits), multiple)


def chunk_steps(runs: Sequence[Run], cache: DatasetCache, batch_size: int) -> int:
  """Batches per epoch of a chunk: enough for its longest training set."""
  return -(-max(len(cache.splits(r)[0]) for r in runs) // batch_size)


def chunk_inputs(
  runs: Sequence[Run],
  cache: DatasetCache,
  scale: float,
  pad_multiple: int,
  names: Sequence[str] = ("reg", "regcls"),
  settings: registry.Settings | None = None,
  paired: bool = False,
):
  """Host arrays for a chunk of runs of one group, padded to a common length."""
  splits = [cache.splits(r) for r in runs]
  n_train, _ = padded_lengths(runs, cache, pad_multiple)
  train = _split_arrays([s[0] for s in splits], n_train)
  cls = np.zeros((len(runs), n_train), np.int32)
  keep = np.ones((len(runs), n_train), np.float32)
  for i, (run, (tr, _, _)) in enumerate(zip(runs, splits)):
    if run.method in registry.CLASSIFIES:
      edges, keep_probs = binning.make_classes(tr.y, run.num_classes, run.balanced)
      c = binning.assign_classes(tr.y, edges)
      cls[i, : len(c)] = c
      keep[i, : len(c)] = keep_probs[c]
  train.update(cls=cls, keep=keep)
  val, test = eval_inputs(runs, cache, pad_multiple)
  scalars = dict(
    seed=np.array([r.seed for r in runs], np.int32),
    ds_id=np.array([dataset_id(r.scenario, r.sampling, r.function) for r in runs], np.int32),
    init_stream=init_streams(runs, paired),
    lr=np.array([r.lr for r in runs], np.float32),
    lam=np.array([r.lam for r in runs], np.float32),
    scale=np.full(len(runs), scale, np.float32),
    method=method_indices(runs, names),
  )
  priors = run_priors(runs, cache, settings or registry.Settings())
  return scalars, priors, train, val, test


def eval_inputs(runs: Sequence[Run], cache: DatasetCache, pad_multiple: int):
  """Host arrays of the runs' val and test splits, padded to a common length."""
  splits = [cache.splits(r) for r in runs]
  _, n_eval = padded_lengths(runs, cache, pad_multiple)
  return tuple(_split_arrays([s[i] for s in splits], n_eval) for i in (1, 2))


def statics_for(chunk: Chunk, config) -> Statics:
  run = chunk.runs[0]
  methods = group_methods(chunk.group, config)
  return Statics(
    num_classes=run.num_classes,
    balanced=run.balanced,
    hidden=tuple(config.hidden),
    epochs=int(config.epochs),
    batch_size=int(config.batch_size),
    weight_decay=float(config.weight_decay),
    drop_last=bool(config.get("drop_last", True)),
    methods=methods,
    settings=registry.Settings.from_config(config.get("peers")),
    view_jitter=float(config.get("view_jitter", 0.002)),
    fused_head=run.num_classes >= FUSED_HEAD_MIN_CLASSES and set(methods) <= FUSED_HEAD_METHODS,
  )


def chunk_call(chunk: Chunk, cache: DatasetCache, config, mesh: Mesh) -> tuple[Callable, tuple]:
  """``(program, args)``: the chunk's compiled program and its host inputs."""
  statics = statics_for(chunk, config)
  scalars, priors, train, val, test = chunk_inputs(
    chunk.runs,
    cache,
    config.scale,
    length_multiple(config),
    statics.methods,
    statics.settings,
    paired=bool(config.get("pair_init", False)),
  )
  keys = ("seed", "ds_id", "init_stream", "lr", "lam", "scale", "method")
  num_steps = np.int32(chunk_steps(chunk.runs, cache, statics.batch_size))
  args = (*(scalars[k] for k in keys), priors, train, val, test, num_steps)
  return _chunk_program(statics, mesh), args


def train_chunk(chunk: Chunk, cache: DatasetCache, config, mesh: Mesh):
  """Trains one chunk. Returns (params of the real runs as numpy, metrics dict of numpy)."""
  program, args = chunk_call(chunk, cache, config, mesh)
  params, metrics = jax.device_get(program(*args))
  keep = np.arange(chunk.num_real)
  return pytrees.take(params, keep), pytrees.take(metrics, keep)


def _cost(compiled) -> np.ndarray:
  """``[flops, bytes accessed]`` of one device's program (SPMD-partitioned)."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list | tuple) else cost
  return np.array([cost.get("flops", 0.0), cost.get("bytes accessed", 0.0)], np.float64)


def chunk_flops(chunk: Chunk, cache: DatasetCache, config, mesh: Mesh) -> dict[str, float]:
  """The floating-point operations a chunk's program executes, from XLA's cost analysis.

  XLA counts a loop's body once, whatever its trip count; so the chunk's cost is one training
  step plus the final scoring of val and test. The scoring is costed alone (the same forward
  pass in the evaluation program) and subtracted; the chunk executes ``epochs x steps`` steps
  (every model runs the chunk's step count, `chunk_steps`; steps past its own data are computed
  and discarded, `scan_loop.train_epochs`).

  Returns:
    ``{"step", "eval", "steps", "total"}`` FLOPs, each over all devices, and
    ``{"step_bytes", "eval_bytes"}``, the bytes XLA counts as accessed (of this backend's
    fusion: an accelerator's fuses differently).
  """
  program, args = chunk_call(chunk, cache, config, mesh)
  n_dev = mesh.devices.size
  chunk_cost = _cost(program.lower(*args).compile()) * n_dev
  params = jax.eval_shape(program, *args)[0]
  names = statics_for(chunk, config).methods
  settings = registry.Settings.from_config(config.get("peers"))
  evaluate = _eval_program(tuple(config.hidden), chunk.runs[0].num_classes, names, mesh)
  head = (method_indices(chunk.runs, names), run_priors(chunk.runs, cache, settings))
  _, val, test, num_steps = args[-4:]
  eval_cost = sum(_cost(evaluate.lower(params, *head, s).compile()) for s in (val, test)) * n_dev
  steps = config.epochs * int(num_steps)
  step_cost = chunk_cost - eval_cost
  return {
    "step": step_cost[0],
    "eval": eval_cost[0],
    "steps": steps,
    "total": step_cost[0] * steps + eval_cost[0],
    "step_bytes": step_cost[1],
    "eval_bytes": eval_cost[1],
  }


def evaluate_group(
  group: str, runs: Sequence[Run], params: nnx.State, cache: DatasetCache, config, mesh: Mesh
) -> tuple[np.ndarray, np.ndarray]:
  """Val and test MSE of stored parameters of one group (no training)."""
  n_dev = mesh.devices.size
  names = group_methods(group, config)
  settings = registry.Settings.from_config(config.get("peers"))
  program = _eval_program(tuple(config.hidden), runs[0].num_classes, names, mesh)
  val_out, test_out = [], []
  size = round_up(min(len(runs), 256), n_dev)
  for start in range(0, len(runs), size):
    n = min(size, len(runs) - start)
    idx = np.arange(start, start + round_up(n, n_dev)).clip(max=start + n - 1)
    p = pytrees.take(params, idx)
    chunk_runs = [runs[i] for i in idx]
    val, test = eval_inputs(chunk_runs, cache, 1024)
    head = (method_indices(chunk_runs, names), run_priors(chunk_runs, cache, settings))
    val_out.append(np.asarray(program(p, *head, val))[:n])
    test_out.append(np.asarray(program(p, *head, test))[:n])
  return np.concatenate(val_out), np.concatenate(test_out)
