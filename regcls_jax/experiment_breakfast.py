"""Driver of the Breakfast progress experiment (paper Sec. 3.3, Tab. 5).

``run(config, workdir)``: reads the prepared dataset's frame features once (cached next to the
shards), builds one model per (split, activity, seed) for each method, trains each method's
models together in one compiled program (`progress_program`), and writes ``results.csv``
(split, activity, method, target, seed, rmse, ...), ``table5.md`` and an Orbax checkpoint
(saved after each method; a rerun with the same workdir resumes). The "random" rows are the
untrained models' RMSE from the same program. ``evaluate(config, workdir)`` restores the
checkpoint and recomputes every RMSE.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import time

import grain
import jax
import numpy as np
from absl import logging

from regcls_jax import binning, checkpoint, progress_program, report, sweep
from regcls_jax import methods as methods_lib
from regcls_jax.data import breakfast, common, pipeline
from regcls_jax.experiment1d import check_workdir, prepare_workdir
from regcls_jax.grid1d import format_seconds, round_up

# Method -> (methods.py objective, balanced classes). The baselines train the same MLP with
# their own loss (methods.py; histogram methods on a K-way head, decoded at test time).
METHODS = {
  "reg": ("reg", False),
  "regcls": ("regcls", False),
  "regcls_bal": ("regcls", True),
  **{
    m: (m, False)
    for m in methods_lib.METHODS
    if m not in ("reg", "regcls", *methods_lib.FEATURE_METHODS)
  },
}
SPLITS = tuple(breakfast.GROUPS)
COLUMNS = (
  "split",
  "activity",
  "method",
  "target",
  "seed",
  "rmse",
  "train_loss",
  "n_train",
  "n_test",
)
# Paper Tab. 5 (RMSE, mean over the 10 activities), for the table's comparison rows.
PAPER_TABLE5 = {
  "percent": {
    "random": (58.50, 58.37, 58.39, 58.38),
    "reg": (32.57, 33.30, 32.52, 33.08),
    "regcls": (28.71, 28.84, 28.46, 28.44),
  },
  "frames": {
    "random": (1394.48, 1511.04, 1450.26, 1420.21),
    "reg": (860.17, 891.39, 862.65, 845.48),
    "regcls": (837.59, 870.55, 845.65, 809.76),
    "regcls_bal": (837.61, 870.54, 845.65, 809.76),
  },
}
LABELS = {
  "random": "random (untrained)",
  "reg": "reg",
  "regcls": "reg+cls",
  "regcls_bal": "reg+cls bal.",
  **{m: m for m in METHODS if m not in ("reg", "regcls", "regcls_bal")},
}


# ---------------------------------------------------------------------------------------------
# Data


@dataclasses.dataclass
class Frames:
  """Every frame of the dataset: features ``[N, 64]`` and, per frame, its group (test split),
  activity index and both targets."""

  features: np.ndarray
  group: np.ndarray
  activity: np.ndarray
  percent: np.ndarray
  frames: np.ndarray

  def targets(self, target: str) -> np.ndarray:
    return {"percent": self.percent, "frames": self.frames}[target]


class _FeaturesAndPlace(grain.transforms.Map):
  """Features with the frame's video and index: workers batch their own records, so the
  record order is restored from these."""

  def map(self, element):
    return {k: element[k] for k in ("features", "video", "frame")}


def _read_group(builder, group: str, workers: int) -> np.ndarray:
  """Features of every frame of one group, in record order; cached as .npy next to the shards."""
  path = os.path.join(builder.data_dir, f"features-{group}.npy")
  n = builder.info.splits[group].num_examples
  if os.path.exists(path):
    cached = np.load(path, mmap_mode="r")
    if cached.shape == (n, breakfast.FEATURE_DIM):
      return np.asarray(cached)
  videos = builder.info.metadata["videos"][group]
  lengths = [length for _, length, _ in videos]
  start = dict(zip((name.encode() for name, _, _ in videos), np.cumsum([0, *lengths[:-1]])))
  loader = grain.DataLoader(
    data_source=builder.as_data_source(split=group),
    sampler=grain.samplers.IndexSampler(n, shuffle=False, num_epochs=1),
    operations=[_FeaturesAndPlace(), grain.transforms.Batch(4096)],
    worker_count=workers,
    shard_options=grain.sharding.NoSharding(),
  )
  out = np.zeros((n, breakfast.FEATURE_DIM), np.float32)
  for batch in loader:
    rows = np.array([start[v] for v in batch["video"]]) + batch["frame"]
    out[rows] = batch["features"]
  tmp = path + ".tmp.npy"
  np.save(tmp, out)
  os.replace(tmp, path)
  return out


def load_frames(builder, workers: int = 0) -> Frames:
  """All four groups' frames; per-frame labels from the builder's video metadata."""
  videos = builder.info.metadata["videos"]
  parts = {k: [] for k in ("features", "group", "activity", "percent", "frames")}
  for gi, group in enumerate(SPLITS):
    parts["features"].append(_read_group(builder, group, workers))
    for _, n, activity in videos[group]:
      parts["group"].append(np.full(n, gi, np.int8))
      parts["activity"].append(np.full(n, breakfast.ACTIVITIES.index(activity), np.int8))
      parts["percent"].append(breakfast.progress_targets(n, "percent"))
      parts["frames"].append(breakfast.progress_targets(n, "frames"))
  return Frames(**{k: np.concatenate(v) for k, v in parts.items()})


# ---------------------------------------------------------------------------------------------
# Models


@dataclasses.dataclass(frozen=True)
class Model:
  split: str
  activity: str
  seed: int

  @property
  def model_id(self) -> int:
    """Stable per (split, activity): reg and reg+cls of one model start from one trunk."""
    return SPLITS.index(self.split) * len(breakfast.ACTIVITIES) + breakfast.ACTIVITIES.index(
      self.activity
    )


def plan_models(config) -> list[Model]:
  for s in config.splits:
    if s not in SPLITS:
      raise ValueError(f"config.splits: unknown split {s!r}; expected some of {SPLITS}")
  return [
    Model(s, a, seed) for s in config.splits for a in breakfast.ACTIVITIES for seed in config.seeds
  ]


def model_frames(frames: Frames, model: Model) -> tuple[np.ndarray, np.ndarray]:
  """Indices of a model's training frames (its activity, other groups) and test frames."""
  act = frames.activity == breakfast.ACTIVITIES.index(model.activity)
  test_group = frames.group == SPLITS.index(model.split)
  train, test = np.flatnonzero(act & ~test_group), np.flatnonzero(act & test_group)
  for name, idx in (("training", train), ("test", test)):
    if idx.size == 0:
      raise common.DataError(
        f"breakfast split {model.split}: activity {model.activity!r} has no {name} videos"
      )
  return train, test


