"""Guards of a long run: SIGTERM as a request to save and stop, and the first non-finite loss."""

from __future__ import annotations

import functools
import signal

import jax
import jax.numpy as jnp

from regcls_jax.train_lib import sharding


class Preemption:
  """Turns SIGTERM (a preempted TPU VM, ``scancel``, ``kill``) into a request to stop at the
  next step boundary; with several processes they agree first, so all save the same step."""

  def __init__(self):
    self.requested = False
    self._previous = None
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. a thread in a notebook): no handler
      self._previous = None

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def agreed(self) -> bool:
    """Whether any process was asked to stop (a collective with several processes)."""
    return sharding.any_process(self.requested)

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def preemptible(train):
  """Decorates a trainer ``train(config, workdir, preemption)``: a `Preemption` is installed
  for the call (first thing, so a SIGTERM during start-up is a stop request too) and passed as
  ``preemption``; the trainer stops at its next safe point when ``preemption.requested``."""

  @functools.wraps(train)
  def wrapper(*args, **kwargs):
    preemption = Preemption()
    try:
      return train(*args, preemption=preemption, **kwargs)
    finally:
      preemption.close()

  return wrapper


@functools.partial(jax.jit, donate_argnums=(0,))
def first_nonfinite(first: jax.Array, loss: jax.Array, step: jax.Array) -> jax.Array:
  """The first step whose loss was NaN or inf (-1: none), tracked on the device without a
  host sync per step: ``first = first_nonfinite(first, loss, step)`` after every step."""
  return jnp.where((first < 0) & ~jnp.isfinite(loss), step, first)
