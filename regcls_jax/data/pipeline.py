"""Grain input pipelines for the real datasets, from a config's ``data`` section to device batches.

::

  builder = pipeline.prepare(config.data)             # TFDS ArrayRecord shards, built once
  classes = pipeline.fit_classes(builder, config)     # Eq. 12 / 13 on the training targets
  loader = pipeline.make_loader(builder, config, "train", classes)
  for batch in sharding.device_batches(iter(loader), mesh): ...   # regcls_jax.train_lib

Train loaders shard by JAX process, shuffle (or re-sample) with the config's seed, augment with
`RandomMap` transforms, add class labels and keep masks, batch with ``drop_remainder`` and run in
``worker_count`` processes. Eval loaders read every record of the split once, in order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import grain
import jax
import ml_collections
import numpy as np
from absl import flags

from regcls_jax.data import (
  breakfast,
  common,
  fixtures,
  image_folder,
  imdb_wiki,
  nyud2,
  samplers,
  tabular,
  transforms,
)
from regcls_jax.method import binning


@dataclasses.dataclass(frozen=True)
class Dataset:
  """How one dataset plugs into the pipeline: its builder for a config's ``data`` section, its
  loader module (``source_files(data_dir)``), its transforms for ``(data, builder)``."""

  builder: Callable[[ml_collections.ConfigDict], type]
  module: object
  train_transform: Callable[..., grain.transforms.Transformation]
  eval_transform: Callable[..., grain.transforms.Transformation]
  class_source: str  # element key the classes are computed from after the transform


def _folder_transform(kind, train: bool):
  """An image folder's crop-and-flip / eval transform with its standardised targets."""

  def make(data, builder):
    scale = target_scale(builder, data)
    fields = dict(label_key="target", shift=float(scale.mean), scale=float(scale.std))
    if train:  # DIR's 16-pixel padding of 224 images, scaled to the stored size
      fields |= dict(views=data.get("views", 1), pad=round(16 * data.image_size / 224))
    return kind(**fields)

  return make


DATASETS = {
  "imdb_wiki": Dataset(
    lambda data: imdb_wiki.ImdbWikiDir,
    imdb_wiki,
    lambda data, builder: transforms.ImdbWikiTrain(data.get("views", 1)),
    lambda data, builder: transforms.ImdbWikiEval(),
    "label",
  ),
  "nyud2": Dataset(
    lambda data: nyud2.Nyud2Dir,
    nyud2,
    lambda data, builder: transforms.Nyud2Train(),
    lambda data, builder: transforms.Nyud2Eval(),
    "label_full",
  ),
  "breakfast": Dataset(
    lambda data: breakfast.Breakfast,
    breakfast,
    lambda data, builder: transforms.BreakfastFrame(data.target),
    lambda data, builder: transforms.BreakfastFrame(data.target),
    "label",
  ),
  "image_folder": Dataset(
    lambda data: image_folder.builder_for(data.image_size),
    image_folder,
    _folder_transform(transforms.ImdbWikiTrain, train=True),
    _folder_transform(transforms.ImdbWikiEval, train=False),
    "label",
  ),
}


def _dataset(data: ml_collections.ConfigDict) -> Dataset:
  if data.name not in DATASETS:
    raise ValueError(
      f"config.data.name: unknown dataset {data.name!r}; expected one of {', '.join(DATASETS)}"
    )
  return DATASETS[data.name]


def data_dir(data: ml_collections.ConfigDict) -> str:
  """``data.data_dir``; if empty and ``data.fixture``, the fixture dir (written when missing)."""
  if data.data_dir or not data.fixture:
    return data.data_dir
  return fixtures.cached(data.name)


def prepare(data: ml_collections.ConfigDict):
  """The prepared TFDS builder of ``data.name`` read from ``data_dir(data)``.

  With several JAX processes, process 0 writes the fixture (if any) and prepares the shards
  first while the others wait at a barrier, then they open what it wrote: on a shared
  filesystem two processes never build the same directory (on host-local disks each host's
  process builds its own copy after the barrier).
  """
  spec = _dataset(data)

  def build():
    path = data_dir(data)
    files = spec.module.source_files(path)
    return common.prepare(spec.builder(data), path, data.tfds_dir, files)

  if jax.process_count() == 1:
    return build()
  from jax.experimental import multihost_utils

  builder = build() if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices(f"regcls_jax prepared {data.name}")
  return builder if builder is not None else build()


