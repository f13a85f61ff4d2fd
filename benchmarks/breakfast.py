"""Time of the full Breakfast run: 10 activities x 4 splits x {reg, reg+cls}, 40 epochs.

  python benchmarks/breakfast.py [--epochs=1] [--frames=4000000] [--devices=N]

Builds frames of the real dataset's size in memory (1,712 videos of random lengths, about
``--frames`` frames in all, 52 participants, 10 activities; random 64-d features: the cost does
not depend on their values), trains each method's 40 models for ``--epochs`` epochs in the
experiment's own compiled program, times it after compilation, and projects to the config's 40
epochs. Prints a table, then ``breakfast_full_run_projected_seconds=<float>``.
"""

from __future__ import annotations

import argparse
import time


def synthetic_frames(num_frames: int, seed: int = 0):
  """A `Frames` of the real dataset's shape: 1,712 videos over 4 groups and 10 activities."""
  import numpy as np

  from regcls_jax.families.breakfast.frames import Frames

  rng = np.random.default_rng(seed)
  num_videos = 1712
  lengths = rng.lognormal(0, 0.6, num_videos)
  lengths = np.maximum((lengths / lengths.sum() * num_frames).astype(int), 10)
  group = rng.integers(0, 4, num_videos)
  activity = rng.integers(0, 10, num_videos)
  fraction = np.concatenate([np.arange(n) / n for n in lengths]).astype(np.float32)
  return Frames(
    features=rng.normal(size=(lengths.sum(), 64)).astype(np.float32),
    group=np.repeat(group, lengths).astype(np.int8),
    activity=np.repeat(activity, lengths).astype(np.int8),
    video=np.repeat(np.arange(num_videos), lengths).astype(np.int32),
    fraction=fraction,
    percent=100 * fraction,
    frames=np.concatenate([np.arange(n) for n in lengths]).astype(np.float32),
  )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=1, help="epochs timed per method")
  parser.add_argument("--frames", type=int, default=4_000_000, help="frames in the dataset")
  parser.add_argument("--devices", type=int, default=None, help="CPU devices (default: cores)")
  args = parser.parse_args()

  from regcls_jax.train_lib import runtime

  runtime.configure(num_cpu_devices=args.devices)
  import jax

  from regcls_jax.families.breakfast import plan, program
  from regcls_jax.train_lib import sharding
  from regcls_jax.train_lib.config import load_config

  config = load_config("configs/breakfast.py")
  paper_epochs = config.epochs
  config.unlock()
  config.epochs = args.epochs
  frames = synthetic_frames(args.frames)
  models = plan.plan_models(config)
  mesh = sharding.models_mesh()
  features = jax.device_put(frames.features)
  targets = jax.device_put(frames.targets(config.target))
  print(f"{len(frames.group):,} frames, {len(models)} models per method, "
        f"{mesh.devices.size} {jax.devices()[0].platform} device(s)")  # fmt: skip
  print(f"{'method':<8} {'compile+run s':>14} {'s/epoch':>8} {f'{paper_epochs} epochs s':>12}")
  total = 0.0
  for method in ("reg", "regcls"):
    inputs = plan.method_inputs(config, frames, models, method, mesh.devices.size)
    statics = plan.statics_for(config, method)
    t = time.perf_counter()
    jax.block_until_ready(program.train(statics, mesh, features, targets, *inputs))
    first = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(program.train(statics, mesh, features, targets, *inputs))
    per_epoch = (time.perf_counter() - t) / args.epochs
    total += per_epoch * paper_epochs
    print(f"{method:<8} {first:>14.1f} {per_epoch:>8.2f} {per_epoch * paper_epochs:>12.1f}")
  print(f"breakfast_full_run_projected_seconds={total:.1f}")


if __name__ == "__main__":
  main()
