"""The 1D grid's plan: runs from a config, chunks, group names, config checks."""

import dataclasses

import pytest
from conftest import tiny_1d_config

from regcls_jax.families.synthetic1d import plan
from regcls_jax.train_lib.config import load_config


def test_plan_paper_grid():
  config = load_config("configs/synthetic1d.py", "grid=paper")
  runs = plan.plan_runs(config)
  assert sum(r.method == "reg" for r in runs) == 600
  assert sum(r.method == "regcls" for r in runs) == 3000
  assert {r.lam for r in runs if r.scenario == "noisy" and r.method == "regcls"} == {1e3}
  assert {r.lr for r in runs if r.scenario == "ood"} == {1e-4}
  chunks = plan.plan_chunks(runs, 4, config)
  assert all(len(c.runs) % 4 == 0 for c in chunks)
  planned = [r for c in chunks for r in c.runs[: c.num_real]]
  assert planned == sorted(
    runs, key=lambda r: list(dict.fromkeys(x.group for x in runs)).index(r.group)
  )


@pytest.mark.parametrize(
  "key,value,match",
  [
    ("scenarios", ("clean", "dirty"), "config.scenarios"),
    ("samplings", ("extreme",), "config.samplings"),
    ("num_classes", (4, 1), "config.num_classes"),
    ("methods", ("reg", "ranksym"), "config.methods"),
    ("epochs", 0, "config.epochs"),
  ],
)
def test_bad_config_values(key, value, match):
  with pytest.raises(ValueError, match=match):
    plan.plan_runs(tiny_1d_config(**{key: value}))


def test_negative_lambda():
  config = tiny_1d_config()
  config.lam.clean = (-1.0,)
  with pytest.raises(ValueError, match="config.lam.clean"):
    plan.plan_runs(config)


def test_run_group_names():
  run = plan.Run("clean", "mild", 0, 0, "regcls", 16, True, 1.0, 1e-3)
  assert run.group == "regcls_k16_bal" and run.seed == 0
  assert dataclasses.replace(run, method="reg", num_classes=0).group == "reg"


def test_models_per_device_follows_the_logits_budget_with_a_floor_of_two():
  # 2**18 logits at batch 256: 16 models of K = 64, 4 of K = 256; K = 1024 would fit 1, gets 2;
  # the regression-only models count as 16 wide.
  assert plan.models_per_device(64, 256, 2**18) == 16
  assert plan.models_per_device(256, 256, 2**18) == 4
  assert plan.models_per_device(1024, 256, 2**18) == 2
  assert plan.models_per_device(0, 256, 2**18) == 64
  assert plan.models_per_device(4, 256, 2**40) == 4096
