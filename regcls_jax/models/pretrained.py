"""Starting from ImageNet weights a user provides as a local file (no download at run time).

Format: an ``.npz`` whose keys are this project's parameter names of the ResNet encoder, e.g.
``encoder.stem.kernel`` (HWIO), ``encoder.stem_bn.scale`` / ``bias`` / ``mean`` / ``var``,
``encoder.stages.0.0.conv1.kernel``, ``encoder.stages.0.0.proj.kernel`` (the projection
shortcut), ``encoder.stages.3.2.bn3.var``. Set ``--config.model.init_from=FILE``; every key must
match a parameter or statistic of the model in name and shape, and at least one must.

Make one from torchvision's ResNet-50 checkpoint (needs PyTorch, not a dependency here):

  python -m regcls_jax.models.pretrained \
    --torchvision=resnet50-0676ba61.pth --out=resnet50_imagenet.npz
"""

from __future__ import annotations

import sys

import jax
import numpy as np

from regcls_jax.train_lib import pytrees

_BN_LEAVES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def torchvision_to_encoder(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Renames (and transposes OIHW -> HWIO) a torchvision ResNet state dict; drops ``fc``."""
  out = {}
  for key, value in state_dict.items():
    parts = key.split(".")
    if parts[0] == "fc" or parts[-1] == "num_batches_tracked":
      continue
    if parts[0] in ("conv1", "bn1"):
      module, leaf = ("stem" if parts[0] == "conv1" else "stem_bn"), parts[1]
    elif parts[0].startswith("layer"):
      stage, block, sub = int(parts[0][5:]) - 1, parts[1], parts[2]
      if sub == "downsample":
        sub = "proj" if parts[3] == "0" else "proj_bn"
      module, leaf = f"stages.{stage}.{block}.{sub}", parts[-1]
    else:
      raise ValueError(f"unexpected torchvision key {key!r}")
    value = np.asarray(value)
    if value.ndim == 4:  # conv weight
      out[f"encoder.{module}.kernel"] = value.transpose(2, 3, 1, 0)
    else:
      out[f"encoder.{module}.{_BN_LEAVES[leaf]}"] = value
  return out


def apply(tree, weights: dict[str, np.ndarray], where: str):
  """``tree`` (params or batch statistics) with every leaf named in ``weights`` replaced.

  Returns:
    (new tree, set of the weight names used).
  """
  used = set()

  def replace(path, leaf):
    name = pytrees.path_name(path)
    if name not in weights:
      return leaf
    value = weights[name]
    if value.shape != leaf.shape:
      raise ValueError(f"{where}: {name} has shape {value.shape}, the model needs {leaf.shape}")
    used.add(name)
    return np.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(replace, tree), used


def load_into(path: str, params, model_state):
  """Loads ``path`` (the format above) into the model's params and batch statistics."""
  try:
    with np.load(path) as f:
      weights = dict(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"config.model.init_from={path}: cannot read ({e})") from None
  params, used_p = apply(params, weights, path)
  model_state, used_s = apply(model_state, weights, path)
  unused = sorted(set(weights) - used_p - used_s)
  if unused or not weights:
    raise ValueError(
      f"{path}: {len(unused)} key(s) match no parameter of the model (e.g. {unused[:3]}); "
      "is it a ResNet-50 with the default width?"
    )
  return params, model_state


def main(argv: list[str]) -> None:
  import argparse

  parser = argparse.ArgumentParser(description="torchvision ResNet .pth -> regcls-jax .npz")
  parser.add_argument("--torchvision", required=True)
  parser.add_argument("--out", required=True)
  args = parser.parse_args(argv)
  import torch  # only for this conversion

  state = torch.load(args.torchvision, map_location="cpu", weights_only=True)
  np.savez(args.out, **torchvision_to_encoder({k: v.numpy() for k, v in state.items()}))
  print(args.out)


if __name__ == "__main__":
  main(sys.argv[1:])
