"""Training objectives selectable by config: the paper's reg / reg+cls and the peers' baselines.

Every experiment family names its method with a string (``config.method`` or the 1D grid's
``config.methods``) and calls the same three functions:

* `fit_priors` (host, numpy): what a method needs from the training labels, as fixed-shape
  arrays: the uniform label bins, LDS bin weights, BNI bin weights, a GMM for GAI, the support
  of the histogram losses. Methods that do not need an array get a harmless placeholder, so the
  priors of different methods stack along a vmapped model axis.
* `objective` (pure, jittable): the training loss of one method on the model's outputs.
* `predict`: the test-time prediction (the regression head, or the histogram's expectation).

Methods with the regression head only (`REG_HEAD`) share one parameter shape, as do those
with a classification / histogram head of K outputs (`CLS_HEAD`); `switch` selects a method by
a (possibly per-model, traced) index, which is how the 1D program puts methods on its vmapped
axis. Formulas: `losses` (paper Eq. 3, 4, 13), `baselines`, `denseloss`, `ranksim`, `conr`.

RankSim and ConR are regularisers on the batch's features (`FEATURE_LOSSES`): a family passes
``features`` to `objective`; ConR also needs the batch to hold two augmented views of each input
(`TWO_VIEWS`; the family builds them). ``regcls+ranksim`` adds RankSim to reg+cls.

Like the paper's objective, every loss is multiplied by the global scale ``s``; reg+cls keeps
its ``lam`` on the regression term, the baselines have no lambda.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from regcls_jax.method import baselines, binning, conr, denseloss, losses, ranksim

REG_HEAD = ("reg", "lds", "focal_r", "bmc", "gai", "bni", "fds", "dense", "ranksim", "conr")
CLS_HEAD = ("regcls", "two_hot", "hl_gauss", "regcls+ranksim")
METHODS = REG_HEAD + CLS_HEAD
# Regularisers on the batch's features (`objective`'s ``features``), and the one of them that
# needs two augmented views of every input in the batch.
FEATURE_LOSSES = ("ranksim", "conr", "regcls+ranksim")
TWO_VIEWS = ("conr",)
# Methods that train on the classes of the targets (``batch['cls']``, Eq. 12-13).
CLASSIFIES = ("regcls", "regcls+ranksim")
HISTOGRAM = ("two_hot", "hl_gauss")
# FDS changes the forward pass (features re-calibrated per label bucket before the regression
# head, fds.py); its loss is the plain regression loss on that prediction. Only the 1D program
# runs it: it needs an epoch-end pass over all training features.
FEATURE_METHODS = ("fds",)


@dataclasses.dataclass(frozen=True)
class Settings:
  """Hyper-parameters of the baselines (``config.peers``; defaults: docs/baselines.md)."""

  bins: int = 100  # label bins of LDS and BNI, uniform over the training range
  lds_kernel: str = "gaussian"
  lds_size: int = 5
  lds_sigma: float = 2.0
  lds_reweight: str = "sqrt_inv"
  lds_padding: str = "constant"
  focal_beta: float = 0.2
  focal_gamma: float = 1.0
  focal_kind: str = "l1"
  bmse_sigma: float = 1.0  # fixed noise scale of BMC / GAI / BNI (the NYUD2 setting)
  gmm_components: int = 8
  hl_gauss_ratio: float = 0.75  # HL-Gauss sigma / bin width
  dense_alpha: float = 1.0  # DenseLoss: w*(y) = max(1 - alpha p'(y), eps)
  dense_bandwidth: float = 0.0  # its KDE bandwidth; 0: Silverman's rule
  ranksim_gamma: float = 100.0  # RankSim's weight (the authors' --regularization_weight)
  ranksim_lambda: float = 2.0  # its blackbox interpolation strength (--interpolation_lambda)
  conr_beta: float = 4.0  # ConR's weight
  conr_window: float = 1.0  # w: labels closer than this are positives (label units)
  conr_temperature: float = 0.07
  conr_push: float = 0.01  # e of the pushing weight exp(e |y_i - y_k|)

  @classmethod
  def from_config(cls, peers) -> Settings:
    """From a ConfigDict / dict; unknown keys are an error naming ``config.peers.<key>``."""
    values = dict(peers or {})
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
      if key not in names:
        raise ValueError(f"config.peers.{key}: unknown setting; expected one of {sorted(names)}")
    settings = cls(**values)
    settings.validate()
    return settings

  def validate(self) -> None:
    if self.bins < 2:
      raise ValueError(f"config.peers.bins: expected >= 2, got {self.bins}")
    if self.lds_kernel not in baselines.KERNELS:
      raise ValueError(
        f"config.peers.lds_kernel: {self.lds_kernel!r}; expected one of {baselines.KERNELS}"
      )
    if self.lds_reweight not in ("sqrt_inv", "inverse"):
      raise ValueError(
        f"config.peers.lds_reweight: {self.lds_reweight!r}; expected sqrt_inv|inverse"
      )
    if self.lds_padding not in ("constant", "reflect"):
      raise ValueError(f"config.peers.lds_padding: {self.lds_padding!r}; expected constant|reflect")
    if self.focal_kind not in ("l1", "mse"):
      raise ValueError(f"config.peers.focal_kind: {self.focal_kind!r}; expected l1 or mse")
    for key in (
      "bmse_sigma", "hl_gauss_ratio", "lds_sigma", "ranksim_lambda", "conr_window",
      "conr_temperature",
    ):  # fmt: skip
      if not getattr(self, key) > 0:
        raise ValueError(f"config.peers.{key}: expected > 0, got {getattr(self, key)!r}")
    for key in ("dense_alpha", "dense_bandwidth", "ranksim_gamma", "conr_beta", "conr_push"):
      if not getattr(self, key) >= 0:
        raise ValueError(f"config.peers.{key}: expected >= 0, got {getattr(self, key)!r}")
    if self.gmm_components < 1:
      raise ValueError(f"config.peers.gmm_components: expected >= 1, got {self.gmm_components}")


def check_method(name: str, key: str = "config.method", allowed: Sequence[str] = METHODS) -> None:
  if name not in allowed:
    raise ValueError(f"{key}: unknown method {name!r}; expected one of {tuple(allowed)}")


def head_classes(method: str, num_classes: int) -> int:
  """Outputs of the classification / histogram head a method trains (0: none)."""
  return num_classes if method in CLS_HEAD else 0


# ---------------------------------------------------------------------------------------------
# Priors from the training labels (host).


def fit_priors(
  method: str,
  targets: np.ndarray,
  settings: Settings,
  num_classes: int = 0,
  counts: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
  """Fixed-shape float32 arrays a method needs from its training labels.

  Args:
    method: one of `METHODS`.
    targets: training labels (any shape), or the distinct values of a histogram with ``counts``.
    settings: the baselines' hyper-parameters.
    num_classes: K of the classification / histogram head (0 without one).
    counts: optional multiplicity of each entry of ``targets``.

  Returns:
    ``edges [M + 1]`` (uniform label bins), ``lds [M]`` (LDS weight per bin), ``bni [M]``
    (normalised label counts per bin), ``gmm_pi, gmm_mu, gmm_var [G]`` (GAI) and, with a head,
    ``hist_edges [K + 1]`` (histogram support: uniform over the training range).
  """
  y = np.asarray(targets, np.float64).ravel()
  w = np.ones_like(y) if counts is None else np.asarray(counts, np.float64).ravel()
  m, g = settings.bins, settings.gmm_components
  edges = _support(y, m)
  bins = binning.assign_classes(y, edges)
  out = {"edges": edges, "lds": np.ones(m), "bni": np.full(m, 1.0 / m)}
  out |= {"gmm_pi": np.full(g, 1.0 / g), "gmm_mu": np.zeros(g), "gmm_var": np.ones(g)}
  out |= {"dense_grid": np.linspace(0.0, 1.0, denseloss.GRID_POINTS)}
  out |= {"dense_w": np.ones(denseloss.GRID_POINTS)}
  if method == "lds":
    out["lds"] = baselines.lds_bin_weights(
      bins,
      m,
      kernel=settings.lds_kernel,
      size=settings.lds_size,
      sigma=settings.lds_sigma,
      reweight=settings.lds_reweight,
      padding=settings.lds_padding,
      counts_weight=w,
    )
  elif method == "bni":
    hist = np.bincount(bins, weights=w, minlength=m)
    out["bni"] = hist / hist.sum()
  elif method == "gai":
    sample = y if counts is None else np.repeat(y, np.maximum(np.round(w), 0).astype(np.int64))
    out["gmm_pi"], out["gmm_mu"], out["gmm_var"] = baselines.fit_gmm(sample, g)
  elif method == "dense":
    sample = y if counts is None else np.repeat(y, np.maximum(np.round(w), 0).astype(np.int64))
    out["dense_grid"], out["dense_w"] = denseloss.fit_weights(
      sample, settings.dense_alpha, settings.dense_bandwidth or None
    )
  if num_classes:
    out["hist_edges"] = _support(y, num_classes)
  return {k: np.asarray(v, np.float32) for k, v in out.items()}


def _support(y: np.ndarray, n: int) -> np.ndarray:
  """``n`` uniform bins over the training range; a single label value gets a unit-wide range
  around it (zero-width bins would make the histogram targets 0 / 0)."""
  if y.size and y.min() == y.max():
    y = np.array([y[0] - 0.5, y[0] + 0.5])
  return binning.uniform_edges(y, n)


# ---------------------------------------------------------------------------------------------
# Objectives and predictions (pure).


def _flat(*arrays):
  return tuple(None if a is None else a.reshape(-1) for a in arrays)


def _baseline(method, pred, target, weight, priors, settings: Settings) -> jax.Array:
  """One baseline's loss (before the scale ``s``), elementwise methods flattened over pixels."""
  if method == "lds":
    lds = priors["lds"][binning.assign_classes_device(target, priors["edges"])]
    w = lds if weight is None else lds * weight
    return losses.regression_loss(pred, target, w, "mse", "sum") / _count(target, weight)
  if method == "dense":
    dense = denseloss.lookup(priors["dense_grid"], priors["dense_w"], target)
    w = dense if weight is None else dense * weight
    return losses.regression_loss(pred, target, w, "mse", "sum") / _count(target, weight)
  if method == "focal_r":
    p, t, w = _flat(pred, target, weight)
    return baselines.focal_r(
      p, t, settings.focal_beta, settings.focal_gamma, settings.focal_kind, weight=w
    )
  sigma = jnp.float32(settings.bmse_sigma)
  if method == "bmc":
    if pred.ndim != 1:
      raise ValueError("method 'bmc' needs one target per sample; use 'gai' or 'bni' for depth")
    return baselines.bmc_loss(pred, target, sigma, weight)
  p, t, w = _flat(pred, target, weight)
  if method == "gai":
    gmm = (priors["gmm_pi"], priors["gmm_mu"], priors["gmm_var"])
    return baselines.gai_loss(p, t, sigma, gmm, w)
  if method == "bni":
    centres = baselines.bin_centres(priors["edges"])
    return baselines.bni_loss(p, t, sigma, centres, priors["bni"], w)
  raise ValueError(f"unknown baseline {method!r}")


