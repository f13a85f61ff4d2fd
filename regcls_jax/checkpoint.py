"""Orbax checkpoints of stacked model parameters plus JSON metadata.

A checkpoint holds two items: ``params``, a dict of groups, each a flat dict ``{'layers.0.kernel':
array [num_models, ...]}``, and ``meta``, a JSON dict (what the arrays are, progress); with a Grain
data iterator, a third, ``data``, holds its position (one JSON file per process), so a resumed
run continues with exactly the batch it would have seen next. Orbax
writes to a temporary directory and renames it on commit, so an interrupted save never leaves a
half-written step behind.
"""

from __future__ import annotations

import contextlib
import os

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx


@contextlib.contextmanager
def _quiet():
  """Orbax logs a dozen INFO lines per save; keep the user's log readable."""
  level = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  try:
    yield
  finally:
    logging.set_verbosity(level)


def _key_name(entry) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def flatten_state(state: nnx.State) -> dict[str, np.ndarray]:
  """``{'layers.0.kernel': array}`` for every leaf of an nnx.State (or any pytree)."""
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  return {".".join(_key_name(k) for k in path): np.asarray(v) for path, v in leaves}


def unflatten_state(template: nnx.State, flat: dict[str, np.ndarray]) -> nnx.State:
  """Inverse of `flatten_state`: fills ``template``'s structure with the arrays of ``flat``."""
  paths, treedef = jax.tree_util.tree_flatten_with_path(template)
  names = [".".join(_key_name(k) for k in path) for path, _ in paths]
  missing = [n for n in names if n not in flat]
  if missing:
    raise ValueError(f"checkpoint lacks parameters {missing}; has {sorted(flat)}")
  return jax.tree_util.tree_unflatten(treedef, [flat[n] for n in names])


class Checkpointer:
  """A `CheckpointManager` that keeps the latest ``max_to_keep`` steps of (params, meta)."""

  def __init__(self, directory: str, max_to_keep: int = 1):
    self.directory = os.path.abspath(directory)
    with _quiet():
      self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        ),
        item_names=("params", "meta", "data"),
      )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, params: dict, meta: dict, data_iterator=None) -> None:
    """Saves (atomically) and waits; ``data_iterator`` is a Grain iterator to resume from."""
    items = {"params": ocp.args.StandardSave(params), "meta": ocp.args.JsonSave(meta)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    with _quiet():
      self._manager.save(step, args=ocp.args.Composite(**items), force=True)
      self._manager.wait_until_finished()

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
