"""Meshes, the vmapped models program, and moving batches between host and devices.

Two layouts cover every family. The vmapped families (1D grid, Breakfast) train many small
models side by side: a ``models`` mesh over all local devices, each device holding a slice of
the model axis (`models_program`). The image family trains one model on a ``data`` mesh, each
device holding a slice of the global batch (`device_batch`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MODELS = "models"
DATA = "data"


def models_mesh() -> Mesh:
  """Every local device on one ``models`` axis."""
  return Mesh(np.array(jax.devices()), (MODELS,))


def data_mesh() -> Mesh:
  """Every device (of all processes) on one ``data`` axis."""
  return Mesh(np.array(jax.devices()), (DATA,))


def round_up(n: int, multiple: int) -> int:
  """The smallest multiple of ``multiple`` that is >= n (and >= multiple)."""
  return max(multiple, -(-n // multiple) * multiple)


def padded_order(num_models: int, num_devices: int) -> np.ndarray:
  """Model positions padded to a multiple of the device count by repeating the last model."""
  return np.minimum(np.arange(round_up(num_models, num_devices)), num_models - 1)


def models_program(
  fn: Callable,
  mesh: Mesh,
  in_axes: Sequence[int | None] | int = 0,
  compiler_options: dict[str, object] | None = None,
) -> Callable:
  """``jit(shard_map(vmap(fn)))``: ``fn`` of ONE model, run for every model of the inputs.

  Args:
    fn: the per-model function.
    mesh: a `models_mesh`; the model count must be a multiple of its size.
    in_axes: per argument, 0 (a leading model axis, sharded over the mesh) or None (shared by
      every model, replicated on every device), as in ``jax.vmap``.
    compiler_options: XLA options of the compiled program.

  Returns:
    the jitted program; every output has the leading model axis.
  """
  vmapped = jax.vmap(fn, in_axes=in_axes)
  if isinstance(in_axes, int):
    in_specs = P(MODELS) if in_axes == 0 else P()
  else:
    in_specs = tuple(P() if a is None else P(MODELS) for a in in_axes)
  sharded = jax.shard_map(
    vmapped, mesh=mesh, in_specs=in_specs, out_specs=P(MODELS), check_vma=False
  )
  return jax.jit(sharded, compiler_options=compiler_options or None)


def batch_sharding(mesh: Mesh, accum_steps: int = 1) -> NamedSharding:
  """Batches split along their batch axis over ``data`` (``[accum, B, ...]`` with accumulation)."""
  return NamedSharding(mesh, P(DATA) if accum_steps == 1 else P(None, DATA))


def device_batch(batch: dict, mesh: Mesh, accum_steps: int = 1) -> dict:
  """One process's numpy batch -> global `jax.Array`s over the ``data`` axis.

  With ``accum_steps > 1`` each leaf is reshaped to ``[accum_steps, B / accum_steps, ...]``
  micro-batches first (the step's gradient accumulation).
  """
  if accum_steps > 1:
    batch = {k: v.reshape(accum_steps, -1, *v.shape[1:]) for k, v in batch.items()}
  sharding = batch_sharding(mesh, accum_steps)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def device_batches(batches: Iterator[dict], mesh: Mesh, accum_steps: int = 1) -> Iterator[dict]:
  """`device_batch` of every batch of an iterator (a Grain loader)."""
  for batch in batches:
    yield device_batch(batch, mesh, accum_steps)


def host_copy(tree):
  """Host (numpy) copies of replicated arrays: this process's first copy, which also works
  when the array spans other processes' devices (multi-process runs)."""

  def get(a):
    return np.asarray(a.addressable_data(0)) if isinstance(a, jax.Array) else a

  return jax.tree.map(get, tree)


def gather_processes(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Concatenates every process's rows, in process order (their counts may differ)."""
  if jax.process_count() == 1:
    return arrays
  from jax.experimental import multihost_utils

  n = len(next(iter(arrays.values())))
  counts = np.asarray(multihost_utils.process_allgather(np.array([n]))).ravel()
  out = {}
  for k, v in arrays.items():
    padded = np.concatenate([v, np.zeros((counts.max() - n, *v.shape[1:]), v.dtype)])
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    out[k] = np.concatenate([g[:c] for g, c in zip(gathered, counts)])
  return out


def any_process(flag: bool) -> bool:
  """True on every process when ``flag`` is True on any (a collective with several)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils

  return bool(np.max(multihost_utils.process_allgather(np.array([flag]))))
