"""Every Breakfast frame, read once: features ``[N, 64]``, group, activity and both targets.

The four groups' features are read through Grain from the prepared ArrayRecord shards, in
record order, and cached as ``features-<group>.npy`` next to the shards, so a second run reads
them in a fraction of a second. The per-frame labels come from the builder's video metadata.
"""

from __future__ import annotations

import dataclasses
import os
import time

import grain
import numpy as np
from absl import logging

from regcls_jax.data import breakfast, pipeline

SPLITS = tuple(breakfast.GROUPS)


@dataclasses.dataclass
class Frames:
  """Every frame of the dataset: features ``[N, 64]`` and, per frame, its group (test split),
  activity index, video index (into the metadata's videos, in group order) and its targets."""

  features: np.ndarray
  group: np.ndarray
  activity: np.ndarray
  video: np.ndarray
  fraction: np.ndarray
  percent: np.ndarray
  frames: np.ndarray

  def targets(self, target: str) -> np.ndarray:
    return {"fraction": self.fraction, "percent": self.percent, "frames": self.frames}[target]


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
  parts = {f.name: [] for f in dataclasses.fields(Frames)}
  for gi, group in enumerate(SPLITS):
    parts["features"].append(_read_group(builder, group, workers))
    for _, n, activity in videos[group]:
      parts["video"].append(np.full(n, len(parts["video"]), np.int32))
      parts["group"].append(np.full(n, gi, np.int8))
      parts["activity"].append(np.full(n, breakfast.ACTIVITIES.index(activity), np.int8))
      for target in breakfast.TARGETS:
        parts[target].append(breakfast.progress_targets(n, target))
  return Frames(**{k: np.concatenate(v) for k, v in parts.items()})


def load(config) -> Frames:
  """Prepares the dataset (`data.pipeline.prepare`) and reads every frame."""
  builder = pipeline.prepare(config.data)
  t = time.perf_counter()
  frames = load_frames(builder, pipeline.worker_count(config.data))
  logging.info("breakfast: %d frames loaded in %.1fs", len(frames.group), time.perf_counter() - t)
  return frames
