"""Imbalanced-regression baselines as pure functions, beside reg+cls (docs/baselines.md).

* LDS (Yang et al., ICML 2021): per-sample weights from kernel-smoothed label counts
  (`lds_weights`, numpy, computed once on the host).
* Focal-R (same paper): ``|e| (2 sigmoid(beta |e|) - 1)^gamma`` (`focal_r`).
* Balanced MSE (Ren et al., CVPR 2022): `bmc_loss` (batch Monte-Carlo), `gai_loss` (GMM
  analytical integration, with `fit_gmm` for the GMM of the training labels) and `bni_loss` (bin
  numerical integration). Each is scaled by ``2 sigma^2`` held constant, as the authors do.
* Histogram losses (Farebrother et al., 2024): `two_hot`, `hl_gauss` target distributions,
  `histogram_loss` (their cross-entropy) and `histogram_decode` (expected bin centre).

Losses take ``pred`` and ``target`` of shape ``[B]`` and return a scalar mean over the batch
(optionally weighted); shapes are made explicit (``[B, 1]`` against ``[1, K]``) where the
reference implementations had a missing-axis bug.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage, signal

from regcls_jax.method import losses

KERNELS = ("gaussian", "triang", "laplace")


# ---------------------------------------------------------------------------------------------
# LDS


def lds_kernel(kernel: str, size: int = 5, sigma: float = 2.0) -> np.ndarray:
  """DIR's symmetric smoothing window of odd ``size``, normalised by its maximum."""
  if size % 2 == 0 or size < 1:
    raise ValueError(f"LDS kernel size must be odd and positive, got {size}")
  half = (size - 1) // 2
  if kernel == "gaussian":
    delta = np.zeros(size)
    delta[half] = 1.0
    window = ndimage.gaussian_filter1d(delta, sigma=sigma)
  elif kernel == "triang":
    window = signal.windows.triang(size)
  elif kernel == "laplace":
    x = np.arange(-half, half + 1)
    window = np.exp(-np.abs(x) / sigma) / (2.0 * sigma)
  else:
    raise ValueError(f"unknown LDS kernel {kernel!r}; expected one of {KERNELS}")
  return window / window.max()


def lds_bin_weights(
  bins: np.ndarray,
  num_bins: int,
  kernel: str = "gaussian",
  size: int = 5,
  sigma: float = 2.0,
  reweight: str = "sqrt_inv",
  padding: str = "constant",
  counts_weight: np.ndarray | None = None,
) -> np.ndarray:
  """The LDS weight of each bin: ``1 / smoothed count``, scaled so that the training samples'
  weights average 1; bins whose smoothed count is 0 weigh 0.

  Args:
    bins: ``[N]`` integer bin of every training label (e.g. ``min(age, 120)`` for IMDB-WIKI,
      ``min(int(10 depth), 99)`` for NYUD2).
    num_bins: number of bins.
    kernel, size, sigma: the smoothing window (`lds_kernel`); ``size=1`` turns smoothing off.
    reweight: ``sqrt_inv`` (square root of the counts first) or ``inverse`` (counts clipped to
      [5, 1000] first), as DIR's code.
    padding: ``constant`` (DIR's IMDB-WIKI) or ``reflect`` (its NYUD2) at the histogram's ends.
    counts_weight: optional ``[N]`` multiplicity of each entry of ``bins`` (a histogram given as
      values and counts, e.g. NYUD2's depth histogram).

  Returns:
    float64 ``[num_bins]``.
  """
  bins = np.asarray(bins, np.int64).ravel()
  if bins.size == 0 or bins.min() < 0 or bins.max() >= num_bins:
    raise ValueError(f"LDS bins must be a non-empty array of integers in [0, {num_bins})")
  mult = np.ones(bins.size) if counts_weight is None else np.asarray(counts_weight, np.float64)
  counts = np.bincount(bins, weights=mult, minlength=num_bins).astype(np.float64)
  if reweight == "sqrt_inv":
    counts = np.sqrt(counts)
  elif reweight == "inverse":
    counts = np.clip(counts, 5, 1000)
  else:
    raise ValueError(f"unknown LDS reweighting {reweight!r}; expected sqrt_inv or inverse")
  window = lds_kernel(kernel, size, sigma)
  smoothed = ndimage.convolve1d(counts, window, mode=padding)
  table = np.where(smoothed > 0, 1.0 / np.where(smoothed > 0, smoothed, 1.0), 0.0)
  return table * (mult.sum() / np.sum(table[bins] * mult))


