"""The in-program epoch loop: one epoch's shuffle, and how many batches an epoch trains."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("drop_last,steps,seen", [(False, 4, 1000), (True, 3, 768)])
def test_train_epochs_counts_batches_like_a_loader(drop_last, steps, seen, traced):
  # 1000 samples padded to 1024, batch 256: a drop_last=False loader gives 4 batches (the last
  # of 232 samples), a drop_last=True loader 3 full ones. The step records what it is fed.
  # Traced: padded to 4096 (16 batches), the step count (4) given at run time, in a while loop.
  n, n_pad, batch = 1000, 4096 if traced else 1024, 256

  def train_step(state, b, key):
    del key
    hits = jnp.zeros(n_pad).at[b["idx"]].add(b["weight"])
    return {"steps": state["steps"] + 1, "hits": state["hits"] + hits}, {"loss": jnp.float32(1)}

  def make_batch(idx, valid, key):
    del key
    return {"idx": idx, "weight": valid.astype(jnp.float32)}

  def run(num_steps):
    state = {"steps": jnp.int32(0), "hits": jnp.zeros(n_pad)}
    return scan_loop.train_epochs(
      state,
      train_step,
      make_batch,
      jnp.int32(n),
      n_pad,
      batch_size=batch,
      epochs=2,
      shuffle_key=jax.random.key(0),
      mask_key=jax.random.key(1),
      drop_last=drop_last,
      num_steps=num_steps,
    )

  if traced:  # one compiled program, the step count an argument
    state, losses = jax.jit(run)(jnp.int32(-(-n // batch)))
    if drop_last:  # a longer run of it skips the steps past the data (no step taken)
      longer, _ = jax.jit(run)(jnp.int32(n_pad // batch))
      np.testing.assert_array_equal(np.asarray(longer["hits"]), np.asarray(state["hits"]))
  else:
    state, losses = run(None)
  assert int(state["steps"]) == 2 * steps
  hits = np.asarray(state["hits"])
  assert hits.sum() == 2 * seen and hits.max() <= 2 and hits[n:].sum() == 0
  np.testing.assert_allclose(losses, [1.0, 1.0])


def test_host_sort_equals_xla_sort_under_vmap_scan_and_devices():
  # The CPU path sorts in NumPy through a buffer callback: the same array as jnp.sort, for the
  # vmapped models of each device, inside a scan (as in `train_epochs`), on every device at once.
  from regcls_jax.train_lib import sharding

  keys = jax.random.bits(jax.random.key(3), (8, 5000), jnp.uint32)

  def epochs(k, on_host):
    def body(carry, e):
      return carry, scan_loop.sort_keys(k ^ e.astype(jnp.uint32), on_host)

    return jax.lax.scan(body, 0, jnp.arange(3))[1]

  mesh = sharding.models_mesh()
  on_host = sharding.models_program(lambda k: epochs(k, True), mesh)
  on_device = sharding.models_program(lambda k: epochs(k, False), mesh)
  reference = np.sort(np.asarray(keys)[:, None] ^ np.arange(3, dtype=np.uint32)[:, None], axis=-1)
  np.testing.assert_array_equal(np.asarray(on_device(keys)), reference)
  for _ in range(2):  # a second call of the same program must not hang (pure_callback's did)
    np.testing.assert_array_equal(np.asarray(on_host(keys)), reference)


def test_only_long_rows_sort_on_the_host():
  # Short rows keep XLA's sort (no host callback: the program stays cacheable on disk).
  def lowered(n):
    keys = jnp.zeros((2, n), jnp.uint32)
    return jax.jit(scan_loop.sort_keys).lower(keys).as_text()

  assert "python_cpu_callback" not in lowered(scan_loop.HOST_SORT_MIN_KEYS - 1)
  assert "python_cpu_callback" in lowered(scan_loop.HOST_SORT_MIN_KEYS)
