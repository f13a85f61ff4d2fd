"""The workdir helpers: checks, config.json, fingerprints; progress lines; pytrees by name."""

import json
import math

import numpy as np
import pytest
from flax import nnx

from regcls_jax.models.mlp import MLP
from regcls_jax.train_lib import progress, pytrees, workdir
from regcls_jax.train_lib.config import load_config


def test_prepare_and_check_workdir(tmp_path):
  target = tmp_path / "a" / "b"
  workdir.prepare_workdir(str(target))
  assert target.is_dir()
  workdir.check_workdir(str(target))  # an existing directory is fine
  (tmp_path / "file").write_text("x")
  with pytest.raises(NotADirectoryError, match="is a file; expected a directory"):
    workdir.prepare_workdir(str(tmp_path / "file"))


def test_write_config_round_trips_and_leaves_no_temporary(tmp_path):
  config = load_config("configs/synthetic1d.py", "grid=tiny")
  workdir.write_config(config, str(tmp_path))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["epochs"] == config.epochs and saved["grid"] == "tiny"
  assert saved["data"]["all_samples"] == config.data.all_samples


def test_fingerprint_depends_on_the_fields_only():
  config = load_config("configs/synthetic1d.py", "grid=tiny")
  fields = ("epochs", "num_classes")
  base = workdir.fingerprint(config, fields)
  assert len(base) == 16 and base == workdir.fingerprint(config, fields)
  with config.unlocked():
    config.checkpoint_every_secs = 1.0  # not a listed field
  assert workdir.fingerprint(config, fields) == base
  assert workdir.fingerprint(config, fields, version=2) != base
  with config.unlocked():
    config.epochs += 1
  assert workdir.fingerprint(config, fields) != base


def test_format_seconds_and_eta():
  assert progress.format_seconds(0) == "0m00s"
  assert progress.format_seconds(61.2) == "1m02s"
  assert progress.format_seconds(3 * 3600 + 5) == "3h00m05s"
  clock = iter([100.0, 110.0, 110.0, 110.0, 110.0])
  eta = progress.Eta(total=10, clock=lambda: next(clock))
  eta.skip(2)  # restored work: done, not in the rate
  assert math.isnan(eta.remaining)  # no rate before the first unit of work
  assert eta.line() == "elapsed 0m10s, ETA -"
  eta.advance(2)  # 2 of the 8 left took 10 s: 6 more take 30 s
  assert eta.remaining == pytest.approx(30.0)
  assert eta.line() == "elapsed 0m10s, ETA 0m30s"


def test_pytrees_flatten_by_name_and_back():
  state = nnx.state(MLP(1, (6, 15), 4, rngs=nnx.Rngs(0)))
  flat = pytrees.flatten(state)
  assert {"layers.0.kernel", "layers.1.bias", "reg_head.kernel", "cls_head.kernel"} <= set(flat)
  back = pytrees.unflatten(state, flat)
  for a, b in zip(pytrees.flatten(back).values(), flat.values()):
    np.testing.assert_array_equal(a, b)
  del flat["reg_head.kernel"]
  with pytest.raises(ValueError, match="checkpoint lacks parameters"):
    pytrees.unflatten(state, flat)


def test_pytrees_take_and_stack():
  trees = [{"a": np.full(2, i), "b": np.float32(i)} for i in range(3)]
  stacked = pytrees.stack(trees)
  assert stacked["a"].shape == (3, 2)
  np.testing.assert_array_equal(pytrees.take(stacked, np.array([2, 0]))["b"], [2, 0])