def lds_weights(bins: np.ndarray, num_bins: int, *args, **kwargs) -> np.ndarray:
  """Per-sample LDS weights ``[N]`` (mean 1): `lds_bin_weights` looked up at each bin."""
  return lds_bin_weights(bins, num_bins, *args, **kwargs)[np.asarray(bins, np.int64).ravel()]


# ---------------------------------------------------------------------------------------------
# Focal-R


def focal_r(
  pred: jax.Array,
  target: jax.Array,
  beta: float = 0.2,
  gamma: float = 1.0,
  kind: str = "l1",
  weight: jax.Array | None = None,
) -> jax.Array:
  """Focal-R: the L1 (or squared) error times ``(2 sigmoid(beta |e|) - 1)^gamma``, mean."""
  err = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
  base = err if kind == "l1" else jnp.square(err)
  values = base * jnp.power(2.0 * jax.nn.sigmoid(beta * err) - 1.0, gamma)
  return losses.masked_mean(values, weight)


# ---------------------------------------------------------------------------------------------
# Balanced MSE


def bmc_loss(
  pred: jax.Array, target: jax.Array, sigma: jax.Array, weight: jax.Array | None = None
) -> jax.Array:
  """Balanced MSE, batch Monte-Carlo: CE over ``-(p_i - y_j)^2 / (2 sigma^2)`` with the
  diagonal as labels, times ``2 sigma^2`` (a constant for the gradient).

  Args:
    pred, target: ``[B]``.
    sigma: scalar noise scale (learnable or fixed).
    weight: optional ``[B]`` 0/1 validity: invalid samples are neither rows (predictions) nor
      columns (the batch's label distribution).
  """
  var = jnp.square(sigma)
  logits = -jnp.square(pred[:, None] - target[None, :]) / (2.0 * var)  # [B, B]
  if weight is not None:
    # A large finite negative, not -inf: an all-padding batch must keep finite gradients.
    logits = jnp.where(weight[None, :] > 0, logits, -1e30)
  ce = jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(logits)
  if weight is not None:  # an invalid row's diagonal is masked: zero its term
    ce = jnp.where(weight > 0, ce, 0.0)
  return losses.masked_mean(ce, weight) * jax.lax.stop_gradient(2.0 * var)


def gai_loss(
  pred: jax.Array,
  target: jax.Array,
  sigma: jax.Array,
  gmm: tuple[jax.Array, jax.Array, jax.Array],
  weight: jax.Array | None = None,
) -> jax.Array:
  """Balanced MSE, GMM-based analytical integration.

  ``(p - y)^2 / (2 s^2) + 0.5 log s^2 + logsumexp_k[log pi_k - 0.5 log(v_k + s^2)
  - (p - mu_k)^2 / (2 (v_k + s^2))]``, mean over the batch, times ``2 s^2`` (constant).

  Args:
    pred, target: ``[B]``.
    sigma: scalar.
    gmm: ``(weights [K], means [K], variances [K])`` of the training labels (`fit_gmm`).
    weight: optional ``[B]`` sample weights of the mean.
  """
  pi, mu, v = (jnp.asarray(a, jnp.float32)[None, :] for a in gmm)  # [1, K]
  p = pred[:, None]  # [B, 1]
  var = jnp.square(sigma)
  mse = jnp.square(pred - target) / (2.0 * var)
  total = v + var
  mix = jax.nn.logsumexp(jnp.log(pi) - 0.5 * jnp.log(total) - jnp.square(p - mu) / (2 * total), 1)
  loss = losses.masked_mean(mse + 0.5 * jnp.log(var) + mix, weight)
  return loss * jax.lax.stop_gradient(2.0 * var)


def bni_loss(
  pred: jax.Array,
  target: jax.Array,
  sigma: jax.Array,
  centres: jax.Array,
  bin_weights: jax.Array,
  weight: jax.Array | None = None,
) -> jax.Array:
  """Balanced MSE, bin-based numerical integration.

  ``(p - y)^2 / (2 s^2) + logsumexp_b[log w_b - (p - c_b)^2 / (2 s^2)]``, mean, times
  ``2 s^2`` (constant). The reference drops the constant ``log sqrt(2 pi s^2)`` (and so does
  this), which is why the value can be negative; gradients are unaffected.

  Args:
    pred, target: ``[B]``.
    sigma: scalar.
    centres: ``[M]`` bin centres; bin_weights: ``[M]`` normalised training-label counts (empty
      bins weigh 0 and drop out of the logsumexp).
    weight: optional ``[B]`` sample weights of the mean.
  """
  var = jnp.square(sigma)
  mse = jnp.square(pred - target) / (2.0 * var)
  log_w = jnp.log(jnp.asarray(bin_weights, jnp.float32))[None, :]
  mix = jax.nn.logsumexp(log_w - jnp.square(pred[:, None] - centres[None, :]) / (2 * var), axis=1)
  return losses.masked_mean(mse + mix, weight) * jax.lax.stop_gradient(2.0 * var)


