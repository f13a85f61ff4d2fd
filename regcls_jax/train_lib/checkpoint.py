"""Orbax checkpoints of named arrays plus JSON metadata, for every family.

A checkpoint holds two items: ``params``, a dict of groups, each a flat dict
``{'layers.0.kernel': array [num_models, ...]}`` (`pytrees.flatten`), and ``meta``, a JSON dict
(what the arrays are, progress, the config fingerprint); with a Grain data iterator, a third,
``data``, holds its position (one JSON file per process), so a resumed run continues with
exactly the batch it would have seen next. Orbax writes to a temporary directory and renames it
on commit, so an interrupted save never leaves a half-written step behind.
"""

from __future__ import annotations

import contextlib
import errno
import os

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging


@contextlib.contextmanager
def _quiet():
  """Orbax logs a dozen INFO lines per save; keep the user's log readable."""
  level = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  try:
    yield
  finally:
    logging.set_verbosity(level)


class Checkpointer:
  """A `CheckpointManager` that keeps the latest ``max_to_keep`` steps of (params, meta)."""

  def __init__(self, directory: str, max_to_keep: int = 1):
    self.directory = os.path.abspath(directory)
    with _quiet():
      self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep,
          create=True,
          enable_async_checkpointing=False,
          # Leftovers of a save that a kill interrupted are removed at start.
          cleanup_tmp_directories=True,
        ),
        item_names=("params", "meta", "data"),
      )
      # Orbax removes those leftovers in a background thread; wait for it here, so a run that
      # fails right after (and removes the workdir it created) never races it into a traceback.
      await_cleanup = getattr(self._manager, "_maybe_await_cleanup_tmp_directory", None)
      if await_cleanup is not None:
        await_cleanup()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, params: dict, meta: dict, data_iterator=None) -> bool:
    """Saves (atomically) and waits; ``data_iterator`` is a Grain iterator to resume from.

    Idempotent: a completed checkpoint of ``step`` is kept as it is (a resumed run that reaches
    a step an interrupted run had already saved computes the same state), so a kill between
    two saves never leaves a workdir whose rerun fails. Returns whether it wrote.
    """
    if step in self._manager.all_steps():
      logging.warning("%s: step %d is already saved; kept", self.directory, step)
      return False
    items = {"params": ocp.args.StandardSave(params), "meta": ocp.args.JsonSave(meta)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    try:
      with _quiet():
        self._manager.save(step, args=ocp.args.Composite(**items), force=True)
        self._manager.wait_until_finished()
    except (OSError, ValueError) as e:  # tensorstore reports a full disk as a ValueError
      text = str(e)
      if isinstance(e, OSError) or "RESOURCE_EXHAUSTED" in text or "No space" in text:
        raise OSError(
          errno.ENOSPC if "RESOURCE_EXHAUSTED" in text or "No space" in text else e.errno,
          f"cannot save checkpoint step {step} (disk full or not writable); the last complete "
          "checkpoint is kept",
          self.directory,
        ) from None
      raise
    return True

  def restore(self, step: int | None = None, data_iterator=None) -> tuple[dict, dict]:
    """``(params, meta)`` of ``step`` (default: the latest); also rewinds ``data_iterator``."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    items = {"params": ocp.args.StandardRestore(), "meta": ocp.args.JsonRestore()}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    with _quiet():
      out = self._manager.restore(step, args=ocp.args.Composite(**items))
    return jax.tree.map(np.asarray, dict(out.params)), dict(out.meta)

  def restore_meta(self, step: int | None = None) -> dict:
    """The JSON ``meta`` of ``step`` (default: the latest) alone, without its arrays."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    with _quiet():
      out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(out.meta)

  def close(self) -> None:
    with _quiet():
      self._manager.wait_until_finished()
      self._manager.close()


def restore_for_eval(directory: str) -> tuple[dict, dict]:
  """``(params, meta)`` of the latest checkpoint in ``directory``, for ``--mode=eval``.

  Raises:
    FileNotFoundError: naming the directory, when there is no checkpoint to evaluate.
  """
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"--mode=eval: no checkpoint directory {directory}; train first")
  ckpt = Checkpointer(directory)
  try:
    return ckpt.restore()
  finally:
    ckpt.close()
