"""ResNet-50 (torchvision's layout, v1.5: stride in the 3x3 conv) in Flax NNX, NHWC, and the age
model of the paper's Sec. 3.2: a regression output and a train-only linear classification head
on the 2048-d pooled features (Tab. 3).

Precision: parameters float32, convolutions and matmuls in ``dtype`` (bfloat16 by default),
batch-norm statistics and the heads' outputs in float32. ``width`` and ``stage_sizes`` shrink
the network for CPU tests (``runlocal``); the defaults are ResNet-50.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

RESNET50_STAGES = (3, 4, 6, 3)
conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")  # torchvision's Kaiming


def conv(cin: int, cout: int, kernel: int, stride: int = 1, *, dtype, rngs, bias: bool = False):
  """A 'SAME'-like conv with torchvision's padding (kernel // 2) and init."""
  pad = kernel // 2
  return nnx.Conv(
    cin,
    cout,
    (kernel, kernel),
    strides=(stride, stride),
    padding=((pad, pad), (pad, pad)),
    use_bias=bias,
    kernel_init=conv_init,
    dtype=dtype,
    param_dtype=jnp.float32,
    rngs=rngs,
  )


def batch_norm(features: int, *, dtype, rngs) -> nnx.BatchNorm:
  """torchvision's BatchNorm2d (momentum 0.1 there is 0.9 here, eps 1e-5)."""
  return nnx.BatchNorm(
    features, momentum=0.9, epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32, rngs=rngs
  )


class Bottleneck(nnx.Module):
  """1x1 -> 3x3 (stride) -> 1x1 (x4 channels), with a projection shortcut when shapes change."""

  def __init__(self, cin: int, width: int, stride: int, *, dtype, rngs: nnx.Rngs):
    cout = width * 4
    self.conv1 = conv(cin, width, 1, dtype=dtype, rngs=rngs)
    self.bn1 = batch_norm(width, dtype=dtype, rngs=rngs)
    self.conv2 = conv(width, width, 3, stride, dtype=dtype, rngs=rngs)
    self.bn2 = batch_norm(width, dtype=dtype, rngs=rngs)
    self.conv3 = conv(width, cout, 1, dtype=dtype, rngs=rngs)
    self.bn3 = batch_norm(cout, dtype=dtype, rngs=rngs)
    if stride != 1 or cin != cout:
      self.proj = conv(cin, cout, 1, stride, dtype=dtype, rngs=rngs)
      self.proj_bn = batch_norm(cout, dtype=dtype, rngs=rngs)
    else:
      self.proj = self.proj_bn = None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = jax.nn.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    shortcut = x if self.proj is None else self.proj_bn(self.proj(x))
    return jax.nn.relu(y + shortcut)


class ResNetEncoder(nnx.Module):
  """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and four bottleneck stages.

  ``__call__`` returns the four stages' outputs (strides 4, 8, 16, 32; channels 4w, 8w, 16w,
  32w for base width w, 256 ... 2048 at w = 64): the depth decoder needs all of them.
  """

  def __init__(
    self,
    width: int = 64,
    stage_sizes: Sequence[int] = RESNET50_STAGES,
    *,
    dtype=jnp.bfloat16,
    rngs: nnx.Rngs,
  ):
    self.dtype = dtype
    self.stem = conv(3, width, 7, 2, dtype=dtype, rngs=rngs)
    self.stem_bn = batch_norm(width, dtype=dtype, rngs=rngs)
    stages, cin = [], width
    for i, blocks in enumerate(stage_sizes):
      w = width * 2**i
      stage = []
      for b in range(blocks):
        stage.append(Bottleneck(cin, w, 2 if (b == 0 and i > 0) else 1, dtype=dtype, rngs=rngs))
        cin = w * 4
      stages.append(nnx.List(stage))
    self.stages = nnx.List(stages)
    self.channels = tuple(width * 4 * 2**i for i in range(len(stage_sizes)))

  def __call__(self, x: jax.Array) -> list[jax.Array]:
    x = jax.nn.relu(self.stem_bn(self.stem(x.astype(self.dtype))))
    x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    outs = []
    for stage in self.stages:
      for block in stage:
        x = block(x)
      outs.append(x)
    return outs


class AgeResNet(nnx.Module):
  """ResNet-50 age regressor with the train-only classification head (paper Tab. 3).

  ``__call__(images)`` returns ``(pred [B] f32, logits [B, K] f32 or None)``; ``predict`` only
  the regression output. Images are uint8 NHWC; DIR's normalisation ``x / 127.5 - 1`` is the
  first op.
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
    features = self.encoder.channels[-1]
    self.reg_head = nnx.Linear(features, 1, param_dtype=jnp.float32, rngs=rngs)
    self.cls_head = (
      nnx.Linear(features, num_classes, param_dtype=jnp.float32, rngs=rngs) if num_classes else None
    )

  def features(self, images: jax.Array) -> jax.Array:
    x = images.astype(jnp.float32) * (2.0 / 255.0) - 1.0  # transforms.normalize_dir_image
    return jnp.mean(self.encoder(x)[-1].astype(jnp.float32), axis=(1, 2))

  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    h = self.features(images)
    logits = self.cls_head(h) if self.cls_head is not None else None
    return self.reg_head(h)[..., 0], logits

  def predict(self, images: jax.Array) -> jax.Array:
    return self.reg_head(self.features(images))[..., 0]
