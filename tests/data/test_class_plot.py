"""Paper Fig. 8: the training distribution, equalised classes' keep probabilities, the
re-balanced distribution; from `prepare` for every real-data family."""

import os

import numpy as np
import pytest

from regcls_jax.data import class_plot, prepare


def test_rebalanced_weights_each_target_by_its_class_keep_probability():
  # Two classes [0, 1) and [1, 2]: 6 targets in the first, 2 in the second; Eq. 13 keeps the
  # rarest class's count over each class's: 2/6 and 1.
  values = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 1.5, 1.9])
  edges, keep = np.array([0.0, 1.0, 2.0]), np.array([2 / 6, 1.0])
  bins = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
  before, after = class_plot.rebalanced(values, None, edges, keep, bins)
  np.testing.assert_allclose(before, [3, 3, 0, 2])
  np.testing.assert_allclose(after, [1, 1, 0, 2])
  # Histogram input (NYUD2's pixel counts): the same with counts instead of repeats.
  before, after = class_plot.rebalanced([0.25, 1.75], [6, 2], edges, keep, bins)
  np.testing.assert_allclose(before, [6, 0, 0, 2])
  np.testing.assert_allclose(after, [2, 0, 0, 2])


@pytest.mark.parametrize("name", ["imdb_wiki", "nyud2", "breakfast"])
def test_prepare_draws_fig8_for_every_dataset(prepared, tmp_path, name):
  config, builder = prepared(name)
  path = str(tmp_path / f"fig8_{name}.png")
  line = prepare.plot(config, path)
  assert os.path.getsize(path) > 10_000 and path in line
  assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp.png")]
  k = int(line.split("(")[1].split()[0])
  assert 2 <= k <= 100
