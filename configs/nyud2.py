"""NYUD2-DIR depth estimation (Pintea et al., ICCV 2023, Sec. 3.2, Tab. 2, Tab. 4).

Hu et al.'s model (ResNet-50 encoder, decoder, multi-scale feature fusion, refinement) with the
per-pixel cls head (transposed conv, ReLU, 1x1 conv to K) at 228 x 304; Adam lr 1e-4, 5 epochs,
batch 16 with 2-step gradient accumulation, per-pixel MSE; validation = 1/5 of the training
scenes (seed 0); K=100 classes are DIR's 0.1 m bins. Weight decay 1e-4 is Hu et al.'s (not in
the spec); ``lam`` (default 1.0) is to be tuned on validation.

  python -m regcls_jax.data.prepare --config=configs/nyud2.py --config.data.data_dir=DIR
  python -m regcls_jax.main --config=configs/nyud2.py --config.data.data_dir=DIR --workdir=W
  python -m regcls_jax.main --config=configs/nyud2.py --config.data.data_dir=DIR --workdir=W \
      --mode=eval

Variants, combined with commas: k=2|10|100, balanced, rebalance (Tab. 4 uses batch 8 x 4),
reg (no cls head), method=lds|focal_r|gai|bni (a baseline instead of reg+cls; settings in
config.peers; BMC and the histogram losses need one target per image), runlocal (a tiny
network on the fixture in
~/.cache/regcls_jax/fixtures/nyud2; seconds on a CPU).
Expected (paper Tab. 2, test RMSE all / many / med / few): reg 1.499 / 0.578 / 0.896 / 2.171;
reg+cls 100 1.488 / 0.578 / 0.971 / 2.141. Runtime on one H100: not measured yet (no GPU was
lent); the reference trains at 59 img/s (bf16), `benchmarks/train_step.py` gives this one's.
"""

import ml_collections

from regcls_jax.data.config import data_config
from regcls_jax.families.images import config_fields
from regcls_jax.train_lib import config as config_lib

VARIANTS = config_fields.VARIANTS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = config_lib.parse_variants(arg, VARIANTS, "configs/nyud2.py")
  c = ml_collections.ConfigDict()
  c.experiment = "nyud2"
  c.seed = 0
  c.data = data_config("nyud2", batch_size=16)
  config_fields.training_fields(c, variants, lr=1e-4, epochs=5, lr_decay_epochs=(), accum_steps=2)
  # DIR's NYUD2 settings: reflect LDS padding, a 16-component GMM, sigma 1 (Balanced MSE's).
  c.peers.update(dict(lds_padding="reflect", focal_kind="mse", gmm_components=16, bmse_sigma=1.0))
  if variants.get("rebalance"):
    c.data.batch_size, c.accum_steps = 8, 4
  if variants.get("runlocal"):
    c.data.batch_size = 4
    c.epochs = 1  # 2 steps of 2 x 4 fixture images: the depth net is slow on a CPU
  return c
