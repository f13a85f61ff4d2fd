"""Throughput of the 1D sweep and the projected time of the paper's Fig. 3 grid.

  python benchmarks/sweep1d.py [--epochs=2] [--groups=reg,regcls_k4,...]   # any backend: CPU, GPU

For every group of the paper grid (reg, and reg+cls for each K) it trains one full chunk of
real-size datasets for E and for 4E epochs (``--epochs``), times each after compilation and
extrapolates to 80 epochs on that line: a chunk's fixed cost (assembling its inputs on the
host, the transfers, the final scoring) counts once, its per-epoch cost (shuffle and steps) 80
times, scaled by each chunk's step count. A group adds one compilation per distinct
compiled program (chunks of the same padded lengths share one), the grid the generation of its
datasets. Prints a table, then ``paper_grid_projected_seconds=<float>``.

The floor, measured in the same run: the grid's FLOPs from XLA's cost analysis of each group's
compiled chunk (`program.chunk_flops`: one step's FLOPs x the steps the chunk executes, plus
the final scoring) and the f32 matmul rate of this machine's cores (a 2048 x 2048 matmul on
every device at once, laid out like the grid's models; the best of the default XLA options and
the wide heads' ones), then ``paper_grid_flops=``,
``cpu_peak_flops=``, ``floor_seconds=`` (FLOPs / rate) and ``ratio_to_floor=`` (projected /
floor). Then the same count on paper for one H100 / H200 (``paper_grid_bytes=``,
``h100_floor_seconds=``, ``h200_floor_seconds=``): FLOPs at the TF32 Tensor Core rate, bytes at
full HBM bandwidth, the larger of the two. The bytes are those of this backend's fusion; on a
CPU they overstate what a GPU's fusion moves, so that floor is a pessimistic one.
Reference point (the authors' 1d/ code): the authors' PyTorch code trains one (reg, reg+cls)
pair in 80.7 s on a 2-core CPU, so the paper grid's 3000 pairs take about 67 hours.
"""

from __future__ import annotations

import argparse
import time

from regcls_jax.train_lib import runtime

# NVIDIA's H100 SXM / H200 datasheets: 494.7 TFLOP/s dense TF32 Tensor Core (989.4 with
# sparsity) for both; HBM3 3.35 TB/s, HBM3e 4.8 TB/s.
GPUS = (("H100", 494.7e12, 3.35e12), ("H200", 494.7e12, 4.8e12))


