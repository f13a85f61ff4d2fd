"""IMDB-WIKI-DIR age estimation (Pintea et al., ICCV 2023, Sec. 3.2, Tab. 3, Tab. 4).

Data: the DIR csv ``imdb_wiki.csv`` (age,path,split) and the IMDB-WIKI face crops in one
directory (regcls_jax/data/imdb_wiki.py has the layout). Prepare and inspect it (once; about
214k images are resized and re-encoded, using every core):

  python -m regcls_jax.data.prepare --config=configs/imdbwiki.py --config.data.data_dir=DIR

Variants, combined with commas: k=2|10|100 (classes), balanced (Eq. 12 classes + Eq. 13
keep masks), rebalance (the keep mask on both losses, Tab. 4), runlocal (the tiny fixture,
written to ~/.cache/regcls_jax/fixtures/imdb_wiki when missing; small batches).
The ResNet-50 model, trainer and its expected runtime and result (paper Tab. 3: reg MAE 8.09,
reg+cls 100 MAE 7.61) arrive with the age/depth training issue; this file's ``data`` section is
what the input pipeline reads.
"""

import ml_collections

from regcls_jax import config_utils

VARIANTS = {"k": ("2", "10", "100"), "balanced": None, "rebalance": None, "runlocal": None}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = config_utils.parse_variants(arg, VARIANTS, "configs/imdbwiki.py")
  c = ml_collections.ConfigDict()
  c.experiment = "imdbwiki"
  c.seed = 0
  c.data = config_utils.data_config("imdb_wiki", batch_size=256)
  # Classes over integer ages (paper Tab. 3: K in {2, 10, 100}).
  c.num_classes = int(variants.get("k", "100"))
  c.balanced = bool(variants.get("balanced"))
  c.rebalance = bool(variants.get("rebalance"))
  if variants.get("runlocal"):
    c.data.fixture = True
    c.data.batch_size = 16
    c.data.worker_count = 0
  return c
