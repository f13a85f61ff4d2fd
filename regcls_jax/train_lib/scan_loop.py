"""Training loops that live inside one compiled program: epochs as `lax.scan`, their steps as a
`lax.scan` or, with a traced step count, a while loop.

The 1D program and the Breakfast per-activity program train many models side by side with
``jax.vmap``; each model reads its own (padded) set of sample indices. `train_epochs` runs the
epochs of one such model: a fresh shuffle per epoch (`epoch_permutation`), ``ceil(n_pad / batch)``
(or ``num_steps``) batches, of which those past the model's own data are skipped entirely (no
Adam step), so every model sees exactly ``ceil(n / batch)`` batches per epoch, like a
``drop_last=False`` loader (``floor(n / batch)`` with ``drop_last=True``, the 1D reference's
loader), whatever the padding its chunk mates impose.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.buffer_callback import buffer_callback

from regcls_jax.train_lib import step as step_lib


def _fmix32(h: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finaliser: a cheap, well-mixing bijection on uint32."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def _numpy_sort(ctx, out, keys) -> None:
  del ctx
  order = np.asarray(out)
  order[...] = np.asarray(keys)
  order.sort(axis=-1)


# From this many keys per row on (``on_host`` None), a CPU sorts them in NumPy: below it XLA's
# sort costs little, and a program without the host callback stays in JAX's on-disk cache
# (short runs and the tests recompile less).
HOST_SORT_MIN_KEYS = 16384


def sort_keys(keys: jax.Array, on_host: bool | None = None) -> jax.Array:
  """``jnp.sort(keys)`` along the last axis; on a CPU (``on_host`` None) NumPy sorts rows of
  at least `HOST_SORT_MIN_KEYS` keys instead.

  XLA:CPU sorts with a comparison sort that calls its compiled comparator per comparison:
  ~1.1 ms for 26k uint32 keys on one core, against ~0.1 ms for NumPy's vectorised sort (the
  1D grid's models shuffle 18-25k samples every epoch, which made XLA's sort about 40% of the
  regression-only models' training time). The NumPy sort runs in a
  `buffer_callback`, written straight into the output buffer, once per call for all vmapped
  models of the device; `jax.pure_callback` deadlocks here when several CPU devices call it at
  once (it waits on its own input buffers). Keys are sorted ascending; equal keys are
  indistinguishable, so both sorts give the same array.
  """
  if on_host is None:
    on_host = jax.default_backend() == "cpu" and keys.shape[-1] >= HOST_SORT_MIN_KEYS
  if not on_host:
    return jnp.sort(keys, axis=-1)
  out = jax.ShapeDtypeStruct(keys.shape, keys.dtype)
  return buffer_callback(_numpy_sort, out, vmap_method="expand_dims")(keys)


def epoch_permutation(key: jax.Array, n: jax.Array, n_pad: int) -> jax.Array:
  """A random order of ``[0, n)`` followed by ``[n, n_pad)``: one epoch's shuffle.

  Sorting random floats with an index payload (``argsort``) is the slowest part of the 1D grid's
  small models on a CPU, so each position gets one uint32 sort key instead: random high bits
  from a keyed hash, its own index in the low bits. A single-operand sort of those keys is ~6x
  faster than ``argsort``, and the low bits give the permutation back. Padding gets all-ones
  high bits and sorts last. Positions whose random high bits tie keep their index order; with
  16 random bits and ~22k samples that touches a few percent of adjacent pairs and does not
  change what an epoch contains. The keys of position i depend on ``n_pad`` only through the
  number of index bits (16 up to 65,536 samples, then ``ceil(log2(n_pad))``), so a model's
  shuffle is the same in any chunk padded to as many bits. The keys are distinct, so every sort
  gives the same order: on a CPU it runs in NumPy (`sort_keys`).

  Args:
    key: PRNG key of this model and epoch.
    n: number of valid samples (traced scalar).
    n_pad: static length, at most 2**24.

  Returns:
    int32 ``[n_pad]``.
  """
  index_bits = max(16, int(np.ceil(np.log2(max(n_pad, 2)))))
  if index_bits > 24:
    raise ValueError(f"epoch_permutation: {n_pad} samples per model exceed 2**24")
  positions = jnp.arange(n_pad, dtype=jnp.uint32)
  salt = jax.random.bits(key, (), jnp.uint32)
  high = _fmix32(positions * jnp.uint32(0x9E3779B9) + salt) >> index_bits << index_bits
  high = jnp.where(positions < n, high, jnp.uint32(0xFFFFFFFF) >> index_bits << index_bits)
  order = sort_keys(high | positions)
  return (order & jnp.uint32((1 << index_bits) - 1)).astype(jnp.int32)


# make_batch(positions [B] int32, valid [B] bool, step_key) -> batch dict for the train step.
MakeBatch = Callable[[jax.Array, jax.Array, jax.Array], step_lib.Batch]


def train_epochs(
  state: step_lib.TrainState,
  train_step: Callable,
  make_batch: MakeBatch,
  n: jax.Array,
  n_pad: int,
  *,
  batch_size: int,
  epochs: int,
  shuffle_key: jax.Array,
  mask_key: jax.Array,
  lr_at_epoch: Callable[[jax.Array], jax.Array] | None = None,
  epoch_end: Callable[[step_lib.TrainState], step_lib.TrainState] | None = None,
  drop_last: bool = False,
  num_steps: jax.Array | None = None,
) -> tuple[step_lib.TrainState, jax.Array]:
  """Trains one model for ``epochs`` epochs over its ``n`` (of ``n_pad``) samples.

  Args:
    state: the initial state.
    train_step: the pure step of `step_lib.make_train_step`.
    make_batch: builds a batch from positions into the model's samples (shuffled, padding
      last), their validity and a per-step key (for Eq. 13 keep draws).
    n: the model's number of samples (traced); ``n_pad`` the static padded length.
    batch_size, epochs: static.
    shuffle_key, mask_key: the model's keys for shuffling and per-step draws.
    lr_at_epoch: optional learning rate of each epoch (a step schedule), set at its start.
    epoch_end: optional state update after each epoch (FDS statistics).
    drop_last: skip a trailing partial batch, as a ``drop_last=True`` loader does.
    num_steps: optional traced batch count per epoch, the same for every vmapped model (pass it
      unbatched), at most ``ceil(n_pad / batch_size)``: the epoch is then a while loop over
      that many steps instead of a scan over all of them, so one compiled program serves
      every ``num_steps`` (the 1D grid pads its chunks to a few lengths and runs each chunk's
      own step count). The steps it leaves out are those every model would skip.

  Returns:
    (final state, mean training loss of each epoch ``[epochs]``).
  """
  steps = -(-n_pad // batch_size)

  def epoch_body(state, epoch):
    if lr_at_epoch is not None:
      opt_state = step_lib.set_learning_rate(state.opt_state, lr_at_epoch(epoch))
      state = state.replace(opt_state=opt_state)
    # Valid samples first, in a fresh random order; padding sorts last.
    perm = epoch_permutation(jax.random.fold_in(shuffle_key, epoch), n, n_pad)
    epoch_mask_key = jax.random.fold_in(mask_key, epoch)

    def step_body(state, s):
      idx = jax.lax.dynamic_slice(perm, (s * batch_size,), (batch_size,))
      valid = s * batch_size + jnp.arange(batch_size) < n
      used = valid[-1] if drop_last else valid[0]
      batch = make_batch(idx, valid, jax.random.fold_in(epoch_mask_key, s))
      new_state, metrics = train_step(state, batch, epoch_mask_key)
      # A batch past the end of a shorter dataset is empty (or, with drop_last, partial): skip
      # it, no Adam step either.
      state = jax.tree.map(lambda a, b: jnp.where(used, a, b), new_state, state)
      return state, (metrics["loss"], used)

    if num_steps is None:
      state, (step_losses, used) = jax.lax.scan(step_body, state, jnp.arange(steps))
      total, count = jnp.sum(step_losses * used), jnp.sum(used)
    else:

      def loop_body(s, carry):
        state, total, count = carry
        state, (loss, used) = step_body(state, s)
        return state, total + loss * used, count + used

      zero = jnp.zeros((), jnp.result_type(float))
      state, total, count = jax.lax.fori_loop(0, num_steps, loop_body, (state, zero, zero))
    if epoch_end is not None:
      state = epoch_end(state)
    return state, total / jnp.maximum(count, 1)

  return jax.lax.scan(epoch_body, state, jnp.arange(epochs))