def fit_gmm(
  labels: np.ndarray,
  k: int,
  iters: int = 200,
  seed: int = 0,
  min_var: float = 1e-6,
  tol: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A 1-D Gaussian mixture of the training labels by EM (the GAI prior).

  Initialised at ``k`` distinct labels drawn with ``seed``; variances floored at ``min_var``
  times the label variance (at least ``min_var``), so one repeated label value still gives a
  proper mixture. Stops after ``iters`` iterations or when the mean log-likelihood improves by
  less than ``tol`` (scikit-learn's default criterion).

  Returns:
    float64 ``(weights [k], means [k], variances [k])``.
  """
  y = np.asarray(labels, np.float64).ravel()
  if y.size == 0 or not np.all(np.isfinite(y)):
    raise ValueError("fit_gmm: labels must be a non-empty array of finite numbers")
  floor = max(min_var * y.var(), min_var)
  rng = np.random.default_rng(seed)
  uniq = np.unique(y)
  mu = rng.choice(uniq, size=k, replace=uniq.size < k).astype(np.float64)
  var = np.full(k, max(y.var(), floor))
  pi = np.full(k, 1.0 / k)
  previous = -np.inf
  for _ in range(iters):
    log_p = np.log(pi) - 0.5 * np.log(2 * np.pi * var) - (y[:, None] - mu) ** 2 / (2 * var)
    top = log_p.max(axis=1, keepdims=True)
    r = np.exp(log_p - top)
    norm = r.sum(axis=1, keepdims=True)
    r /= norm  # [N, k] responsibilities
    nk = r.sum(axis=0) + 1e-12
    pi = nk / y.size
    mu = (r * y[:, None]).sum(axis=0) / nk
    var = np.maximum((r * (y[:, None] - mu) ** 2).sum(axis=0) / nk, floor)
    loglik = float(np.mean(top[:, 0] + np.log(norm[:, 0])))
    if loglik - previous < tol:
      break
    previous = loglik
  return pi, mu, var


# ---------------------------------------------------------------------------------------------
# Histogram losses


def bin_centres(edges: jax.Array) -> jax.Array:
  return 0.5 * (edges[1:] + edges[:-1])


def two_hot(target: jax.Array, centres: jax.Array) -> jax.Array:
  """``[B, M]``: each target's mass split between its two nearest centres by distance
  (targets outside the centres put all mass on the end bin)."""
  m = centres.shape[0]
  t = jnp.clip(target, centres[0], centres[-1])
  hi = jnp.clip(jnp.searchsorted(centres, t, side="right"), 1, m - 1)
  lo = hi - 1
  frac = (t - centres[lo]) / (centres[hi] - centres[lo])
  return jax.nn.one_hot(lo, m) * (1 - frac)[:, None] + jax.nn.one_hot(hi, m) * frac[:, None]


def hl_gauss(target: jax.Array, edges: jax.Array, sigma: float) -> jax.Array:
  """``[B, M]``: normal(target, sigma) CDF differences at the ``[M + 1]`` edges, renormalised."""
  z = (edges[None, :] - target[:, None]) / (sigma * math.sqrt(2.0))
  cdf = 0.5 * (1.0 + jax.scipy.special.erf(z))
  probs = cdf[:, 1:] - cdf[:, :-1]
  return probs / jnp.maximum(jnp.sum(probs, axis=1, keepdims=True), 1e-12)


def histogram_loss(
  logits: jax.Array, target_probs: jax.Array, weight: jax.Array | None = None
) -> jax.Array:
  """Cross-entropy between ``softmax(logits)`` and target distributions ``[B, M]``, mean
  (weighted by an optional ``[B]`` ``weight``)."""
  ce = -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)
  return losses.masked_mean(ce, weight)


def histogram_decode(logits: jax.Array, centres: jax.Array) -> jax.Array:
  """The prediction: expectation of the bin centres under ``softmax(logits)``, ``[B]``."""
  return jax.nn.softmax(logits, axis=-1) @ centres
