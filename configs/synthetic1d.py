"""The paper's 1D study (Pintea et al., ICCV 2023, Sec. 3.1, Fig. 3, Tab. 1).

Default grid: 3 scenarios x 4 samplings x 10 functions x 2 dataset versions, reg once per
dataset and reg+cls for K in {4, 64} (720 models, 80 epochs each; about 4 minutes on a 2-core
CPU):

  python -m regcls_jax.main --config=configs/synthetic1d.py --workdir=/tmp/regcls_1d

Full Fig. 3 grid: 3 scenarios x 4 samplings x 10 functions x 5 dataset versions, reg once per
dataset and reg+cls for K in {4, 16, 64, 256, 1024} (600 reg + 3000 reg+cls models, 80 epochs
each; `benchmarks/sweep1d.py` prints its projected time on your machine):

  python -m regcls_jax.main --config=configs/synthetic1d.py:grid=paper --workdir=/tmp/regcls_fig3

Other variants, combined with commas (``:grid=paper,balanced``):
  grid=tiny       a few seconds; what the tests run.
  balanced        equalised classes (Eq. 12) with keep masking (Eq. 13) instead of uniform ones.
  both            uniform and balanced classes side by side (paper Tab. 1).
  grid=lambda     paper Fig. 4: validation MSE against lambda (1e-1 .. 1e4) for each K, clean and
                  noisy x the four samplings (5 functions, 1 version; 1,240 models, 35 min on 2
                  cores shared with other jobs); writes
                  lambda.md (the lambda that validation selects per K) and fig4.png.
  grid=noise      paper Fig. 5: the noisy scenario at target noise std 0.05, 0.1, 0.2, 0.4, 0.8
                  (10 functions, 1 version, K in {4, 16, 64, 256}; 1,000 models, 19 min on 2
                  cores shared with other jobs); writes
                  noise.md and fig5.png.
  grid=predictions  paper Fig. 7: reg, reg+cls and reg+cls bal. (K=64) on severe sampling of one
                  function in each scenario; writes fig7.png (the models' predictions over x).
  grid=methods    the default grid's datasets, the methods of regcls_jax/method/registry.py side by
                  side (reg, LDS, Focal-R, BMC, GAI, BNI, FDS, DenseLoss, reg+cls, two-hot,
                  HL-Gauss; K=64 for the methods with a K-way head; RankSim and ConR by name,
                  below); writes methods.md and methods.png too.

Any field can be overridden: ``--config.epochs=5 --config.num_classes='(4,64)'``.

Expected result (the reference's own Fig. 3 numbers, mean test MSE reg vs reg+cls): clean mild
0.307 vs 0.264, moderate 0.394 vs 0.321, severe 0.393 vs 0.270; noisy mild 0.337 vs 0.240,
moderate 0.377 vs 0.244, severe 0.393 vs 0.235; ood about equal.
The paper grid gave (2-core CPU, 22 min): clean mild 0.300 vs 0.259, moderate 0.383 vs 0.308,
severe 0.382 vs 0.286; noisy mild 0.316 vs 0.281, moderate 0.385 vs 0.249, severe 0.382 vs
0.280; ood win % 54-60 (docs/results/paper_grid/summary.md, docs/synthetic1d.md).
"""

import ml_collections

from regcls_jax.method import registry
from regcls_jax.train_lib import config as config_lib