def split_name(data: ml_collections.ConfigDict, split: str) -> str:
  """The TFDS split string of ``split`` (train / val / test) for this dataset and config."""
  if data.name == "breakfast":
    if split == "val":
      raise ValueError("breakfast has no val split; choose lambda on training videos")
    return breakfast.train_groups(data.split) if split == "train" else data.split
  return split


def targets(builder, data: ml_collections.ConfigDict, split: str) -> np.ndarray:
  """One target per record of ``split``, in record order (float64 ``[N]``).

  Ages for IMDB-WIKI-DIR, the mean valid depth of each image for NYUD2-DIR, the progress
  target for Breakfast frames, an image folder's targets standardised on train (the models'
  units, `target_scale`). Read from the builder's metadata, never from the records.
  """
  meta = builder.info.metadata
  if data.name == "image_folder":
    return target_scale(builder, data).apply(meta["targets"][split]).astype(np.float64)
  if data.name == "breakfast":
    groups = split_name(data, split).split("+")
    videos = [v for g in groups for v in meta["videos"][g]]
    return np.concatenate(
      [breakfast.progress_targets(n, data.target) for _, n, _ in videos]
    ).astype(np.float64)
  return np.asarray(meta["targets"][split], np.float64)


def target_scale(builder, data: ml_collections.ConfigDict):
  """``Standardiser`` from the targets' units to the models' (image folder; else identity)."""
  if data.name != "image_folder":
    return tabular.Standardiser(np.float64(0.0), np.float64(1.0))
  return image_folder.standardiser(builder.info.metadata["targets"]["train"])


