"""Cost of one model's loss value and gradient per step: MSE, DenseLoss, RankSim, ConR.

  python benchmarks/feature_losses.py [--batch=256] [--features=15] [--repeats=20]

RankSim sorts every row of the batch's B x B similarities (three sorts per step: label ranks,
feature ranks, the blackbox backward's ranks); ConR works on the 2B x 2B pairs of two views.
The 1D grid's MLP step costs about as much as the MSE line, so these ratios say what the
feature regularisers add to a grid. Prints a table, then ``<method>_ms=<float>`` lines.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--features", type=int, default=15)
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()

  import jax
  import jax.numpy as jnp
  import numpy as np

  from regcls_jax.method import conr, denseloss, ranksim

  rng = np.random.default_rng(0)
  b, d = args.batch, args.features
  x = jnp.asarray(rng.normal(size=(2 * b, d)), jnp.float32)
  y = jnp.asarray(rng.normal(size=2 * b), jnp.float32)
  grid, w = (jnp.asarray(a, jnp.float32) for a in denseloss.fit_weights(np.asarray(y)))
  head = jnp.asarray(rng.normal(size=d), jnp.float32)

  def mse(x):
    return jnp.mean((x[:b] @ head - y[:b]) ** 2)

  def dense(x):
    return jnp.mean(denseloss.lookup(grid, w, y[:b]) * (x[:b] @ head - y[:b]) ** 2)

  def rank_sim(x):
    return ranksim.ranksim_loss(x[:b], y[:b], 2.0)

  def con_r(x):
    return conr.conr_loss(x, y, x @ head, 0.1)

  rows = []
  for name, fn in (("mse", mse), ("dense", dense), ("ranksim", rank_sim), ("conr", con_r)):
    step = jax.jit(jax.value_and_grad(fn))
    jax.block_until_ready(step(x))
    t = time.perf_counter()
    for _ in range(args.repeats):
      jax.block_until_ready(step(x))
    rows.append((name, (time.perf_counter() - t) / args.repeats * 1e3))
  base = rows[0][1]
  print(f"batch {b}, {d} features, {jax.devices()[0].platform}: value + gradient per step")
  print(f"{'method':10s}{'ms':>10s}{'x mse':>10s}")
  for name, ms in rows:
    print(f"{name:10s}{ms:10.3f}{ms / base:10.1f}")
  for name, ms in rows:
    print(f"{name}_ms={ms:.4f}")


if __name__ == "__main__":
  main()
