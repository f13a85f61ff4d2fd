"""Your own images: does a classification loss help their regression? (beyond the paper).

Any folder of images with a ``labels.csv`` of ``path,target[,split]`` (without a split column:
a 60 / 20 / 20 split by a permutation of seed 0). Every run of the grid (method x K x lambda x
seed) trains the age model (ResNet-50 with a regression output and a train-only cls head, the
age trainer's loop: best checkpoint on validation RMSE) on the standardised targets; then each
method's (K, lambda) is chosen per seed on VALIDATION and only the chosen runs are scored on
test:

  python -m regcls_jax.main --config=configs/image_folder.py --config.data.data_dir=DIR \
      --workdir=W
  python -m regcls_jax.main --config=configs/image_folder.py --workdir=W --mode=eval

W gets selected.csv (one row per method and seed: K, lambda, epochs, val / test RMSE, test MAE,
many / medium / few-shot RMSE by the training counts of 100 uniform bins of the training range,
DIR's thresholds), summary.md (mean +- std over seeds, a verdict per method against reg from a
paired 95% t interval over seeds), shots.png, candidates.csv (every run's validation score) and
runs/<run>/ (each run's Orbax checkpoints, metrics, eval_<split>.json of the chosen ones).

Variants, combined with commas: runlocal (the fixture folder in
~/.cache/regcls_jax/fixtures/image_folder, 64-pixel images, a tiny ResNet, 4 runs: minutes on a
CPU), quick (one K and lambda per reg+cls method).

Grid (config.grid): methods are reg, regcls, regcls_bal (Eq. 12 classes, Eq. 13 keep masks)
and the age family's baselines (lds, focal_r, bmc, gai, bni, dense, ranksim, conr, two_hot,
hl_gauss, regcls+ranksim; settings in config.peers). ImageNet weights:
--config.model.init_from=FILE (models/pretrained.py). The default grid is 3 + 2 x 2 x 3 x 3 =
39 runs of 30 epochs.
"""

import ml_collections

from regcls_jax.data.config import data_config
from regcls_jax.families.images import config_fields
from regcls_jax.train_lib import config as config_lib

VARIANTS = {"runlocal": None, "quick": None}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = config_lib.parse_variants(arg, VARIANTS, "configs/image_folder.py")
  c = ml_collections.ConfigDict()
  c.experiment = "image_folder"
  c.seed = 0  # set per run from grid.seeds
  # image_size: every image is stored resized to this square (bilinear) at preparation.
  c.data = data_config("image_folder", batch_size=64, image_size=224)
  # The per-run fields (method, num_classes, balanced, lam, seed) are set by the grid.
  config_fields.training_fields(
    c, {"runlocal": variants.get("runlocal")}, lr=1e-3, epochs=30, lr_decay_epochs=(20, 25)
  )
  c.weight_decay = 0.0  # as the age recipe (Adam without weight decay)
  c.grid = ml_collections.ConfigDict()
  c.grid.methods = ("reg", "regcls", "regcls_bal")
  c.grid.num_classes = (10, 100)  # K of regcls / regcls_bal / two_hot / hl_gauss
  c.grid.lams = (0.1, 1.0, 10.0)  # lambda of regcls / regcls_bal
  c.grid.seeds = (0, 1, 2)  # init, shuffling, keep draws; the split is fixed (seed 0)
  # Shot groups of the report, as DIR: the training range in shot_bins uniform bins; a test
  # image is many-shot when its bin holds more than many_shot training images, few under few_shot.
  c.shot_bins = 100
  c.many_shot = 100
  c.few_shot = 20
  # Balanced MSE's noise scale on standardised targets (as the tabular family).
  c.peers.bmse_sigma = 0.1
  if variants.get("quick"):
    c.grid.num_classes = (10,)
    c.grid.lams = (1.0,)
  if variants.get("runlocal"):
    c.data.image_size = 64
    c.data.batch_size = 16
    c.epochs = 6
    c.lr_decay_epochs = (100,)
    c.log_every = 5
    c.grid.methods = ("reg", "regcls")
    c.grid.num_classes = (4,)
    c.grid.lams = (1.0,)
    c.grid.seeds = (0, 1)
    # 120 training images: DIR's absolute thresholds over 100 bins would call every image
    # few-shot; 10 bins with 20 / 5 keep the three groups apart.
    c.shot_bins = 10
    c.many_shot = 20
    c.few_shot = 5
  return c