def fit_classes(builder, config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """Class edges and keep probabilities (Eq. 12 / 13) fitted to the training targets.

  For NYUD2-DIR these are the training depth pixels, counted per stored 8-bit value at
  preparation; for the others the per-record targets.

  The edges cover the fixed range the authors' code uses (`class_range`), and Eq. 12 rounds
  as their image and video code do (``max(round(K c / N) - 1, 0)``).

  Returns:
    ``(edges [K' + 1], keep [K'])`` as `binning.make_classes`.
  """
  values, counts = training_targets(builder, config.data)
  return binning.make_classes(
    values,
    config.num_classes,
    config.balanced,
    weights=counts,
    value_range=class_range(config.data, values),
    rounding="round",
  )


def class_range(data: ml_collections.ConfigDict, values: np.ndarray) -> tuple[float, float]:
  """The fixed target range a dataset's classes span: ages 0-100, depth 0-10 m, Breakfast
  progress 0-1 (or 0-100 percent, 0-longest training video in frames); an image folder's
  training range (in the models' standardised units)."""
  if data.name == "image_folder":
    return float(np.min(values)), float(np.max(values))
  if data.name == "breakfast":
    return breakfast.class_range(data.target, int(np.max(values)) + 1)
  return {"imdb_wiki": imdb_wiki.CLASS_RANGE, "nyud2": nyud2.CLASS_RANGE}[data.name]


def training_targets(builder, data: ml_collections.ConfigDict):
  """``(values, counts)`` of the training targets: NYUD2's depth histogram (each stored 8-bit
  value and its pixel count), else every record's target with ``counts=None``."""
  if data.name == "nyud2":
    counts = np.asarray(builder.info.metadata["train_value_counts"], np.float64)
    return np.arange(counts.size) * nyud2.TRAIN_SCALE, counts
  return targets(builder, data, "train"), None


def make_sampler(builder, data: ml_collections.ConfigDict, split: str, train: bool):
  """Shuffled epochs (train), re-sampled epochs (``data.sampling``), or one ordered pass."""
  n = builder.info.splits[split_name(data, split)].num_examples
  if not train:
    return grain.samplers.IndexSampler(n, shuffle=False, num_epochs=1, seed=data.seed)
  if data.sampling == "none":
    return samplers.EpochSampler(n, data.seed, data.num_epochs)
  t = targets(builder, data, split)
  if data.sampling == "inverse":
    p = samplers.inverse_frequency_weights(t, data.sampling_bins)
  elif data.sampling in ("mild", "moderate", "severe"):
    p, _ = samplers.peak_weights(t, data.sampling, data.peak_centre, data.seed, data.sampling_bins)
  else:
    raise ValueError(
      f"config.data.sampling: {data.sampling!r}; expected one of {', '.join(samplers.SAMPLINGS)}"
    )
  return samplers.EpochSampler(n, data.seed, data.num_epochs, p, data.epoch_size or n)


def worker_count(data: ml_collections.ConfigDict) -> int:
  """``data.worker_count``, or with -1 one worker per core (at most 32)."""
  return min(os.cpu_count() or 1, 32) if data.worker_count < 0 else data.worker_count


def per_process_batch(global_batch: int) -> int:
  if global_batch % jax.process_count():
    raise ValueError(
      f"config.data.batch_size={global_batch} is not divisible by the {jax.process_count()} "
      "processes"
    )
  return global_batch // jax.process_count()


def make_loader(
  builder,
  config: ml_collections.ConfigDict,
  split: str,
  classes: tuple[np.ndarray, np.ndarray] | None = None,
  train: bool | None = None,
  batch_size: int | None = None,
) -> grain.DataLoader:
  """The Grain `DataLoader` of one split.

  Args:
    builder: from `prepare`.
    config: the experiment config; uses ``config.data`` and, with ``classes``, ``rebalance``.
    split: ``train``, ``val`` or ``test``.
    classes: ``(edges, keep)`` from `fit_classes`: adds ``cls``, ``cls_mask`` and ``reg_mask``
      (train only).
    train: augment, shuffle, repeat and drop the last partial batch; default: split == train.
    batch_size: global batch size; default ``config.data.batch_size`` (a trainer that
      accumulates gradients asks for all micro-batches of a step at once).

  Returns:
    a DataLoader whose batches are dicts of numpy arrays with a leading per-process batch axis.
  """
  data = config.data
  spec = _dataset(data)
  train = split == "train" if train is None else train
  source = builder.as_data_source(split=split_name(data, split))
  ops = [spec.train_transform(data, builder) if train else spec.eval_transform(data, builder)]
  if train and classes is None and spec.class_source != "label":
    ops.append(_Drop(spec.class_source))
  global_batch = batch_size or data.batch_size
  ops.append(grain.transforms.Batch(per_process_batch(global_batch), drop_remainder=train))
  if classes is not None and train:
    edges, keep = classes
    ops.append(transforms.ClassKeepMask(edges, keep, spec.class_source, config.rebalance))
  if not flags.FLAGS.is_parsed():
    # Grain's worker processes read absl flags; scripts and notebooks that never ran
    # absl.app would otherwise fail in the first worker.
    flags.FLAGS.mark_as_parsed()
  sampler = make_sampler(builder, data, split, train)
  if train:  # every process reads its block of each global batch (same batches at any count)
    sampler = samplers.ProcessBlockSampler(
      sampler, global_batch, jax.process_index(), jax.process_count()
    )
    shard_options = grain.sharding.NoSharding()
  else:  # ordered passes: each process reads every process_count-th record
    shard_options = grain.sharding.ShardByJaxProcess(drop_remainder=False)
  return grain.DataLoader(
    data_source=source,
    sampler=sampler,
    operations=ops,
    worker_count=worker_count(data),
    worker_buffer_size=data.worker_buffer_size,
    shard_options=shard_options,
    read_options=grain.ReadOptions(
      num_threads=data.read_threads, prefetch_buffer_size=data.read_buffer
    ),
  )


@dataclasses.dataclass(frozen=True)
class _Drop(grain.transforms.Map):
  """Removes a key the model does not need (the full-resolution depth without a cls head)."""

  key: str

  def map(self, element):
    return {k: v for k, v in element.items() if k != self.key}