def _method_inputs(config, frames: Frames, models: list[Model], method: str, n_dev: int):
  """Host arrays of one method's program, models padded to a multiple of the device count."""
  targets = frames.targets(config.target)
  objective, balanced = METHODS[method]
  with_cls = objective == "regcls"
  settings = methods_lib.Settings.from_config(config.get("peers"))
  k = methods_lib.head_classes(objective, config.num_classes)
  priors = []
  pairs = [model_frames(frames, m) for m in models]
  n_pad = round_up(max(len(tr) for tr, _ in pairs), config.batch_size)
  m_pad = round_up(max(len(te) for _, te in pairs), 1024)
  order = padded_order(len(models), n_dev)
  count = len(order)
  train = {k: np.zeros((count, n_pad), t) for k, t in (("idx", np.int32), ("cls", np.int32))}
  train["keep"] = np.ones((count, n_pad), np.float32)
  train["n"] = np.zeros(count, np.int32)
  test = {"idx": np.zeros((count, m_pad), np.int32), "m": np.zeros(count, np.int32)}
  for row, i in enumerate(order):
    tr, te = pairs[i]
    train["idx"][row, : len(tr)], train["n"][row] = tr, len(tr)
    test["idx"][row, : len(te)], test["m"][row] = te, len(te)
    priors.append(methods_lib.fit_priors(objective, targets[tr], settings, k))
    if with_cls:
      edges, keep = binning.make_classes(targets[tr], config.num_classes, balanced)
      cls = binning.assign_classes(targets[tr], edges)
      train["cls"][row, : len(tr)], train["keep"][row, : len(tr)] = cls, keep[cls]
  lam = config.lam[config.target] if with_cls else 0.0
  model = {
    "seed": np.array([models[i].seed for i in order], np.int32),
    "model_id": np.array([models[i].model_id for i in order], np.int32),
    "lr": np.full(count, config.lr, np.float32),
    "lam": np.full(count, lam, np.float32),
    "scale": np.full(count, config.scale, np.float32),
    "priors": jax.tree.map(lambda *a: np.stack(a), *priors),
  }
  return model, train, test


