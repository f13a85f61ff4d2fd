"""The ``data`` section of every real-data config (read by `regcls_jax.data.pipeline`)."""

from __future__ import annotations

import ml_collections


def data_config(name: str, batch_size: int, **fields) -> ml_collections.ConfigDict:
  """The ``data`` section every real-data config shares (see `regcls_jax.data.pipeline`)."""
  c = ml_collections.ConfigDict()
  c.name = name
  c.data_dir = ""  # the dataset in its published layout (the TFDS manual dir)
  c.tfds_dir = ""  # where the prepared ArrayRecord shards go; "" = ~/.cache/regcls_jax/tfds
  # True and no data_dir: use the tiny fixture in ~/.cache/regcls_jax/fixtures/<name>, written
  # there first when missing (runlocal variants, notebooks)
  c.fixture = False
  c.batch_size = batch_size  # global, over all processes
  c.seed = 0  # shuffling, augmentation, keep masks, re-sampling
  c.num_epochs = ml_collections.FieldReference(None, field_type=int)  # None = repeat forever
  c.worker_count = -1  # Grain worker processes; -1 = one per core (at most 32); 0 = in-process
  c.worker_buffer_size = 2  # batches each worker prepares ahead
  # Threads reading records ahead in each worker (Grain ReadOptions). Decoding holds the GIL, so
  # more threads do not help here: 1 beat 4 and 16 (benchmarks/input_pipeline.py); 0 reads
  # in line, best for cheap records (Breakfast frames).
  c.read_threads = 1
  c.read_buffer = 16  # records read ahead per worker
  # Re-sampling of the training set (regcls_jax/data/samplers.py): none, mild / moderate /
  # severe (the paper's peak imbalance around peak_centre; None = random from the seed), or
  # inverse (each target bin equally often).
  c.sampling = "none"
  c.peak_centre = ml_collections.FieldReference(None, field_type=float)
  c.sampling_bins = 1024
  c.epoch_size = 0  # records per re-sampled epoch; 0 = the training split's size
  # Augmented views of every training image: 2 for ConR (IMDB-WIKI only; the second is
  # ``image_view2``, drawn by the same random transform).
  c.views = 1
  c.update(fields)
  return c
