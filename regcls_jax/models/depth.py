"""The depth network of Hu et al. (WACV 2019) as NYUD2-DIR uses it, with the paper's per-pixel
classification head (Sec. 3.2, Tab. 2), in Flax NNX, NHWC.

Input 228 x 304 RGB (ImageNet-normalised, `data.transforms.Nyud2Train`). A ResNet-50 encoder
gives 4 blocks (57x76, 29x38, 15x19, 8x10); the decoder D upsamples block 4 back to 114 x 152,
multi-scale feature fusion (MFF) brings every block to 114 x 152, the refinement R merges them
and a 5x5 conv gives depth at 114 x 152. The train-only cls head (Mask R-CNN style: transposed
2x2 conv stride 2, ReLU, 1x1 conv to K) gives logits at 228 x 304. Up-projections resize
bilinearly with ``align_corners=True`` (as the reference), here as two small matmuls.

``width`` scales every channel count (64 = the reference: encoder 256..2048, decoder
1024..64, MFF 16 per block); a small width is for CPU tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from regcls_jax.models.resnet import RESNET50_STAGES, ResNetEncoder, batch_norm, conv, conv_init


def _interp_matrix(size_in: int, size_out: int) -> np.ndarray:
  """``[size_out, size_in]`` bilinear weights with align_corners=True."""
  if size_out == 1 or size_in == 1:
    m = np.zeros((size_out, size_in), np.float32)
    m[:, 0] = 1.0
    return m
  src = np.arange(size_out) * (size_in - 1) / (size_out - 1)
  lo = np.minimum(np.floor(src).astype(int), size_in - 2)
  frac = (src - lo).astype(np.float32)
  m = np.zeros((size_out, size_in), np.float32)
  m[np.arange(size_out), lo] = 1 - frac
  m[np.arange(size_out), lo + 1] += frac
  return m


def resize_align_corners(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Bilinear resize of ``[B, H, W, C]`` to ``size`` = (H', W') with align_corners=True."""
  h, w = x.shape[1:3]
  if (h, w) == tuple(size):
    return x
  mh = jnp.asarray(_interp_matrix(h, size[0]), x.dtype)
  mw = jnp.asarray(_interp_matrix(w, size[1]), x.dtype)
  x = jnp.einsum("oh,bhwc->bowc", mh, x)
  return jnp.einsum("pw,bowc->bopc", mw, x)


class UpProjection(nnx.Module):
  """Resize to ``size``, then ReLU([5x5, BN, ReLU, 3x3, BN] + [5x5, BN]); convs without bias."""

  def __init__(self, cin: int, cout: int, *, dtype, rngs: nnx.Rngs):
    self.conv1 = conv(cin, cout, 5, dtype=dtype, rngs=rngs)
    self.bn1 = batch_norm(cout, dtype=dtype, rngs=rngs)
    self.conv2 = conv(cout, cout, 3, dtype=dtype, rngs=rngs)
    self.bn2 = batch_norm(cout, dtype=dtype, rngs=rngs)
    self.conv_skip = conv(cin, cout, 5, dtype=dtype, rngs=rngs)
    self.bn_skip = batch_norm(cout, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, size: tuple[int, int]) -> jax.Array:
    x = resize_align_corners(x, size)
    y = self.bn2(self.conv2(jax.nn.relu(self.bn1(self.conv1(x)))))
    return jax.nn.relu(y + self.bn_skip(self.conv_skip(x)))


class DepthNet(nnx.Module):
  """Hu et al.'s model + optional per-pixel cls head.

  ``__call__(image [B, 228, 304, 3])`` returns ``(depth [B, 114, 152] f32, logits [B, 228, 304,
  K] f32 or None)``; ``predict`` only the depth.
  """

  def __init__(
    self,
    num_classes: int = 0,
    width: int = 64,
    stage_sizes: Sequence[int] = RESNET50_STAGES,
    *,
    dtype=jnp.bfloat16,
    rngs: nnx.Rngs,
  ):
    self.encoder = ResNetEncoder(width, stage_sizes, dtype=dtype, rngs=rngs)
    c1, c2, c3, c4 = self.encoder.channels  # 256, 512, 1024, 2048 at width 64
    kw = dict(dtype=dtype, rngs=rngs)
    # Decoder D.
    self.d_conv = conv(c4, c4 // 2, 1, **kw)
    self.d_bn = batch_norm(c4 // 2, **kw)
    self.d_up = nnx.List([UpProjection(c4 // 2**i, c4 // 2 ** (i + 1), **kw) for i in range(1, 5)])
    # Multi-scale feature fusion: every block to width // 4 channels at the output size.
    mff = max(width // 4, 1)
    self.mff_up = nnx.List([UpProjection(c, mff, **kw) for c in (c1, c2, c3, c4)])
    self.mff_conv = conv(4 * mff, 4 * mff, 5, **kw)
    self.mff_bn = batch_norm(4 * mff, **kw)
    # Refinement R on concat(D, MFF) and the regression conv.
    r = c4 // 32 + 4 * mff  # 64 + 64 = 128 at width 64
    self.r_conv1 = conv(r, r, 5, **kw)
    self.r_bn1 = batch_norm(r, **kw)
    self.r_conv2 = conv(r, r, 5, **kw)
    self.r_bn2 = batch_norm(r, **kw)
    self.reg_conv = conv(r, 1, 5, bias=True, **kw)
    if num_classes:
      self.cls_up = nnx.ConvTranspose(
        r, 2 * r, (2, 2), strides=(2, 2), padding="VALID", kernel_init=conv_init,
        dtype=dtype, param_dtype=jnp.float32, rngs=rngs,
      )  # fmt: skip
      self.cls_conv = conv(2 * r, num_classes, 1, bias=True, **kw)
    else:
      self.cls_up = self.cls_conv = None

  def refined(self, image: jax.Array) -> jax.Array:
    """R's last features ``[B, 114, 152, 128]`` (at width 64)."""
    b1, b2, b3, b4 = self.encoder(image)
    out_size = (2 * b1.shape[1], 2 * b1.shape[2])
    sizes = [b3.shape[1:3], b2.shape[1:3], b1.shape[1:3], out_size]
    d = jax.nn.relu(self.d_bn(self.d_conv(b4)))
    for up, size in zip(self.d_up, sizes):
      d = up(d, size)
    m = jnp.concatenate([up(b, out_size) for up, b in zip(self.mff_up, (b1, b2, b3, b4))], -1)
    m = jax.nn.relu(self.mff_bn(self.mff_conv(m)))
    x = jnp.concatenate([d, m], axis=-1)
    x = jax.nn.relu(self.r_bn1(self.r_conv1(x)))
    return jax.nn.relu(self.r_bn2(self.r_conv2(x)))

  def __call__(self, image: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    h = self.refined(image)
    depth = self.reg_conv(h)[..., 0].astype(jnp.float32)
    if self.cls_up is None:
      return depth, None
    logits = self.cls_conv(jax.nn.relu(self.cls_up(h)))
    return depth, logits.astype(jnp.float32)

  def predict(self, image: jax.Array) -> jax.Array:
    return self.reg_conv(self.refined(image))[..., 0].astype(jnp.float32)
