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


def test_lambda_is_selected_on_a_third_of_the_training_videos(breakfast_frames):
  """Validation = the first n // 3 of a seed-0 permutation of the model's TRAINING videos:
  whole videos, disjoint from the rest of training, never a test participant's."""
  frames, _, _ = breakfast_frames
  model = plan.Model("s2", "juice", 0)
  train, test = plan.model_frames(frames, model)
  fit, val = plan.validation_frames(frames, model)
  videos = np.unique(frames.video[train])
  held = np.random.RandomState(0).permutation(videos)[: len(videos) // 3]
  assert len(held) >= 1
  np.testing.assert_array_equal(np.unique(frames.video[val]), np.sort(held))
  np.testing.assert_array_equal(np.sort(np.concatenate([fit, val])), train)
  assert not set(frames.video[fit]) & set(frames.video[val])
  assert not set(val) & set(test)


def test_classes_span_the_fixed_progress_range(breakfast_frames):
  """The video code's classes: K edges over [0, 1] whatever the training targets' range, and
  Eq. 12 with round (clamped at 0) for equalised ones."""
  frames, config, _ = breakfast_frames
  y = np.linspace(0.2, 0.6, 50)
  edges, keep = plan.class_inputs(config, y, balanced=False)
  np.testing.assert_allclose(edges, np.linspace(0, 1, config.num_classes + 1))
  assert np.all(keep == 1)
  config.num_classes = 4
  edges, keep = plan.class_inputs(config, np.array([0.1, 0.3, 0.35, 0.6, 0.6, 0.6, 0.6, 0.9]), True)
  # counts over [0, .25, .5, .75, 1]: 1, 2, 4, 1 -> cum 1, 3, 7, 8 -> round(4 c / 8) - 1 =
  # max(round(.5) - 1, 0) = 0, round(1.5) - 1 = 1, round(3.5) - 1 = 3, 3
  # -> classes {0}, {1}, {2, 3}.
  np.testing.assert_allclose(edges, [0.0, 0.25, 0.5, 1.0])
  np.testing.assert_allclose(keep, [1.0, 0.5, 0.2])