def _count(target, weight) -> jax.Array:
  if weight is None:
    return jnp.float32(target.size)
  return jnp.maximum(jnp.sum((weight > 0).astype(jnp.float32)), 1.0)


def histogram_targets(method: str, target, hist_edges, settings: Settings) -> jax.Array:
  """``[..., K]`` target distribution of a histogram method (Farebrother et al. 2024)."""
  t = target.reshape(-1)
  if method == "two_hot":
    probs = baselines.two_hot(t, baselines.bin_centres(hist_edges))
  else:
    width = hist_edges[1] - hist_edges[0]
    probs = baselines.hl_gauss(t, hist_edges, settings.hl_gauss_ratio * width)
  return probs.reshape(*target.shape, -1)


def objective(
  method: str,
  pred: jax.Array,
  logits: jax.Array | None,
  batch: dict,
  priors: dict,
  hparams: dict,
  settings: Settings,
  reg_kind: str = "mse",
  reg_reduction: str = "mean",
  features: jax.Array | None = None,
) -> jax.Array:
  """The training loss of ``method`` (a scalar), times the scale ``hparams['scale']``.

  Args:
    method: one of `METHODS` (static).
    pred: regression output ``[B, ...]``; logits: head outputs ``[B, ..., K]`` or None.
    batch: ``y``; optional ``weight`` (validity), ``cls`` and ``cls_mask`` (reg+cls, Eq. 13).
    priors: `fit_priors` arrays (numpy or traced).
    hparams: ``lam`` and ``scale``.
    reg_kind, reg_reduction: the regression term of reg / reg+cls (`losses.reg_cls_loss`).
    features: ``[B, ...]`` the batch's features, for `FEATURE_LOSSES` (for ConR of both views:
      the batch holds them).
  """
  target, weight, scale = batch["y"], batch.get("weight"), hparams["scale"]
  priors = {k: jnp.asarray(v) for k, v in priors.items()}  # host arrays become constants
  if method == "fds":  # ``pred`` comes from the re-calibrated features
    method = "reg"
  if method in FEATURE_LOSSES and features is None:
    raise ValueError(f"method {method!r} needs the batch's features; this family passes none")
  if method in ("reg", "regcls", "ranksim", "conr", "regcls+ranksim"):
    loss, _ = losses.reg_cls_loss(
      pred,
      target,
      logits if method in ("regcls", "regcls+ranksim") else None,
      batch.get("cls"),
      lam=hparams["lam"],
      scale=scale,
      weight=weight,
      cls_mask=batch.get("cls_mask"),
      reg_kind=reg_kind,
      reg_reduction=reg_reduction,
    )
    if method in ("ranksim", "regcls+ranksim"):
      term = ranksim.ranksim_loss(features, target, settings.ranksim_lambda, weight)
      loss = loss + scale * settings.ranksim_gamma * term
    elif method == "conr":
      term = conr.conr_loss(
        features, target, pred, settings.conr_window, settings.conr_temperature,
        settings.conr_push, valid=weight,
      )  # fmt: skip
      loss = loss + scale * settings.conr_beta * term
    return loss
  if method in HISTOGRAM:
    probs = histogram_targets(method, target, priors["hist_edges"], settings)
    k = logits.shape[-1]
    w = None if weight is None else weight.reshape(-1)
    return scale * baselines.histogram_loss(logits.reshape(-1, k), probs.reshape(-1, k), w)
  return scale * _baseline(method, pred, target, weight, priors, settings)


def predict(method: str, pred: jax.Array, logits: jax.Array | None, priors: dict) -> jax.Array:
  """Test-time prediction: the regression head, or a histogram method's expected bin centre."""
  if method in HISTOGRAM:
    edges = jnp.asarray(priors["hist_edges"])
    return baselines.histogram_decode(logits, baselines.bin_centres(edges))
  return pred


def switch(methods: Sequence[str], index: jax.Array | int, fn: Callable[[str], jax.Array]):
  """``fn(methods[index])`` for a traced ``index``: a plain call for one method, else
  ``lax.switch`` (under ``vmap`` with a per-model index every branch runs and one is kept)."""
  if len(methods) == 1:
    return fn(methods[0])
  return jax.lax.switch(index, [functools.partial(fn, m) for m in methods])
