"""Your own table: does a classification loss help its regression? (beyond the paper).

Reads a CSV (or Parquet with pyarrow) of numeric features and one target column, splits it
train / val / test (a split column, or a seeded 60 / 20 / 20 permutation), standardises
features and target on train, and trains an MLP per method, hyper-parameter and seed, all
of a method's models side by side in one compiled program:

  python -m regcls_jax.main --config=configs/tabular.py --config.data.path=FILE \
      --config.data.target=COLUMN --workdir=W
  python -m regcls_jax.main --config=configs/tabular.py --workdir=W --mode=eval

Every model's epoch count is chosen on VALIDATION (the best of its checks every
``eval_every`` epochs), then each method's (K, lambda) per seed (`train_lib/selection`); only
the selected models are scored on test. W gets selected.csv (one row per method and seed:
K, lambda, epochs, val / test RMSE, test MAE, many / medium / few-shot RMSE by training
counts as in DIR), summary.md (mean +- std over seeds and a verdict per method against reg
from a paired 95% confidence interval over seeds), shots.png (test RMSE against the
target's training frequency), candidates.csv (every trained model's validation score) and
an Orbax checkpoint. Beside the MLPs: ordinary least squares and, with scikit-learn
installed (``pip install -e '.[tabular]'``), gradient-boosted trees.

Variants, combined with commas: runlocal (the 3,000-row fixture in
~/.cache/regcls_jax/fixtures/tabular, 3 seeds, 60 epochs; about a minute), quick (one K and
lambda per method, for a first look at a large table).

Methods (config.methods): reg, regcls, regcls_bal and the registry's baselines but FDS and
ConR (lds, focal_r, bmc, gai, bni, dense, ranksim, two_hot, hl_gauss, regcls+ranksim).
The default grid on a 3,000-row table: about a minute on 2 CPU cores; on diamonds' 53,940
rows 5 min 35 s (docs/tabular.md).
"""

import ml_collections

from regcls_jax.train_lib import config as config_lib

VARIANTS = {"runlocal": None, "quick": None}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = config_lib.parse_variants(arg, VARIANTS, "configs/tabular.py")
  c = ml_collections.ConfigDict()
  c.experiment = "tabular"
  c.data = ml_collections.ConfigDict()
  c.data.path = ""  # .csv or .parquet
  c.data.target = ""  # the target column
  c.data.features = ()  # feature columns; empty: every column but the target and split column
  c.data.split_column = ""  # values train / val / test; empty: a seeded 60 / 20 / 20 split
  c.data.seed = 0  # the split's seed
  c.data.fixture = False  # True without a path: the fixture table (``runlocal``)

  # Methods (regcls_bal: reg+cls with equalised classes, Eq. 12, and keep masks, Eq. 13).
  c.methods = ("reg", "regcls", "regcls_bal", "lds", "bmc", "hl_gauss")
  c.num_classes = (4, 16, 64)  # K candidates of regcls / regcls_bal / hl_gauss / two_hot
  c.lams = (0.1, 1.0, 10.0)  # lambda candidates of regcls / regcls_bal (lam * MSE + CE)
  c.seeds = (0, 1, 2, 3, 4)  # training seeds (init, order, keep draws); the split is data.seed
  # Baselines on standardised targets: Balanced MSE with noise scale 0.1 std of the target (0.5
  # shifts the bulk towards the tail on a long-tailed target: x14 reg's RMSE on diamonds).
  # RankSim: its authors' gamma 100 weighs a rank loss summed over ~80 distinct ages against an L1
  # of years; over 256 distinct standardised targets against an MSE near 0.03 it swamps the
  # regression (fixture val RMSE 1.04 at gamma 100, 0.83 at 1, 0.16 at 0.01; reg 0.19).
  c.peers = config_lib.peers_config(bmse_sigma=0.1, ranksim_gamma=0.01)
  c.references = ("ols", "hgb")  # least squares; gradient-boosted trees (scikit-learn)

  c.hidden = (128, 64)
  c.epochs = 200
  c.eval_every = 10  # epochs between validation checks (the epoch count is chosen on them)
  c.batch_size = 256
  c.lr = 1e-3
  c.weight_decay = 0.0
  c.scale = 1.0
  # Shot groups of the report, as DIR: the target's training range in ``shot_bins`` uniform
  # bins; a test sample is many-shot when its bin holds more than ``many_shot`` training
  # samples, few-shot under ``few_shot``.
  c.shot_bins = 100
  c.many_shot = 100
  c.few_shot = 20

  if variants.get("quick"):
    c.num_classes = (16,)
    c.lams = (1.0,)
  if variants.get("runlocal"):
    c.data.fixture = True
    c.data.target = "y"
    c.seeds = (0, 1, 2)
    c.num_classes = (4, 16)
    c.lams = (1.0, 10.0)
    c.hidden = (64, 32)
    c.epochs = 60
  return c