def padded_order(num_models: int, n_dev: int) -> np.ndarray:
  """Model positions padded to a multiple of the device count by repeating the last model."""
  return np.minimum(np.arange(round_up(num_models, n_dev)), num_models - 1)


def _take(tree, index: np.ndarray):
  return jax.tree.map(lambda a: a[index], tree)


def statics_for(config, method: str) -> progress_program.Statics:
  objective, balanced = METHODS[method]
  return progress_program.Statics(
    num_classes=methods_lib.head_classes(objective, int(config.num_classes)),
    balanced=balanced,
    hidden=tuple(config.hidden),
    epochs=int(config.epochs),
    batch_size=int(config.batch_size),
    weight_decay=float(config.weight_decay),
    lr_decay_epochs=tuple(config.lr_decay_epochs),
    lr_decay=float(config.lr_decay),
    objective=objective,
    settings=methods_lib.Settings.from_config(config.get("peers")),
  )


# ---------------------------------------------------------------------------------------------
# Reports


def _rows(models, method, target, rmse, train_loss, pairs) -> list[dict]:
  return [
    dict(
      split=m.split,
      activity=m.activity,
      method=method,
      target=target,
      seed=m.seed,
      rmse=float(rmse[i]),
      train_loss=float(train_loss[i]) if train_loss is not None else float("nan"),
      n_train=len(pairs[i][0]),
      n_test=len(pairs[i][1]),
    )
    for i, m in enumerate(models)
  ]


def table5_markdown(rows: list[dict], target: str) -> str:
  """Paper Tab. 5's layout: RMSE mean (std over activities, ddof=0) per split, per method."""
  splits = [s for s in SPLITS if any(r["split"] == s for r in rows)]
  unit = "%" if target == "percent" else "frames"
  head = "| method | " + " | ".join(f"{s.upper()} {unit}" for s in splits) + " |"
  lines = [f"RMSE on the test participants ({target}), mean (std) over the 10 activities.", ""]
  lines += [head, "|---|" + "---|" * len(splits)]
  for method in ("random", *METHODS):
    cells = []
    for s in splits:
      v = np.array([r["rmse"] for r in rows if r["method"] == method and r["split"] == s])
      cells.append(f"{v.mean():.2f} ({v.std():.2f})" if v.size else "-")
    if any(c != "-" for c in cells):
      lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
  paper = PAPER_TABLE5[target]
  lines += ["", "Paper Tab. 5 (same layout, means only):", "", head, "|---|" + "---|" * len(splits)]
  for method, values in paper.items():
    cells = [f"{values[SPLITS.index(s)]:.2f}" for s in splits]
    lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_reports(rows: list[dict], config, workdir: str, suffix: str = "") -> None:
  report.write_csv(rows, os.path.join(workdir, f"results{suffix}.csv"), COLUMNS)
  with open(os.path.join(workdir, f"table5{suffix}.md"), "w") as f:
    f.write(table5_markdown(rows, config.target))
  logging.info("wrote %s", os.path.join(workdir, f"results{suffix}.csv / table5{suffix}.md"))


# ---------------------------------------------------------------------------------------------
# Entry points

# What defines the models; ``methods`` is not among them, so a rerun with more methods keeps the
# finished ones and trains only the new.
_PLAN_FIELDS = (
  "splits", "seeds", "target", "num_classes", "hidden", "epochs", "batch_size",
  "lr", "lam", "scale", "weight_decay", "lr_decay_epochs", "lr_decay", "peers",
)  # fmt: skip


def _fingerprint(config) -> str:
  d = config.to_dict()
  blob = json.dumps({k: d.get(k) for k in _PLAN_FIELDS}, sort_keys=True, default=list)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_methods(config) -> None:
  for m in config.methods:
    if m not in METHODS:
      raise ValueError(f"config.methods: unknown method {m!r}; expected some of {tuple(METHODS)}")
  methods_lib.Settings.from_config(config.get("peers"))


def _data(config):
  builder = pipeline.prepare(config.data)
  t = time.perf_counter()
  frames = load_frames(builder, pipeline.worker_count(config.data))
  logging.info("breakfast: %d frames loaded in %.1fs", len(frames.group), time.perf_counter() - t)
  return frames


