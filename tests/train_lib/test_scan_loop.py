"""The in-program epoch loop: one epoch's shuffle."""

import jax
import numpy as np

from regcls_jax.train_lib import scan_loop


def test_epoch_permutation_is_a_uniform_shuffle_of_the_valid_prefix():
  n, n_pad, epochs = 20, 32, 3000
  perms = jax.vmap(lambda k: scan_loop.epoch_permutation(k, n, n_pad))(
    jax.random.split(jax.random.key(0), epochs)
  )
  perms = np.asarray(perms)
  # Valid samples first, each exactly once; padding last, in order.
  np.testing.assert_array_equal(np.sort(perms[:, :n], axis=1), np.tile(np.arange(n), (epochs, 1)))
  np.testing.assert_array_equal(perms[:, n:], np.tile(np.arange(n, n_pad), (epochs, 1)))
  # Every sample is equally likely at every position: chi-square over the 20 x 20 table.
  counts = np.zeros((n, n))
  for p in perms:
    counts[p[:n], np.arange(n)] += 1
  expected = epochs / n
  chi2 = ((counts - expected) ** 2 / expected).sum()
  dof = (n - 1) ** 2
  assert chi2 < dof + 5 * np.sqrt(2 * dof), chi2
  # Different epochs give different orders; the shuffle does not depend on the padding.
  assert len({tuple(p[:n]) for p in perms[:50]}) == 50
  longer = np.asarray(scan_loop.epoch_permutation(jax.random.key(7), n, 2 * n_pad))
  np.testing.assert_array_equal(
    longer[:n], np.asarray(scan_loop.epoch_permutation(jax.random.key(7), n, n_pad))[:n]
  )