# The per-scenario hyper-parameters of the authors' 1D demo script.
PAPER_LAMBDAS = {"clean": 1e2, "noisy": 1e3, "ood": 1e4}
PAPER_LRS = {"clean": 1e-3, "noisy": 1e-2, "ood": 1e-4}
VARIANTS = {
  "grid": ("tiny", "default", "paper", "methods", "lambda", "noise", "predictions"),
  "balanced": None,
  "both": None,
}
# Fig. 4's lambda axis (a decade grid around the demo script's 1e2 / 1e3) and Fig. 5's noise
# levels (the paper's exact levels are not stated; these double around its 0.1).
FIG4_LAMBDAS = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4)
FIG5_NOISE_LEVELS = (0.05, 0.1, 0.2, 0.4, 0.8)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = config_lib.parse_variants(arg, VARIANTS, "configs/synthetic1d.py")
  grid = variants.get("grid", "default")
  c = ml_collections.ConfigDict()
  c.experiment = "synthetic1d"
  c.grid = grid

  # The grid. Every combination is one trained model ('reg' once per dataset).
  c.scenarios = ("clean", "noisy", "ood")
  c.samplings = ("uniform", "mild", "moderate", "severe")
  c.functions = tuple(range(10))
  c.versions = tuple(range(5))
  c.methods = ("reg", "regcls")
  c.num_classes = (4, 16, 64, 256, 1024)
  c.balanced = (False,)
  c.lam = ml_collections.ConfigDict({k: (v,) for k, v in PAPER_LAMBDAS.items()})
  c.lr = ml_collections.ConfigDict(dict(PAPER_LRS))
  c.scale = 1.0  # the global loss scale s of L = s * (lam * MSE + CE)
  # The baselines' settings (registry.Settings; docs/baselines.md). Focal-R in its MSE form,
  # the 1D regression loss being MSE; LDS / BNI over 100 bins of the training range; Balanced
  # MSE's fixed sigma 0.1 (the generator's noise std; the best mean val MSE of 0.03 / 0.1 / 0.3
  # on 5 functions; sigma 1, Balanced MSE's NYUD2 value, exceeds the labels' spread and drove
  # the predictions apart: test MSE 3-8).
  # ConR's window w 0.1 (labels span about 3; the authors' 1 year on ages 0-100 is 1%).
  c.peers = config_lib.peers_config(focal_kind="mse", bmse_sigma=0.1, conr_window=0.1)
  # ConR's two views of a 1D input: x + N(0, 0.002^2) each (a label-preserving jitter: the
  # functions change by at most ~0.06 over it).
  c.view_jitter = 0.002
  # Train the methods of one parameter shape in one program (a per-model method index picks
  # the loss). Every method's loss is then computed for every model, so this pays off for
  # cheap losses only; False gives each method its own program.
  c.share_methods = False

  # Model and optimisation (the reference's).
  c.hidden = (6, 15)
  c.epochs = 80
  c.batch_size = 256
  c.weight_decay = 1e-3  # coupled L2, as torch Adam's weight_decay
  c.drop_last = True  # a trailing partial batch is not trained on (the reference's loader)
  # False: reg and every other model of a dataset start from different weights, as in the
  # authors' code (Tab. 1's win % is theirs); True: they share the trunk and regression head
  # (a paired comparison, which wins more often; docs/fidelity.md has both).
  c.pair_init = False

  # Data sizes (synthetic1d.Sizes).
  c.data = ml_collections.ConfigDict(
    dict(all_samples=60000, max_bins=1024, min_spls=5, pool=100_000, noise_std=0.1)
  )
  # The noisy scenario's target noise stds; empty: data.noise_std alone. Several levels give
  # noise.md and fig5.png (Fig. 5); summary.md and fig3.png keep the rows at data.noise_std.
  c.noise_levels = ()
  # Write fig7.png: every model's predictions over x beside its training samples (Fig. 7).
  c.plot_predictions = False

  # Execution: float32 logits one device holds per step, which sets how many models train at
  # once; 0 = auto (2**18 on a CPU, which keeps a chunk in cache; 2**28 on an accelerator).
  c.logits_budget = 0
  c.checkpoint_every_secs = 120.0

  if grid in ("default", "methods"):
    c.versions = (0, 1)
    c.num_classes = (4, 64)
  if grid == "lambda":
    c.scenarios = ("clean", "noisy")
    c.functions = tuple(range(5))
    c.versions = (0,)
    c.lam = ml_collections.ConfigDict({k: FIG4_LAMBDAS for k in PAPER_LAMBDAS})
  elif grid == "noise":
    c.scenarios = ("noisy",)
    c.versions = (0,)
    c.num_classes = (4, 16, 64, 256)
    c.noise_levels = FIG5_NOISE_LEVELS
  elif grid == "predictions":
    c.samplings = ("severe",)
    c.functions = (0,)
    c.versions = (0,)
    c.num_classes = (64,)
    c.balanced = (False, True)
    c.plot_predictions = True
  if grid == "methods":
    # RankSim and ConR compare every pair of the batch (RankSim sorts them): on a CPU a model's
    # step costs 45 ms and 1.9 ms against 0.07 ms for the MSE (batch 256,
    # benchmarks/feature_losses.py), hours for this grid. Ask for them by name:
    # --config.methods="('reg','regcls','ranksim','conr','regcls+ranksim')".
    c.methods = tuple(m for m in registry.METHODS if m not in registry.FEATURE_LOSSES)
    c.num_classes = (64,)
  elif grid == "tiny":
    c.scenarios = ("clean",)
    c.samplings = ("uniform", "severe")
    c.functions = (0,)
    c.versions = (0,)
    c.num_classes = (4, 16)
    c.epochs = 2
    c.data.all_samples = 6000
    c.data.max_bins = 128
    c.data.pool = 10_000
  if variants.get("balanced"):
    c.balanced = (True,)
  if variants.get("both"):
    c.balanced = (False, True)
  return c
