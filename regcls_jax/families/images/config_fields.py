"""The model and optimisation fields the age and depth configs share (imdbwiki.py, nyud2.py)."""

from __future__ import annotations

import ml_collections

from regcls_jax.train_lib import config as config_lib

# The age and depth configs' variants (``--config=configs/imdbwiki.py:k=10,balanced``).
VARIANTS = {
  "method": (
    "lds",
    "focal_r",
    "bmc",
    "gai",
    "bni",
    "dense",
    "ranksim",
    "conr",
    "two_hot",
    "hl_gauss",
    "regcls+ranksim",
  ),  # fmt: skip
  "k": ("2", "10", "100"),
  "balanced": None,
  "rebalance": None,
  "reg": None,
  "runlocal": None,
}


def training_fields(c: ml_collections.ConfigDict, variants: dict[str, str], **fields) -> None:
  """The model / optimisation fields the age and depth configs share (`trainer.py`)."""
  c.method = "reg" if variants.get("reg") else "regcls"  # reg: no cls head (the baseline)
  c.method = variants.get("method", c.method)  # a baseline (registry; settings: c.peers)
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
  c.peers = config_lib.peers_config()
  c.update(fields)
  if c.method == "conr":  # two augmented views of every training image (registry.TWO_VIEWS)
    c.data.views = 2
  if variants.get("runlocal"):  # a tiny network on the fixture: seconds on a CPU
    c.data.fixture = True
    c.data.worker_count = 0
    c.model.width = 8
    c.model.stage_sizes = (1, 1, 1, 1)
    c.model.dtype = "float32"
    c.epochs = 2
    c.log_every = 1
