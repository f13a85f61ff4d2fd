"""ResNet-50 / Hu et al. models and the shared step with batch norm, sharding, accumulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from regcls_jax.models.depth import DepthNet, resize_align_corners
from regcls_jax.models.resnet import AgeResNet


def test_resnet50_has_torchvisions_parameter_count():
  model = nnx.eval_shape(lambda: AgeResNet(0, rngs=nnx.Rngs(0)))
  n = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert n == 23_508_032 + 2048 + 1  # torchvision resnet50 without fc, plus the 2048 -> 1 head


def test_depth_net_shapes():
  # Shapes only: traced abstractly (the full forward is run by the depth trainer's tests).
  model = DepthNet(7, width=8, stage_sizes=(1, 1, 1, 1), dtype=jnp.float32, rngs=nnx.Rngs(0))
  x = jax.ShapeDtypeStruct((1, 228, 304, 3), jnp.float32)
  depth, logits = nnx.eval_shape(lambda m, v: m(v), model, x)
  assert depth.shape == (1, 114, 152) and logits.shape == (1, 228, 304, 7)
  assert nnx.eval_shape(lambda m, v: m.predict(v), model, x).shape == (1, 114, 152)


def _align_corners_reference(x, out_h, out_w):
  """Bilinear resize with align_corners=True, pixel by pixel (PyTorch's formula)."""
  h, w = x.shape
  out = np.zeros((out_h, out_w))
  for i in range(out_h):
    for j in range(out_w):
      y = i * (h - 1) / (out_h - 1)
      z = j * (w - 1) / (out_w - 1)
      y0, z0 = min(int(y), h - 2), min(int(z), w - 2)
      fy, fz = y - y0, z - z0
      out[i, j] = (
        x[y0, z0] * (1 - fy) * (1 - fz)
        + x[y0 + 1, z0] * fy * (1 - fz)
        + x[y0, z0 + 1] * (1 - fy) * fz
        + x[y0 + 1, z0 + 1] * fy * fz
      )
  return out


@pytest.mark.parametrize("size", [(15, 19), (8, 10), (29, 38)])
def test_resize_align_corners_matches_the_formula(size):
  x = np.random.default_rng(0).random((8, 10))
  got = np.asarray(resize_align_corners(jnp.asarray(x)[None, :, :, None], size))[0, :, :, 0]
  np.testing.assert_allclose(got, _align_corners_reference(x, *size), rtol=1e-5, atol=1e-6)


def test_torchvision_weights_load_into_the_encoder(tmp_path):
  """A torchvision-named state dict (made here from a model's own arrays) loads back exactly."""
  from regcls_jax.models import pretrained

  model = AgeResNet(0, width=4, stage_sizes=(1, 2, 1, 1), dtype=jnp.float32, rngs=nnx.Rngs(1))
  enc = model.encoder
  sd = {"conv1.weight": np.asarray(enc.stem.kernel[...]).transpose(3, 2, 0, 1), "fc.weight": 0}
  sd["bn1.running_var"] = np.asarray(enc.stem_bn.var[...])
  block = enc.stages[1][1]
  sd["layer2.1.conv2.weight"] = np.asarray(block.conv2.kernel[...]).transpose(3, 2, 0, 1)
  sd["layer2.1.bn3.weight"] = np.asarray(block.bn3.scale[...])
  sd["layer1.0.downsample.1.running_mean"] = np.asarray(enc.stages[0][0].proj_bn.mean[...])
  weights = pretrained.torchvision_to_encoder(sd)
  assert sorted(weights) == [
    "encoder.stages.0.0.proj_bn.mean", "encoder.stages.1.1.bn3.scale",
    "encoder.stages.1.1.conv2.kernel", "encoder.stem.kernel", "encoder.stem_bn.var",
  ]  # fmt: skip
  path = tmp_path / "w.npz"
  np.savez(path, **{k: v + 1.0 for k, v in weights.items()})
  fresh = AgeResNet(0, width=4, stage_sizes=(1, 2, 1, 1), dtype=jnp.float32, rngs=nnx.Rngs(2))
  _, p2, s2 = nnx.split(fresh, nnx.Param, ...)
  p2, s2 = pretrained.load_into(str(path), p2, s2)
  loaded = nnx.merge(nnx.graphdef(fresh), p2, s2)
  np.testing.assert_array_equal(loaded.encoder.stem.kernel[...], enc.stem.kernel[...] + 1)
  np.testing.assert_array_equal(loaded.encoder.stem_bn.var[...], enc.stem_bn.var[...] + 1)
  np.testing.assert_array_equal(
    loaded.encoder.stages[1][1].conv2.kernel[...], block.conv2.kernel[...] + 1
  )
  np.savez(path, **{"encoder.stem.kernel": np.zeros((3, 3, 3, 4))})
  with pytest.raises(ValueError, match="encoder.stem.kernel has shape"):
    pretrained.load_into(str(path), p2, s2)
  np.savez(path, **{"encoder.head.kernel": np.zeros(3)})
  with pytest.raises(ValueError, match="match no parameter"):
    pretrained.load_into(str(path), p2, s2)
