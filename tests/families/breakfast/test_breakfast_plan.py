"""Breakfast plan: one model per split, activity and seed; train/test frames by participant."""

import numpy as np

from regcls_jax.families.breakfast import frames as frames_lib
from regcls_jax.families.breakfast import plan


def test_model_frames_split_by_participant(breakfast_frames):
  frames, _, builder = breakfast_frames
  persons = np.concatenate(
    [[int(r["person"]) for r in builder.as_data_source(split=g)] for g in frames_lib.SPLITS]
  )
  train, test = plan.model_frames(frames, plan.Model("s2", "juice", 0))
  assert set(persons[test]) == {16} and 16 not in set(persons[train])
  assert set(frames.activity[train]) == set(frames.activity[test]) == {3}
  want_train = np.flatnonzero((frames.activity == 3) & (frames.group != 1))
  np.testing.assert_array_equal(train, want_train)