def run(config, workdir: str) -> list[dict]:
  """Trains every method's models, writes results.csv, table5.md and the checkpoint."""
  _check_methods(config)
  prepare_workdir(workdir)
  models = plan_models(config)
  frames = _data(config)
  pairs = [model_frames(frames, m) for m in models]  # checks every split/activity first
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  mesh = sweep.make_mesh()
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  fingerprint = _fingerprint(config)
  rows, params, done = [], {}, []
  if ckpt.latest_step() is not None:
    params, meta = ckpt.restore()
    if meta.get("fingerprint") != fingerprint:
      raise ValueError(
        f"{ckpt.directory} holds a checkpoint of a different run; use a new --workdir"
      )
    rows, done = list(meta["rows"]), list(meta["methods_done"])
    logging.info("resuming: %s already trained", ", ".join(done))
  features, start = jax.device_put(frames.features), time.perf_counter()
  targets = jax.device_put(frames.targets(config.target))
  for k, method in enumerate(config.methods):
    if method in done:
      continue
    t = time.perf_counter()
    model_in, train_in, test_in = _method_inputs(config, frames, models, method, mesh.devices.size)
    out_params, metrics = progress_program.train(
      statics_for(config, method), mesh, features, targets, model_in, train_in, test_in
    )
    out_params, metrics = jax.device_get((out_params, metrics))
    real = len(models)
    if not rows:  # the untrained models: the "random" baseline, from the first method's run
      rows += _rows(models, "random", config.target, metrics["rmse_init"], None, pairs)
    loss = metrics["train_loss"][:real, -1]
    rows += _rows(models, method, config.target, metrics["rmse"][:real], loss, pairs)
    params[method] = checkpoint.flatten_state(_take(out_params, np.arange(real)))
    done.append(method)
    meta = dict(fingerprint=fingerprint, rows=rows, methods_done=done)
    ckpt.save(k + 1, params, meta)
    elapsed = time.perf_counter() - start
    logging.info(
      "%s: %d models x %d epochs in %s | %d/%d methods, elapsed %s",
      method, real, config.epochs, format_seconds(time.perf_counter() - t), len(done),
      len(config.methods), format_seconds(elapsed),
    )  # fmt: skip
  ckpt.close()
  write_reports(rows, config, workdir)
  return rows


def evaluate(config, workdir: str) -> list[dict]:
  """Recomputes every RMSE from the checkpoint; writes results_eval.csv and table5_eval.md."""
  check_workdir(workdir)
  params, meta = checkpoint.restore_for_eval(os.path.join(workdir, "checkpoints"))
  models = plan_models(config)
  frames = _data(config)
  pairs = [model_frames(frames, m) for m in models]
  mesh = sweep.make_mesh()
  features, targets = jax.device_put(frames.features), jax.device_put(frames.targets(config.target))
  rows = []
  for method in meta["methods_done"]:
    statics = statics_for(config, method)
    model_in, _, test_in = _method_inputs(config, frames, models, method, mesh.devices.size)
    evaluate_params = functools.partial(
      progress_program.evaluate,
      statics,
      mesh,
      features,
      targets,
      priors=model_in["priors"],
      test_split=test_in,
    )
    order = padded_order(len(models), mesh.devices.size)
    stacked = checkpoint.unflatten_state(progress_program.param_template(statics), params[method])
    rmse = np.asarray(evaluate_params(_take(stacked, order)))
    if not rows:  # "random": the untrained models, rebuilt from their seeds
      seeds = np.array([m.seed for m in models])[order]
      ids = np.array([m.model_id for m in models])[order]
      init = jax.vmap(functools.partial(progress_program.init_params, statics))(seeds, ids)
      rows += _rows(models, "random", config.target, np.asarray(evaluate_params(init)), None, pairs)
    trained = {
      (r["split"], r["activity"], r["seed"]): r for r in meta["rows"] if r["method"] == method
    }
    loss = [trained[(m.split, m.activity, m.seed)]["train_loss"] for m in models]
    rows += _rows(models, method, config.target, rmse, loss, pairs)
  write_reports(rows, config, workdir, suffix="_eval")
  before = {(r["method"], r["split"], r["activity"], r["seed"]): r["rmse"] for r in meta["rows"]}
  diff = max(
    abs(before[(r["method"], r["split"], r["activity"], r["seed"])] - r["rmse"]) for r in rows
  )
  logging.info("eval: %d rows; max |RMSE - trained run's| = %.3g", len(rows), diff)
  return rows
