"""Grain transforms: the reference's augmentations, class-keep masking and re-balancing.

Every random transform is a `grain.transforms.RandomMap`, drawing only from the ``rng`` Grain
derives from the seed and the record's position in the global order. So a batch depends only on
(seed, step): two runs agree, a restored iterator continues exactly, and every epoch draws anew.

Elements after the dataset transform are dicts with ``label`` (the regression target: a scalar,
or a [114, 152] depth map) and the input (``image`` or ``features``).
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np
from PIL import Image

from regcls_jax.data import common, nyud2
from regcls_jax.method import binning

# ImageNet statistics (Hu et al.'s NYUD2 transforms).
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
PCA_EIGVEC = np.array(
  [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]], np.float32
)
IMDB_PAD = 16


def normalize_dir_image(image):
  """IMDB-WIKI-DIR's normalisation, ``(x / 255 - 0.5) / 0.5``, of uint8 images.

  The IMDB-WIKI pipeline ships uint8 images (4x less inter-process traffic than float32) and the
  model applies this first; it works on numpy and jax arrays alike.
  """
  return image.astype("float32") * (2.0 / 255.0) - 1.0


# ---------------------------------------------------------------------------------------------
# IMDB-WIKI-DIR


class ImdbWikiTrain(grain.transforms.RandomMap):
  """DIR's train transform after the resize: zero-pad 16, random 224 crop, random h-flip.

  In: ``{image uint8 [S, S, 3], age}``. Out: ``{image uint8 [S, S, 3], label f32}``; with
  ``views=2`` also ``image_view2``, a second draw of the same transform (ConR's views).
  The image folder (`image_folder`) uses it with its own ``label_key``, a padding scaled to its
  image size, and its targets standardised: ``label = (target - shift) / scale``.
  """

  def __init__(self, views: int = 1, label_key: str = "age", pad: int = IMDB_PAD,
               shift: float = 0.0, scale: float = 1.0):  # fmt: skip
    if views not in (1, 2):
      raise ValueError(f"config.data.views: expected 1 or 2, got {views}")
    self.views, self.label_key, self.pad = views, label_key, pad
    self.shift, self.scale = shift, scale

  def _view(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size, pad = image.shape[0], self.pad
    # Offsets of the crop in the padded image; copy the overlap straight into a zero canvas
    # rather than building the padded image first (half the memory traffic).
    top, left = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
    src_y = slice(max(top - pad, 0), min(top - pad + size, size))
    src_x = slice(max(left - pad, 0), min(left - pad + size, size))
    dst_y = slice(max(pad - top, 0), max(pad - top, 0) + src_y.stop - src_y.start)
    dst_x = slice(max(pad - left, 0), max(pad - left, 0) + src_x.stop - src_x.start)
    out = np.zeros_like(image)
    out[dst_y, dst_x] = image[src_y, src_x]
    if rng.random() < 0.5:
      out = out[:, ::-1].copy()
    return out

  def random_map(self, element, rng: np.random.Generator):
    label = np.float32((element[self.label_key] - self.shift) / self.scale)
    out = {"image": self._view(element["image"], rng), "label": label}
    if self.views == 2:
      out["image_view2"] = self._view(element["image"], rng)
    return out


@dataclasses.dataclass(frozen=True)
class ImdbWikiEval(grain.transforms.Map):
  """DIR's eval transform after the resize (nothing left but the normalisation, on device);
  ``label_key``, ``shift`` and ``scale`` as `ImdbWikiTrain`."""

  label_key: str = "age"
  shift: float = 0.0
  scale: float = 1.0

  def map(self, element):
    label = np.float32((element[self.label_key] - self.shift) / self.scale)
    return {"image": element["image"], "label": label}


# ---------------------------------------------------------------------------------------------
# NYUD2-DIR


def _depth_metres(element) -> np.ndarray:
  units = common.decode(element["depth"])
  return units.astype(np.float32) * np.float32(element["depth_scale"])


def _normalize_imagenet(image: np.ndarray) -> np.ndarray:
  return (image - IMAGENET_MEAN) / IMAGENET_STD


def _grey(image: np.ndarray) -> np.ndarray:
  return image @ np.array([0.299, 0.587, 0.114], np.float32)


def lighting(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """AlexNet-style PCA lighting noise: adds ``eigvec @ (alpha * eigval)`` to every pixel."""
  return image + PCA_EIGVEC @ (alpha.astype(np.float32) * PCA_EIGVAL)


def color_jitter(image: np.ndarray, factors: np.ndarray, order: np.ndarray) -> np.ndarray:
  """Brightness, contrast and saturation (Hu et al.'s ColorJitter), applied in ``order``.

  Args:
    image: float32 ``[H, W, 3]`` in [0, 1] (before normalisation).
    factors: the three blend factors ``1 + U(-0.4, 0.4)`` for brightness, contrast, saturation.
    order: a permutation of (0, 1, 2).
  """
  for op in order:
    a = np.float32(factors[op])
    if op == 0:  # brightness: blend with black
      image = image * a
    elif op == 1:  # contrast: blend with the mean grey level
      image = image * a + np.float32(_grey(image).mean()) * (1 - a)
    else:  # saturation: blend with the grey image
      image = image * a + _grey(image)[..., None] * (1 - a)
  return image


def resize_align_corners(a: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
  """Bilinear resize of a 2-D array with ``align_corners=True`` (corner pixels map onto corner
  pixels: output row i samples input row ``i * (h - 1) / (H - 1)``), as torch's
  ``F.interpolate(..., mode='bilinear', align_corners=True)``."""
  a = np.asarray(a, np.float32)
  out = a
  for axis, size in enumerate(out_hw):
    n = a.shape[axis]
    pos = np.arange(size, dtype=np.float64) * ((n - 1) / max(size - 1, 1))
    lo = np.minimum(np.floor(pos).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = (pos - lo).astype(np.float32)
    shape = [1, 1]
    shape[axis] = size
    frac = frac.reshape(shape)
    out = np.take(out, lo, axis=axis) * (1 - frac) + np.take(out, hi, axis=axis) * frac
  return out


class Nyud2Train(grain.transforms.RandomMap):
  """Hu et al.'s train transform after the resize to short side 240 (order as in DATA.md).

  Random h-flip; rotation in +-5 degrees (bilinear for the image, nearest for depth); centre
  crop 304 x 228; depth target resized to 152 x 114 (bilinear); [0, 1]; PCA lighting (std 0.1);
  colour jitter 0.4; ImageNet normalisation. The cls head's targets come, as in the authors'
  depth code, from the 114 x 152 target upsampled x2 (bilinear, align_corners=True).

  Out: ``image`` f32 [228, 304, 3], ``label`` f32 [114, 152] metres, ``label_full`` f32
  [228, 304] metres (the per-pixel cls head's target resolution).
  """

  def random_map(self, element, rng: np.random.Generator):
    image = Image.fromarray(element["image"])
    depth = Image.fromarray(_depth_metres(element))
    if rng.random() < 0.5:
      image = image.transpose(Image.FLIP_LEFT_RIGHT)
      depth = depth.transpose(Image.FLIP_LEFT_RIGHT)
    angle = float(rng.uniform(-5.0, 5.0))
    image = image.rotate(angle, resample=Image.BILINEAR)
    depth = depth.rotate(angle, resample=Image.NEAREST)
    image = nyud2.center_crop(np.asarray(image), nyud2.CROP_HW)
    full = np.ascontiguousarray(nyud2.center_crop(np.asarray(depth), nyud2.CROP_HW))
    h, w = nyud2.TARGET_HW
    target = np.asarray(Image.fromarray(full).resize((w, h), resample=Image.BILINEAR))
    cls_target = resize_align_corners(target, nyud2.CROP_HW)
    x = image.astype(np.float32) / 255.0
    x = lighting(x, rng.normal(0.0, 0.1, size=3))
    x = color_jitter(x, 1.0 + rng.uniform(-0.4, 0.4, size=3), rng.permutation(3))
    return {"image": _normalize_imagenet(x), "label": target, "label_full": cls_target}


class Nyud2Eval(grain.transforms.Map):
  """Hu et al.'s test transform: centre crop 304 x 228 of image and depth, normalisation.

  Out: ``image`` f32 [228, 304, 3], ``label`` f32 [228, 304] metres, ``mask`` bool [228, 304]:
  the balanced test mask on the test split, valid (> 0) depth pixels elsewhere.
  """

  def map(self, element):
    image = nyud2.center_crop(element["image"], nyud2.CROP_HW).astype(np.float32) / 255.0
    depth = np.ascontiguousarray(nyud2.center_crop(_depth_metres(element), nyud2.CROP_HW))
    if element["balanced_mask"]:
      mask = common.decode(element["balanced_mask"]).astype(bool)
    else:
      mask = depth > 0
    return {"image": _normalize_imagenet(image), "label": depth, "mask": mask}


# ---------------------------------------------------------------------------------------------
# Breakfast


@dataclasses.dataclass(frozen=True)
class BreakfastFrame(grain.transforms.Map):
  """Out: ``features`` f32 [64], ``label``: progress as the fraction i / n, in percent
  (100 i / n) or the frame index i (`breakfast.progress_targets`)."""

  target: str = "fraction"

  def map(self, element):
    frame, n = int(element["frame"]), int(element["num_frames"])
    label = {"fraction": frame / n, "percent": 100.0 * frame / n}.get(self.target, float(frame))
    return {"features": element["features"], "label": np.float32(label)}


# ---------------------------------------------------------------------------------------------
# Classes, class-keep masking (Eq. 13) and re-balancing (Tab. 4)


@dataclasses.dataclass(frozen=True)
class ClassKeepMask(grain.transforms.RandomMap):
  """Adds the class of every target and the masks of paper Eq. 13 / appendix B, per batch.

  Runs after batching (vectorised; per-record it cost more than reading a Breakfast frame).
  ``cls`` (int32) is the class of ``batch[source]`` under ``edges``; ``cls_mask`` (bool) is True
  where a fresh uniform draw falls below the class's keep probability, so a sample (or pixel)
  enters the cross-entropy with probability ``keep[cls]``, independently and anew every epoch.
  ``reg_mask`` is all True, or with ``rebalance`` (paper Tab. 4) the same draw, so the kept
  samples are the only ones in both losses. For depth the regression target has half the
  resolution of ``source``: its mask takes every second pixel of the draw.

  Attributes:
    edges: ``[K + 1]`` class edges (`binning.make_classes`).
    keep: ``[K]`` keep probabilities (all ones for plain uniform classes).
    source: the key holding the targets the classes come from (removed afterwards unless it is
      ``label``).
    rebalance: apply the mask to the regression loss too.
  """

  edges: np.ndarray
  keep: np.ndarray
  source: str = "label"
  rebalance: bool = False

  def random_map(self, batch, rng: np.random.Generator):
    batch = dict(batch)
    targets = batch["label"] if self.source == "label" else batch.pop(self.source)
    cls = binning.assign_classes(targets, self.edges)
    mask = rng.random(cls.shape) < np.asarray(self.keep)[cls]
    batch["cls"] = cls
    batch["cls_mask"] = mask
    label_shape = batch["label"].shape
    if self.rebalance:
      stride = cls.shape[1] // label_shape[1] if len(label_shape) > 1 else 1
      batch["reg_mask"] = mask[:, ::stride, ::stride] if stride > 1 else mask
    else:
      batch["reg_mask"] = np.ones(label_shape, bool)
    return batch
