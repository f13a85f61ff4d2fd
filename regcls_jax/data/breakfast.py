"""Breakfast (Kuehne et al., CVPR 2014) with Kukleva et al.'s 64-d IDT features: video progress.

Published layout (``config.data.data_dir``)::

  features/P03_cam01_P03_coffee.txt     one row per frame, 64 space-separated floats
  groundTruth/P03_cam01_P03_coffee.txt  one action label per line per frame
  mapping/mapping.txt                   "<id> <action name>" per line

Participants P03-P54 fall into four groups of 13: group k is the test set of the standard split
Sk (S1 = P03-P15, S2 = P16-P28, S3 = P29-P41, S4 = P42-P54), the other three groups train. The
TFDS splits are the groups ``s1``..``s4``, so split Sk's training set is e.g. ``s2+s3+s4``.

One record per frame; targets (paper Sec. 3.3): ``percent`` = 100 * i / n and ``frames`` = i for
the 0-based frame index i of a video with n frames.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import tensorflow_datasets as tfds

from regcls_jax.data import common

NAME = "breakfast"
FEATURE_DIM = 64
# The activity names of the released feature files ("salat", not "salad").
ACTIVITIES = (
  "cereals",
  "coffee",
  "friedegg",
  "juice",
  "milk",
  "pancake",
  "salat",
  "sandwich",
  "scrambledegg",
  "tea",
)
GROUPS = {"s1": (3, 15), "s2": (16, 28), "s3": (29, 41), "s4": (42, 54)}
TARGETS = ("fraction", "percent", "frames")


def class_range(target: str, max_frames: int) -> tuple[float, float]:
  """The fixed range the authors' video code lays its classes over: progress [0, 1] for
  fractions (its ``--reltime``), [0, 100] for percent, and [0, longest training video] for
  frame indices."""
  return {"fraction": (0.0, 1.0), "percent": (0.0, 100.0)}.get(target, (0.0, float(max_frames)))


_VIDEO = re.compile(r"^P(\d\d)_([A-Za-z0-9]+)_P\d\d_([a-z]+)\.txt$")
DataError = common.DataError


def person_group(person: int) -> str:
  """``'s1'``..``'s4'``: the split whose test set holds this participant."""
  for group, (lo, hi) in GROUPS.items():
    if lo <= person <= hi:
      return group
  raise ValueError(f"participant P{person:02d} is outside P03-P54")


def train_groups(split: str) -> str:
  """TFDS split string of split ``Sk``'s training set, e.g. ``'s2+s3+s4'`` for ``'s1'``."""
  if split not in GROUPS:
    raise ValueError(f"breakfast split {split!r}: expected one of {', '.join(GROUPS)}")
  return "+".join(g for g in GROUPS if g != split)


def progress_targets(num_frames: int, target: str) -> np.ndarray:
  """Per-frame targets of one video: the fraction ``i / n`` (the authors' ``--reltime``),
  percent ``100 i / n`` or the frame index ``i``; float32 ``[n]``."""
  i = np.arange(num_frames, dtype=np.float64)
  if target == "fraction":
    return (i / num_frames).astype(np.float32)
  if target == "percent":
    return (100.0 * i / num_frames).astype(np.float32)
  if target == "frames":
    return i.astype(np.float32)
  raise ValueError(f"breakfast target {target!r}: expected one of {', '.join(TARGETS)}")


def parse_video_name(path: str) -> tuple[int, str, str]:
  """``(person, camera, activity)`` from a feature file name like ``P03_cam01_P03_coffee.txt``."""
  m = _VIDEO.match(os.path.basename(path))
  if not m or m.group(3) not in ACTIVITIES:
    raise DataError(
      f"{path}: expected a name like P03_cam01_P03_coffee.txt with an activity in "
      f"{', '.join(ACTIVITIES)}"
    )
  person = int(m.group(1))
  try:
    person_group(person)
  except ValueError as e:
    raise DataError(f"{path}: {e}") from None
  return person, m.group(2), m.group(3)


def read_mapping(data_dir: str) -> set[str]:
  path = common.require_file(os.path.join(data_dir, "mapping", "mapping.txt"), "mapping file")
  names = set()
  with open(path) as f:
    for line, text in enumerate(f, start=1):
      parts = text.split()
      if parts and (len(parts) != 2 or not parts[0].isdigit()):
        raise DataError(f"{path}, line {line}: expected '<id> <action name>', found {text!r}")
      if parts:
        names.add(parts[1])
  return names