def matmul_peak(mesh, size: int = 2048, repeats: int = 10) -> float:
  """FLOP/s of ``size`` x ``size`` f32 matmuls, one per device at once: the best time of a few
  runs under XLA's default options and under those of the 1D grid's widest heads (the best of
  all counts; on a GPU the default options only)."""
  import jax
  import jax.numpy as jnp

  from regcls_jax.families.synthetic1d import program as program_1d
  from regcls_jax.train_lib import sharding

  n = mesh.devices.size
  a = jnp.ones((n, size, size), jnp.float32) / size
  best = float("inf")
  wide_heads = program_1d.compiler_options(1024)  # {} off a CPU
  for options in ({}, wide_heads) if wide_heads else ({},):
    program = sharding.models_program(lambda a, b: a @ b, mesh, compiler_options=options)
    jax.block_until_ready(program(a, a))
    for _ in range(repeats):
      t = time.perf_counter()
      jax.block_until_ready(program(a, a))
      best = min(best, time.perf_counter() - t)
  return 2.0 * size**3 * n / best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=2, help="E: epochs timed (and 4E) per group")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs per group (min)")
  parser.add_argument("--logits_budget", type=int, default=None, help="override the config's")
  parser.add_argument("--groups", default="", help="comma-separated groups to time (default all)")
  parser.add_argument("--devices", type=int, default=None, help="CPU devices (default: cores)")
  args = parser.parse_args()
  runtime.configure(num_cpu_devices=args.devices)

  import jax

  from regcls_jax.data import synthetic1d
  from regcls_jax.families.synthetic1d import plan, program
  from regcls_jax.train_lib import sharding
  from regcls_jax.train_lib.config import load_config

  config = load_config("configs/synthetic1d.py", "grid=paper")
  if args.logits_budget:
    config.logits_budget = args.logits_budget
  paper_epochs = config.epochs
  config.epochs = args.epochs
  mesh = sharding.models_mesh()
  runs = plan.plan_runs(config)
  cache = plan.DatasetCache(synthetic1d.Sizes(**config.data))
  t0 = time.perf_counter()
  # Generates every dataset of the grid (their sizes order each group, as in a real run).
  chunks = plan.plan_chunks(runs, mesh.devices.size, config, size_of=cache.train_size)
  data_secs = time.perf_counter() - t0
  num_datasets = len({r.dataset for r in runs})

  print(
    f"device: {jax.devices()[0].device_kind} x {mesh.devices.size} | timed epochs: "
    f"{args.epochs} and {4 * args.epochs} (min of {args.repeats} runs), extrapolated to "
    f"{paper_epochs}"
  )
  header = (
    f"{'group':<16}{'models':>8}{'chunk':>7}{'chunks':>8}{'fixed s':>9}{'s/epoch':>9}"
    f"{'s/chunk@80ep':>14}{'programs':>9}{'compile s':>10}{'group s':>10}{'TFLOP':>8}"
    f"{'GFLOP/s':>9}"
  )
  print(header)
  print("-" * len(header))
  total = data_secs
  models = 0
  grid_flops = grid_bytes = 0.0
  by_group: dict[str, list] = {}
  for chunk in chunks:
    by_group.setdefault(chunk.group, []).append(chunk)
  for group, members in by_group.items():
    if args.groups and group not in args.groups.split(","):
      continue
    # The group's middle chunk (groups are ordered by dataset size): paper-size real data.
    chunk = members[len(members) // 2]
    times, compile_secs = {}, 0.0
    for epochs in (args.epochs, 4 * args.epochs):
      config.epochs = epochs
      t = time.perf_counter()
      program.train_chunk(chunk, cache, config, mesh)  # compiles
      first = time.perf_counter() - t
      runs_secs = []
      for _ in range(args.repeats):  # the minimum of a few runs: shared machines are noisy
        t = time.perf_counter()
        program.train_chunk(chunk, cache, config, mesh)
        runs_secs.append(time.perf_counter() - t)
      times[epochs] = min(runs_secs)
      compile_secs = max(compile_secs, first - times[epochs])
    per_epoch = max(times[4 * args.epochs] - times[args.epochs], 0.0) / (3 * args.epochs)
    fixed = max(times[args.epochs] - args.epochs * per_epoch, 0.0)
    secs = fixed + paper_epochs * per_epoch
    # An epoch's cost grows with the chunk's steps: scale per chunk.
    multiple = program.length_multiple(config)
    lengths = [program.padded_lengths(c.runs, cache, multiple) for c in members]
    steps_of = [program.chunk_steps(c.runs, cache, config.batch_size) for c in members]
    timed = steps_of[len(members) // 2]
    programs = len(set(lengths))
    n = sum(c.num_real for c in members)
    group_secs = sum(fixed + paper_epochs * per_epoch * s / timed for s in steps_of)
    group_secs += compile_secs * programs
    total += group_secs
    models += n
    config.epochs = args.epochs
    f = program.chunk_flops(chunk, cache, config, mesh)  # steps of the timed epochs: scale
    steps = sum(f["steps"] * s / timed for s in steps_of)
    group_flops = f["step"] * steps * paper_epochs / args.epochs + f["eval"] * len(members)
    grid_flops += group_flops
    grid_bytes += f["step_bytes"] * steps * paper_epochs / args.epochs
    grid_bytes += f["eval_bytes"] * len(members)
    print(
      f"{group:<16}{n:>8}{len(chunk.runs):>7}{len(members):>8}{fixed:>9.3f}{per_epoch:>9.4f}"
      f"{secs:>14.2f}{programs:>9}{compile_secs:>10.1f}{group_secs:>10.1f}"
      f"{group_flops / 1e12:>8.2f}{group_flops / group_secs / 1e9:>9.1f}"
    )
  print("-" * len(header))
  print(f"data generation: {data_secs:.1f} s for {num_datasets} datasets")
  pairs = sum(1 for r in runs if r.method == "regcls")
  print(
    f"paper grid: {models} models ({pairs} reg+cls, {models - pairs} reg), projected "
    f"{total:.0f} s = {total / 60:.1f} min; {models / total:.2f} models/s; "
    f"reference PyTorch: 80.7 s per (reg, reg+cls) pair -> {pairs * 80.7 / 3600:.0f} h "
    f"({pairs * 80.7 / total:.0f}x)"
  )
  print(f"paper_grid_projected_seconds={total:.1f}")
  peak = matmul_peak(mesh)
  floor = grid_flops / peak
  print(f"paper_grid_flops={grid_flops:.4g}")
  print(f"cpu_peak_flops={peak:.4g}")
  print(f"floor_seconds={floor:.1f}")
  print(f"ratio_to_floor={total / floor:.2f}")
  # The same count on paper for one GPU: f32 matmuls run as TF32 on its Tensor Cores (JAX's
  # default precision), the bytes at full HBM bandwidth; the grid can go no faster than the
  # larger of the two.
  print(f"paper_grid_bytes={grid_bytes:.4g}")
  for name, tf32, hbm in GPUS:
    print(
      f"{name.lower()}_floor_seconds={max(grid_flops / tf32, grid_bytes / hbm):.2f} "
      f"(FLOPs at {tf32 / 1e12:.0f} TFLOP/s TF32: {grid_flops / tf32:.2f} s; bytes at "
      f"{hbm / 1e12:.2f} TB/s: {grid_bytes / hbm:.2f} s)"
    )


if __name__ == "__main__":
  main()
