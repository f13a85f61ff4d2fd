"""IMDB-WIKI-DIR age estimation (Pintea et al., ICCV 2023, Sec. 3.2, Tab. 3, Tab. 4).

ResNet-50 with a regression output and a train-only linear cls head on the 2048-d features;
Adam without weight decay (as the authors' age code), lr 1e-3, batch 256, 90 epochs, lr x0.1 at
epochs 60 and 80 (DIR's recipe; the paper's own lr and per-K lambdas did not survive: tune
``lam`` on validation). The kept checkpoint is the one with the lowest validation MSE (the
authors' selection).

  python -m regcls_jax.data.prepare --config=configs/imdbwiki.py --config.data.data_dir=DIR
  python -m regcls_jax.main --config=configs/imdbwiki.py --config.data.data_dir=DIR --workdir=W
  python -m regcls_jax.main --config=configs/imdbwiki.py --config.data.data_dir=DIR --workdir=W \
      --mode=eval

Variants, combined with commas: k=2|10|100 (classes), balanced (Eq. 12 classes + Eq. 13 keep
masks), rebalance (the keep mask on both losses, Tab. 4), reg (the baseline, no cls head),
method=lds|focal_r|bmc|gai|bni|two_hot|hl_gauss (a baseline instead of reg+cls: LDS,
Focal-R, Balanced MSE BMC/GAI/BNI, histogram losses; settings in config.peers), runlocal (a
tiny ResNet on the fixture, written to ~/.cache/regcls_jax/fixtures/imdb_wiki when
missing; seconds on a CPU).
Expected (paper Tab. 3, MAE all / many / med / few): reg 8.09 / 7.23 / 15.48 / 26.81; reg+cls 100
7.61 / 6.90 / 13.46 / 25.04. Runtime on one H100: not measured yet (no GPU was lent);
`benchmarks/train_step.py` gives the step rate.
"""

import ml_collections

from regcls_jax.data.config import data_config
from regcls_jax.families.images import config_fields
from regcls_jax.train_lib import config as config_lib

VARIANTS = config_fields.VARIANTS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = config_lib.parse_variants(arg, VARIANTS, "configs/imdbwiki.py")
  c = ml_collections.ConfigDict()
  c.experiment = "imdbwiki"
  c.seed = 0
  c.data = data_config("imdb_wiki", batch_size=256)
  config_fields.training_fields(c, variants, lr=1e-3, epochs=90, lr_decay_epochs=(60, 80))
  c.weight_decay = 0.0  # the authors' age code builds Adam without weight decay
  # DIR's IMDB-WIKI settings: constant LDS padding, Focal-R on L1, an 8-component GMM (GAI);
  # Balanced MSE's sigma fixed at its IMDB initial value.
  c.peers.update(dict(lds_padding="constant", focal_kind="l1", gmm_components=8, bmse_sigma=10.0))
  if variants.get("runlocal"):
    c.data.batch_size = 16
  return c