def read_features(path: str) -> np.ndarray:
  """float32 ``[frames, 64]`` from one feature file; a bad file is checked line by line."""
  common.require_file(path, "feature file")
  with open(path) as f:
    text = f.read()
  lines = [ln for ln in text.splitlines() if ln.strip()]
  if not lines:
    raise DataError(f"{path}: no frames")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)  # older numpy only warns
      values = np.fromstring(text, dtype=np.float32, sep=" ")
  except ValueError:  # non-numeric text
    values = np.zeros(0, np.float32)
  if values.size != len(lines) * FEATURE_DIM:
    for i, ln in enumerate(lines, start=1):
      if len(ln.split()) != FEATURE_DIM:
        raise DataError(f"{path}, line {i}: expected {FEATURE_DIM} values, found {len(ln.split())}")
    raise DataError(f"{path}: non-numeric feature value")
  if not np.all(np.isfinite(values)):
    raise DataError(f"{path}: NaN or inf in the features")
  return values.reshape(len(lines), FEATURE_DIM)


def read_ground_truth(path: str, actions: set[str]) -> list[str]:
  common.require_file(path, "ground-truth file")
  with open(path) as f:
    labels = [ln.strip() for ln in f if ln.strip()]
  unknown = sorted(set(labels) - actions)
  if unknown:
    raise DataError(f"{path}: action(s) {', '.join(unknown[:3])} not in mapping/mapping.txt")
  return labels


def load_video(args: tuple[str, str, frozenset]) -> np.ndarray:
  """The features of one video after checking them against its ground truth."""
  feature_path, gt_path, actions = args
  features = read_features(feature_path)
  labels = read_ground_truth(gt_path, actions)
  if len(labels) != len(features):
    raise DataError(
      f"{feature_path}: {len(features)} feature rows but {len(labels)} ground-truth lines in "
      f"{gt_path}"
    )
  return features


def list_videos(data_dir: str) -> dict[str, list[str]]:
  """``{group: [feature file name, ...]}`` sorted, every group non-empty."""
  common.require_dir(data_dir, "Breakfast")
  feature_dir = os.path.join(data_dir, "features")
  common.require_dir(feature_dir, "Breakfast features")
  out = {g: [] for g in GROUPS}
  for name in sorted(os.listdir(feature_dir)):
    if name.endswith(".txt"):
      out[person_group(parse_video_name(os.path.join(feature_dir, name))[0])].append(name)
  common.require_nonempty(out, feature_dir)
  return out


class Breakfast(tfds.core.GeneratorBasedBuilder):
  """Breakfast frames with IDT features: ``features`` float32 [64], ``frame``, ``num_frames``,
  ``activity`` (class label), ``person``, ``video``."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "One record per frame; splits are the test groups s1..s4."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Get the Breakfast IDT features of Kukleva et al. (features/, groundTruth/, mapping/; see "
    "github.com/Annusha/unsup_temp_embed) into one directory and pass it as "
    "--config.data.data_dir."
  )

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description="Breakfast actions (Kuehne et al., CVPR 2014), 64-d IDT features per frame.",
      features=tfds.features.FeaturesDict(
        {
          "features": tfds.features.Tensor(shape=(FEATURE_DIM,), dtype=np.float32),
          "frame": tfds.features.Scalar(np.int32),
          "num_frames": tfds.features.Scalar(np.int32),
          "activity": tfds.features.ClassLabel(names=ACTIVITIES),
          "person": tfds.features.Scalar(np.int32),
          "video": tfds.features.Text(),
        }
      ),
      disable_shuffling=True,
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    data_dir = os.fspath(dl_manager.manual_dir)
    groups = list_videos(data_dir)
    actions = frozenset(read_mapping(data_dir))
    # [video, num_frames, activity] per video in record order: enough to rebuild every target.
    self.info.metadata["videos"] = {}
    return {g: self._generate_examples(g, names, data_dir, actions) for g, names in groups.items()}

  def _generate_examples(self, group, names, data_dir, actions):
    jobs = [
      (os.path.join(data_dir, "features", n), os.path.join(data_dir, "groundTruth", n), actions)
      for n in names
    ]
    videos, key = [], 0
    for name, features in zip(names, common.parallel_map(load_video, jobs, min_items=64)):
      person, _, activity = parse_video_name(name)
      video = name[: -len(".txt")]
      videos.append([video, len(features), activity])
      for i, row in enumerate(features):
        yield (
          key,
          {
            "features": row,
            "frame": i,
            "num_frames": len(features),
            "activity": activity,
            "person": person,
            "video": video,
          },
        )
        key += 1
    self.info.metadata["videos"][group] = videos


def source_files(data_dir: str) -> list[str]:
  """Every feature, ground-truth and mapping file: any change means a rebuild."""
  groups = list_videos(data_dir)
  names = [n for g in groups.values() for n in g]
  files = [os.path.join(data_dir, "features", n) for n in names]
  files += [os.path.join(data_dir, "groundTruth", n) for n in names]
  return files + [os.path.join(data_dir, "mapping", "mapping.txt")]
