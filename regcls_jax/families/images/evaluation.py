"""Evaluation of the age and depth models: predictions over a split, DIR metrics, eval mode.

`predict_split` runs the regression head over a split, sharded like training (depth
predictions resized to the label's resolution as the reference does); `split_metrics` scores
them with DIR's protocol (`method.metrics`: shot groups for age, per-bin depth metrics).
``evaluate(config, workdir)`` restores ``checkpoints/best`` and writes ``eval_<split>.json``,
``eval_<split>.md`` and ``predictions_<split>.npz`` for val and test.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from regcls_jax.data import nyud2, pipeline
from regcls_jax.families.images import setup as setup_lib
from regcls_jax.method import metrics, registry
from regcls_jax.models.depth import resize_align_corners
from regcls_jax.train_lib import checkpoint, sharding
from regcls_jax.train_lib import step as step_lib
from regcls_jax.train_lib import workdir as workdir_lib


def predict_split(
  config, s: setup_lib.Setup, state: step_lib.TrainState, split: str
) -> dict[str, np.ndarray]:
  """Predictions over one split: ``pred``, ``label`` (+ ``mask`` for depth), paired.

  Batches are sharded over the mesh like training batches; with several processes each reads
  its shard and the results are gathered, so every process returns the whole split. Depth
  predictions are resized (bilinear, align_corners) from 114 x 152 to the 228 x 304 label, as
  the reference does before its metrics.
  """
  n_local = len(s.mesh.local_devices)
  graphdef = s.eval_graphdef
  data = NamedSharding(s.mesh, P("data"))
  replicated = NamedSharding(s.mesh, P())

  def forward(params, model_state, images):
    model = nnx.merge(graphdef, params, model_state)
    if config.method in registry.HISTOGRAM:  # the head's expected bin centre (age only)
      return registry.predict(config.method, None, model(images)[1], s.priors)
    out = model.predict(images)
    if out.ndim == 3:
      out = resize_align_corners(out[..., None], (2 * out.shape[1], 2 * out.shape[2]))[..., 0]
    return out

  forward = jax.jit(forward, in_shardings=(replicated, replicated, data), out_shardings=replicated)
  loader = pipeline.make_loader(s.builder, config, split, train=False)
  parts = {"pred": [], "label": [], "mask": []}
  for batch in loader:
    n = len(batch["label"])
    pad = -n % n_local  # every process pads its own batch to its devices
    images = np.concatenate([batch["image"], np.repeat(batch["image"][-1:], pad, 0)])
    images = jax.make_array_from_process_local_data(data, images)
    out = sharding.host_copy(forward(state.params, state.model_state, images))
    # Every process's rows, in process order: keep each process's first n rows.
    per_process = out.reshape(jax.process_count(), -1, *out.shape[1:])
    parts["pred"].append(per_process[jax.process_index()][:n])
    parts["label"].append(batch["label"])
    if "mask" in batch:
      parts["mask"].append(batch["mask"])
  return sharding.gather_processes({k: np.concatenate(v) for k, v in parts.items() if v})


def split_metrics(config, s: setup_lib.Setup, predictions: dict) -> dict:
  """DIR's metrics of a split's predictions; an image folder's in the target's units, shot
  groups by the training count of the label's bin (`metrics.binned_shot_groups`)."""
  if config.experiment == "image_folder":
    scale = pipeline.target_scale(s.builder, config.data)
    train = scale.invert(pipeline.targets(s.builder, config.data, "train"))
    label = scale.invert(predictions["label"])
    groups, _, _ = metrics.binned_shot_groups(
      label, train, config.shot_bins, config.many_shot, config.few_shot
    )
    return metrics.grouped_errors(scale.invert(predictions["pred"]), label, groups)
  if config.experiment == "imdbwiki":
    train_labels = pipeline.targets(s.builder, config.data, "train")
    return metrics.age_metrics(predictions["pred"], predictions["label"], train_labels)
  m = metrics.DepthMetrics()
  m.update(predictions["pred"], predictions["label"], predictions.get("mask"))
  return m.result()


def score(config, result: dict) -> float:
  """The validation number the best checkpoint minimises (age: MAE, depth: RMSE)."""
  group, key = setup_lib.task(config).selection
  return float(result[group][key])


def evaluate(config, workdir: str) -> dict:
  """Restores the best checkpoint and writes eval_<split>.{json,md}, predictions_<split>.npz."""
  workdir_lib.check_workdir(workdir)
  params, meta = checkpoint.restore_for_eval(os.path.join(workdir, "checkpoints", "best"))
  s = setup_lib.setup(config)
  state = setup_lib.state_from_checkpoint(params, s)
  out = {}
  for split in ("val", "test"):
    pred = predict_split(config, s, state, split)
    result = split_metrics(config, s, pred)
    out[split] = result
    logging.info("%s: %s", split, json.dumps(result["all"]))
    if jax.process_index() != 0:  # every process computed the metrics; process 0 writes
      continue
    with open(os.path.join(workdir, f"eval_{split}.json"), "w") as f:
      json.dump({"step": meta["step"], "metrics": result}, f, indent=2)
    keys = {"imdbwiki": ("mae", "mse", "gm"), "image_folder": ("rmse", "mae")}
    keys = keys.get(config.experiment, metrics_keys())
    with open(os.path.join(workdir, f"eval_{split}.md"), "w") as f:
      f.write(f"{config.experiment} {split}, best checkpoint (step {meta['step']})\n\n")
      f.write(metrics.markdown_table(result, keys))
    if "mask" in pred:  # depth: every counted pixel
      keep = pred["mask"] & (pred["label"] > 0)
      np.savez(os.path.join(workdir, f"predictions_{split}.npz"), pred=pred["pred"][keep],
               label=pred["label"][keep], bin=nyud2.depth_bins(pred["label"][keep]))  # fmt: skip
    else:  # in the target's units (an image folder's models predict standardised targets)
      scale = pipeline.target_scale(s.builder, config.data)
      np.savez(os.path.join(workdir, f"predictions_{split}.npz"), pred=scale.invert(pred["pred"]),
               label=scale.invert(pred["label"]))  # fmt: skip
  return out


def metrics_keys() -> tuple[str, ...]:
  return ("rmse", "mse", "mae", "absrel", "log10", "delta1", "delta2", "delta3")
