"""Breakfast video progress (Pintea et al., ICCV 2023, Sec. 3.3, Tab. 5).

Data: Kukleva et al.'s 64-d IDT features (features/, groundTruth/, mapping/;
regcls_jax/data/breakfast.py has the layout). Prepare and inspect it:

  python -m regcls_jax.data.prepare --config=configs/breakfast.py --config.data.data_dir=DIR

Variants, combined with commas: split=s1|s2|s3|s4 (the test participants), target=percent|frames,
balanced, runlocal (the tiny fixture in ~/.cache/regcls_jax/fixtures/breakfast). The
per-activity training, its runtime and expected result (paper Tab. 5, S1 percent: reg 32.57,
reg+cls 100 28.71) arrive with the Breakfast issue.
"""

import ml_collections

from regcls_jax import config_utils

VARIANTS = {
  "split": ("s1", "s2", "s3", "s4"),
  "target": ("percent", "frames"),
  "balanced": None,
  "runlocal": None,
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = config_utils.parse_variants(arg, VARIANTS, "configs/breakfast.py")
  c = ml_collections.ConfigDict()
  c.experiment = "breakfast"
  c.seed = 0
  c.data = config_utils.data_config(
    "breakfast",
    batch_size=256,
    split=variants.get("split", "s1"),
    target=variants.get("target", "percent"),
    read_threads=0,  # 64 floats per record: reading in line is 1.8x faster than a thread
  )
  c.num_classes = 100
  c.balanced = bool(variants.get("balanced"))
  c.rebalance = False
  if variants.get("runlocal"):
    c.data.fixture = True
    c.data.batch_size = 32
    c.data.worker_count = 0
  return c
