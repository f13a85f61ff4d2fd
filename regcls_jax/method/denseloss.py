"""DenseLoss (Steininger, Kobs, Davidson, Krause, Hotho, Machine Learning 2021): per-sample
weights from the density of the training targets, as the authors' ``denseweight`` package.

A Gaussian kernel density of the training targets (bandwidth by Silverman's rule
``1.06 std(y) n^(-1/5)`` unless given) on a 4096-point grid, min-max scaled to [0, 1]: p'(y).
A target takes the density of its grid cell (the grid point at or below it), and its weight
is ``w*(y) = max(1 - alpha p'(y), eps)`` divided by the mean of w* over the training targets,
so the weights average 1. DenseLoss is the MSE weighted by them.

`fit_weights` (host, numpy) returns the weight of every grid cell; `lookup` (jittable) reads a
target's. The density here is computed by linear binning onto the grid and a convolution with
the sampled kernel (what an FFT KDE does); the grid spans the targets' range widened by 4
bandwidths on each side (``denseweight``'s KDEpy grid is set by the kernel's support, so the
two grids differ slightly; the weights agree to the grid's resolution).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

GRID_POINTS = 4096
EPS = 1e-6


def silverman_bandwidth(y: np.ndarray) -> float:
  return float(1.06 * np.std(y) * len(y) ** (-1.0 / 5.0))


def grid_for(y: np.ndarray, bandwidth: float, points: int = GRID_POINTS) -> np.ndarray:
  return np.linspace(y.min() - 4 * bandwidth, y.max() + 4 * bandwidth, points)


def density(y: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
  """The Gaussian KDE of ``y`` at the (uniform) ``grid``: linear binning, then a convolution
  with the kernel sampled at the grid's spacing."""
  dx = grid[1] - grid[0]
  pos = (y - grid[0]) / dx
  lo = np.clip(np.floor(pos).astype(np.int64), 0, len(grid) - 2)
  frac = pos - lo
  mass = np.bincount(lo, 1.0 - frac, len(grid)) + np.bincount(lo + 1, frac, len(grid))
  half = min(int(np.ceil(6 * bandwidth / dx)), len(grid) - 1)
  offsets = np.arange(-half, half + 1) * dx
  kernel = np.exp(-0.5 * (offsets / bandwidth) ** 2) / (np.sqrt(2 * np.pi) * bandwidth)
  return np.convolve(mass, kernel, mode="same") / len(y)


def fit_weights(
  targets: np.ndarray, alpha: float = 1.0, bandwidth: float | None = None, eps: float = EPS
) -> tuple[np.ndarray, np.ndarray]:
  """``(grid [G], weight [G])``: the DenseWeight of a target in each grid cell.

  Args:
    targets: the training targets.
    alpha: the weighting's strength (0: every weight 1).
    bandwidth: the kernel's std; Silverman's rule when None.
    eps: the smallest w* before normalisation.
  """
  y = np.asarray(targets, np.float64).ravel()
  if y.size < 2 or y.min() == y.max():
    grid = np.linspace(y.min() - 0.5, y.max() + 0.5, GRID_POINTS) if y.size else np.zeros(2)
    return grid, np.ones_like(grid)
  bw = float(bandwidth) if bandwidth else silverman_bandwidth(y)
  grid = grid_for(y, bw)
  dens = density(y, grid, bw)
  dens = (dens - dens.min()) / (dens.max() - dens.min())
  w_star = np.maximum(1.0 - alpha * dens, eps)
  cell = np.clip(np.searchsorted(grid, y, side="right") - 1, 0, len(grid) - 1)
  return grid, w_star / np.mean(w_star[cell])


def lookup(grid: jax.Array, weight: jax.Array, y: jax.Array) -> jax.Array:
  """The weight of each target: its grid cell's (clamped to the grid's ends)."""
  cell = jnp.clip(jnp.searchsorted(grid, y, side="right") - 1, 0, grid.shape[0] - 1)
  return weight[cell]
