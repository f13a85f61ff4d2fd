"""NYUD2-DIR depth estimation (Pintea et al., ICCV 2023, Sec. 3.2, Tab. 2, Tab. 4).

Data: DIR's NYUD2 download (data/nyu2_train.csv, data/nyu2_test.csv, the images and
data/test_balanced_mask.npy; regcls_jax/data/nyud2.py has the layout). Prepare and inspect it:

  python -m regcls_jax.data.prepare --config=configs/nyud2.py --config.data.data_dir=DIR

Validation is 1/5 of the training scene directories (seed 0). Classes are over per-pixel depth
(K=100 is DIR's 0.1 m bins). Variants, combined with commas: k=2|10|100, balanced, rebalance,
runlocal (the tiny fixture in ~/.cache/regcls_jax/fixtures/nyud2). The depth model, trainer and
its expected runtime and result (paper Tab. 2: reg test RMSE 1.499, reg+cls 100 1.488) arrive
with the age/depth training issue.
"""

import ml_collections

from regcls_jax import config_utils

VARIANTS = {"k": ("2", "10", "100"), "balanced": None, "rebalance": None, "runlocal": None}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = config_utils.parse_variants(arg, VARIANTS, "configs/nyud2.py")
  c = ml_collections.ConfigDict()
  c.experiment = "nyud2"
  c.seed = 0
  c.data = config_utils.data_config("nyud2", batch_size=16)
  c.num_classes = int(variants.get("k", "100"))
  c.balanced = bool(variants.get("balanced"))
  c.rebalance = bool(variants.get("rebalance"))
  if variants.get("runlocal"):
    c.data.fixture = True
    c.data.batch_size = 4
    c.data.worker_count = 0
  return c
