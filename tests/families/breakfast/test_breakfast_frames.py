"""Breakfast frames: every frame's features and targets, read once from the prepared shards."""

import numpy as np

from regcls_jax.data import breakfast
from regcls_jax.families.breakfast import frames as frames_lib


def test_frames_and_targets_match_the_fixture_files(breakfast_frames, fixture_root):
  frames, _, builder = breakfast_frames
  start, video = 0, 0
  for group in frames_lib.SPLITS:
    for name, n, activity in builder.info.metadata["videos"][group]:
      rows = slice(start, start + n)
      want = np.loadtxt(fixture_root / "breakfast" / "features" / f"{name}.txt", dtype=np.float32)
      np.testing.assert_array_equal(frames.features[rows], want)
      np.testing.assert_allclose(frames.fraction[rows], np.arange(n) / n, rtol=1e-6)
      np.testing.assert_allclose(frames.percent[rows], 100 * np.arange(n) / n, rtol=1e-6)
      assert set(frames.video[rows]) == {video}
      np.testing.assert_array_equal(frames.frames[rows], np.arange(n))
      assert set(frames.activity[rows]) == {breakfast.ACTIVITIES.index(activity)}
      assert set(frames.group[rows]) == {frames_lib.SPLITS.index(group)}
      start, video = start + n, video + 1
  assert start == len(frames.features)
