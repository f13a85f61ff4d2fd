"""Examples per second of each real dataset's training input pipeline on this machine.

  python benchmarks/input_pipeline.py [--datasets=imdb_wiki,nyud2,breakfast] [--workers=0,2]
      [--imdb_wiki_dir=DIR --nyud2_dir=DIR --breakfast_dir=DIR] [--seconds=10]

Runs the real train loader (Grain DataLoader: ArrayRecord reads, decoding, the reference's
augmentation, class labels and Eq. 13 keep masks, batching) of every dataset with each worker
count, on the fixture data unless a dataset directory is given, and prints a table. Batches stay
on the host: this measures what the input pipeline can feed, not the model. The last line is
``imdb_wiki_examples_per_s=<float>`` for the largest worker count. The GPU trainer's goal is
>= 7,000 IMDB-WIKI images/s on a 16-core host.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def _rate(loader, seconds: float, warmup_batches: int = 3) -> tuple[float, int]:
  """(examples per second, batch size) over about ``seconds`` after a warm-up."""
  it = iter(loader)
  for _ in range(warmup_batches):  # worker start-up and first reads
    next(it)
  n, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    batch = next(it)
    n += len(batch["label"])
  return n / (time.perf_counter() - start), len(batch["label"])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--datasets", default="imdb_wiki,nyud2,breakfast")
  parser.add_argument("--workers", default=f"0,{os.cpu_count()}", help="worker counts to time")
  parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per row")
  for name in ("imdb_wiki", "nyud2", "breakfast"):
    parser.add_argument(f"--{name}_dir", default="", help=f"{name} data (default: the fixture)")
  parser.add_argument("--tfds_dir", default="", help="prepared shards (default: a temp dir)")
  args = parser.parse_args()

  from absl import logging

  from regcls_jax.data import fixtures, pipeline
  from regcls_jax.train_lib.config import load_config

  logging.set_verbosity(logging.ERROR)
  files = {"imdb_wiki": "imdbwiki", "nyud2": "nyud2", "breakfast": "breakfast"}
  tmp = tempfile.mkdtemp(prefix="regcls_bench_")
  rows = []
  print(f"{'dataset':<10} {'data':<8} {'workers':>7} {'batch':>5} {'examples/s':>11}")
  for name in args.datasets.split(","):
    config = load_config(f"configs/{files[name]}.py", "balanced")
    config.unlock()
    data_dir = getattr(args, f"{name}_dir")
    config.data.data_dir = data_dir or fixtures.write(name, os.path.join(tmp, name))
    config.data.tfds_dir = args.tfds_dir or os.path.join(tmp, "tfds")
    builder = pipeline.prepare(config.data)
    classes = pipeline.fit_classes(builder, config)
    for workers in (int(w) for w in args.workers.split(",")):
      config.data.worker_count = workers
      loader = pipeline.make_loader(builder, config, "train", classes)
      rate, batch = _rate(loader, args.seconds)
      rows.append((name, workers, rate))
      kind = "given" if data_dir else "fixture"
      print(f"{name:<10} {kind:<8} {workers:>7} {batch:>5} {rate:>11.0f}", flush=True)
  imdb = [r for n, _, r in rows if n == "imdb_wiki"]
  if imdb:
    print(f"imdb_wiki_examples_per_s={imdb[-1]:.1f}")


if __name__ == "__main__":
  main()
