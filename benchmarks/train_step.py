"""Images per second of the age and depth train steps: synthetic on-device input vs Grain input.

  python benchmarks/train_step.py                      # paper batch sizes (256 / 16 x 2)
  python benchmarks/train_step.py --age_batch=8 --depth_batch=2 --steps=3   # a CPU-sized run

Builds each model with the reg+cls head (K=100) exactly as `families/images/setup.py` does, times
``--steps`` jitted steps after a warm-up, first on one batch kept on the device (the step's own
rate), then fed by the real Grain train pipeline (decode, augmentation, keep masks, host to
device), and prints both rates and their ratio. The Grain input reads the fixture datasets (the
decode cost per image is what matters) unless ``--imdb_wiki_dir`` / ``--nyud2_dir`` are given.
The last line is ``age_train_step_img_per_s=<float>`` (synthetic input).

Before timing, each step's roofline on paper: the FLOPs and bytes accessed that XLA's cost
analysis reports for the compiled step (``jit(step).lower(...).compile().cost_analysis()``, of
the backend it compiles for: on a CPU its fusion decides the bytes, so they are an estimate for
a GPU) and the floor they give on an H100 SXM and an H200 (NVIDIA's datasheets: 989 TFLOP/s
dense BF16 Tensor Core for both; HBM 3.35 TB/s and 4.8 TB/s): images per second at peak
FLOPs and at full bandwidth; the step can go no faster than the smaller. ``--cost_only``
prints these alone (no steps run), which a CPU does at the paper batch sizes in minutes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def _time_steps(step_fn, state, batches, steps: int, images_per_step: int):
  """(images/s, state) over ``steps`` steps after one warm-up step."""
  import jax

  state, m = step_fn(state, next(batches), jax.random.key(0))
  jax.block_until_ready(m["loss"])
  t = time.perf_counter()
  for i in range(steps):
    state, m = step_fn(state, next(batches), jax.random.key(i))
  jax.block_until_ready(m["loss"])
  return steps * images_per_step / (time.perf_counter() - t), state


# (name, dense BF16 FLOP/s, HBM bytes/s), from NVIDIA's H100 and H200 datasheets (SXM).
GPUS = (("H100", 989e12, 3.35e12), ("H200", 989e12, 4.8e12))


def _roofline(step_fn, state, batch, images_per_device: float) -> str:
  """``flops=... bytes=...`` per image of one step, and the images per second they allow on
  one GPU of `GPUS` by FLOPs alone and by bytes alone (the step's floor is the smaller)."""
  import jax

  cost = step_fn.lower(state, batch, jax.random.key(0)).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list | tuple) else cost  # per device, SPMD-partitioned
  flops = float(cost.get("flops", 0.0)) / images_per_device
  nbytes = float(cost.get("bytes accessed", 0.0)) / images_per_device
  parts = [f"flops_per_img={flops:.4g}", f"bytes_per_img={nbytes:.4g}"]
  for name, peak, bandwidth in GPUS:
    parts.append(f"{name}_flops_floor_img_per_s={peak / flops:.4g}")
    parts.append(f"{name}_bytes_floor_img_per_s={bandwidth / nbytes:.4g}")
  return " ".join(parts)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="age,depth")
  parser.add_argument("--age_batch", type=int, default=256)
  parser.add_argument("--depth_batch", type=int, default=16, help="micro-batch (x2 accumulation)")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--workers", type=int, default=-1, help="Grain workers (-1: one per core)")
  parser.add_argument("--imdb_wiki_dir", default="")
  parser.add_argument("--nyud2_dir", default="")
  parser.add_argument("--cost_only", action="store_true", help="print the rooflines, no steps")
  args = parser.parse_args()

  from absl import flags, logging

  flags.FLAGS.mark_as_parsed()
  logging.set_verbosity(logging.ERROR)
  from regcls_jax.train_lib import runtime

  runtime.configure()
  import itertools

  import jax

  from regcls_jax.data import fixtures, pipeline
  from regcls_jax.families.images import setup as setup_lib
  from regcls_jax.train_lib import sharding
  from regcls_jax.train_lib.config import load_config

  tmp = tempfile.mkdtemp(prefix="regcls_step_")
  print(f"JAX {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}")
  print(
    f"{'model':<6} {'batch':>9} {'synthetic img/s':>16} {'grain img/s':>12} {'ratio':>6}",
    flush=True,
  )
  rates = {}
  for name in args.models.split(","):
    exp, data_name, batch = {
      "age": ("imdbwiki", "imdb_wiki", args.age_batch),
      "depth": ("nyud2", "nyud2", args.depth_batch),
    }[name]
    if batch % jax.device_count():
      parser.error(f"--{name}_batch={batch} is not a multiple of the {jax.device_count()} devices")
    config = load_config(f"configs/{exp}.py", "k=100")
    config.unlock()
    given = getattr(args, f"{data_name}_dir")
    config.data.data_dir = given or fixtures.write(data_name, os.path.join(tmp, data_name))
    config.data.tfds_dir = os.path.join(tmp, "tfds")
    config.data.batch_size = batch
    config.data.worker_count = args.workers
    s = setup_lib.setup(config)
    per_step = batch * config.accum_steps
    loader = pipeline.make_loader(s.builder, config, "train", s.classes, batch_size=per_step)
    host = iter(loader)
    first = sharding.device_batch(next(host), s.mesh, config.accum_steps)
    per_device = per_step / s.mesh.devices.size
    print(f"{name}_step batch={per_step} {_roofline(s.step_fn, s.state, first, per_device)}",
          flush=True)  # fmt: skip
    if args.cost_only:
      continue
    synthetic, state = _time_steps(
      s.step_fn, s.state, itertools.repeat(first), args.steps, per_step
    )
    fed = (sharding.device_batch(b, s.mesh, config.accum_steps) for b in host)
    grain_rate, _ = _time_steps(s.step_fn, state, fed, args.steps, per_step)
    label = f"{batch}" if config.accum_steps == 1 else f"{batch}x{config.accum_steps}"
    ratio = grain_rate / synthetic
    print(f"{name:<6} {label:>9} {synthetic:>16.4g} {grain_rate:>12.4g} {ratio:>6.2f}", flush=True)
    rates[name] = synthetic
  if "age" in rates:
    print(f"age_train_step_img_per_s={rates['age']:.1f}")


if __name__ == "__main__":
  main()
