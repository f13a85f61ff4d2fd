"""Pytrees as flat dicts of named arrays: what checkpoints and weight converters exchange."""

from __future__ import annotations

import jax
import numpy as np


def path_name(path) -> str:
  """``'layers.0.kernel'`` for a pytree key path; the ``.value`` of an NNX Variable is dropped."""
  parts = []
  for entry in path:
    for attr in ("key", "name", "idx"):
      if hasattr(entry, attr):
        parts.append(str(getattr(entry, attr)))
        break
    else:
      parts.append(str(entry))
  return ".".join(p for p in parts if p != "value")


def flatten(tree) -> dict[str, np.ndarray]:
  """``{'layers.0.kernel': array}`` for every leaf of an nnx.State (or any pytree)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {path_name(path): np.asarray(v) for path, v in leaves}


def unflatten(template, flat: dict[str, np.ndarray]):
  """Inverse of `flatten`: fills ``template``'s structure with the arrays of ``flat``.

  Raises:
    ValueError: naming the leaves ``flat`` lacks.
  """
  paths, treedef = jax.tree_util.tree_flatten_with_path(template)
  names = [path_name(path) for path, _ in paths]
  missing = [n for n in names if n not in flat]
  if missing:
    raise ValueError(f"checkpoint lacks parameters {missing}; has {sorted(flat)}")
  return jax.tree_util.tree_unflatten(treedef, [flat[n] for n in names])


def take(tree, index: np.ndarray):
  """Rows ``index`` of every leaf's leading (model) axis."""
  return jax.tree.map(lambda a: a[index], tree)


def stack(trees):
  """Stacks equally shaped pytrees along a new leading (model) axis, on the host."""
  return jax.tree.map(lambda *a: np.stack(a), *trees)
