"""Loading config files outside absl flags (benchmarks, notebooks, tests)."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib

import ml_collections

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """Loads ``path`` (relative to the repository root or absolute) like ``--config=path:arg``.

  The returned config is locked: assigning an unknown field raises, as on the command line.
  """
  file = pathlib.Path(path)
  if not file.is_absolute() and not file.exists():
    file = REPO_ROOT / path
  if not file.is_file():
    raise FileNotFoundError(f"config file not found: {path}")
  spec = importlib.util.spec_from_file_location(f"_regcls_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg) if arg is not None else module.get_config()
  config.lock()
  return config


def parse_variants(arg: str | None, allowed: dict[str, tuple[str, ...] | None], file: str):
  """``'k=10,balanced'`` -> ``{'k': '10', 'balanced': 'true'}`` (the big_vision config arg).

  Args:
    arg: the text after ``:`` in ``--config=file:arg``.
    allowed: variant name -> its allowed values, or None for a switch without a value.
    file: the config file, for the error message.
  """
  out = {}
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in allowed:
      raise ValueError(f"{file}: unknown variant {key!r}; expected one of {', '.join(allowed)}")
    choices = allowed[key]
    if choices is not None and value not in choices:
      raise ValueError(f"{file}: {key}={value!r}; expected one of {', '.join(choices)}")
    out[key] = value or "true"
  return out


def peers_config(**overrides) -> ml_collections.ConfigDict:
  """``config.peers``: the baselines' settings (`methods.Settings`) with overrides."""
  from regcls_jax import methods  # noqa: PLC0415 (configs import this module; keep it light)

  return ml_collections.ConfigDict(dataclasses.asdict(methods.Settings(**overrides)))


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
  c.update(fields)
  return c


# The age and depth configs' variants (``--config=configs/imdbwiki.py:k=10,balanced``).
IMAGE_VARIANTS = {
  "method": ("lds", "focal_r", "bmc", "gai", "bni", "two_hot", "hl_gauss"),
  "k": ("2", "10", "100"),
  "balanced": None,
  "rebalance": None,
  "reg": None,
  "runlocal": None,
}


def image_training_fields(c: ml_collections.ConfigDict, variants: dict[str, str], **fields) -> None:
  """The model / optimisation fields the age and depth configs share (image_experiment.py)."""
  c.method = "reg" if variants.get("reg") else "regcls"  # reg: no cls head (the baseline)
  c.method = variants.get("method", c.method)  # a baseline of methods.py (settings: c.peers)
  c.num_classes = int(variants.get("k", "100"))
  c.balanced = bool(variants.get("balanced"))  # Eq. 12 classes + Eq. 13 keep masks
  c.rebalance = bool(variants.get("rebalance"))  # the keep mask on both losses (Tab. 4)
  c.lam = 1.0  # weight of the regression term; tune on validation, never on test
  c.scale = 1.0
  c.loss = "mse"  # reg loss: mse (the paper's msecls) or l1 (DIR's vanilla)
  c.model = ml_collections.ConfigDict(
    dict(width=64, stage_sizes=(3, 4, 6, 3), dtype="bfloat16", init_from="")
  )
  c.accum_steps = 1
  c.weight_decay = 1e-4
  c.lr_decay = 0.1
  c.max_steps = 0  # 0 = epochs * steps per epoch
  c.log_every = 50
  # checkpoints/latest is saved at every epoch end and at least this often (model, optimiser,
  # data iterator); checkpoints/best after validation improves.
  c.checkpoint_every_secs = 600.0
  c.peers = peers_config()
  c.update(fields)
  if variants.get("runlocal"):  # a tiny network on the fixture: seconds on a CPU
    c.data.fixture = True
    c.data.worker_count = 0
    c.model.width = 8
    c.model.stage_sizes = (1, 1, 1, 1)
    c.model.dtype = "float32"
    c.epochs = 2
    c.log_every = 1
