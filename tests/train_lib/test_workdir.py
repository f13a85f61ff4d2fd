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


def test_lock_refuses_a_live_owner_and_takes_over_a_dead_one(tmp_path):
  import os
  import socket
  import subprocess
  import sys

  lock = workdir.WorkdirLock(str(tmp_path))
  lock.acquire()
  owner = json.loads((tmp_path / ".lock").read_text())
  assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
  lock.release()
  assert not (tmp_path / ".lock").exists()
  # A live process of this host holds it: refused, the lock untouched.
  live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    (tmp_path / ".lock").write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
    with pytest.raises(workdir.WorkdirBusyError, match=f"in use by pid {live.pid}"):
      workdir.WorkdirLock(str(tmp_path)).acquire()
  finally:
    live.kill()
    live.wait()
  # The same process is gone (kill -9): its lock is taken over.
  taken = workdir.WorkdirLock(str(tmp_path))
  taken.acquire()
  assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
  taken.release()
  # Another host's lock cannot be checked: refused, naming the file to delete.
  (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
  with pytest.raises(workdir.WorkdirBusyError, match="delete the lock file"):
    workdir.WorkdirLock(str(tmp_path)).acquire()


def test_a_failed_start_leaves_no_workdir_it_created(tmp_path):
  target = tmp_path / "new"
  with pytest.raises(ValueError, match="boom"):
    with workdir.run_in(str(target)):
      (target / "config.json").write_text("{}")
      raise ValueError("boom")
  assert not target.exists()
  # An existing workdir is kept; the lock is released either way.
  target.mkdir()
  with pytest.raises(ValueError):
    with workdir.run_in(str(target)):
      raise ValueError("boom")
  assert target.exists() and not (target / ".lock").exists()


def test_check_resume_names_the_changed_fields():
  config = load_config("configs/synthetic1d.py", "grid=tiny")
  fields = ("epochs", "num_classes", "data.all_samples")
  meta = workdir.resume_meta(config, fields)
  workdir.check_resume(meta, config, fields, "ckpt")  # same config: fine
  with config.unlocked():
    config.epochs = 7
    config.data.all_samples = 100
  with pytest.raises(
    ValueError,
    match=r"ckpt holds a checkpoint of a different config: "
    r"config\.data\.all_samples \(6000 -> 100\), config\.epochs \(2 -> 7\)",
  ):
    workdir.check_resume(meta, config, fields, "ckpt")


def test_metrics_log_drops_the_lines_after_the_resumed_step(tmp_path):
  from regcls_jax.train_lib import metric_writers

  log = metric_writers.MetricsLog(str(tmp_path))
  for step in (1, 2, 3, 4):
    log.write(step=step, loss=float(step))
  metric_writers.MetricsLog(str(tmp_path), resumed_step=2).write(step=3, loss=30.0)
  steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert steps == [1, 2, 3]
