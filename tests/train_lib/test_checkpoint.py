"""The Checkpointer: leftovers of a killed save are gone when it returns, before any work."""

import shutil
import threading

import numpy as np

from regcls_jax.train_lib.checkpoint import Checkpointer


def test_leftovers_are_removed_before_the_constructor_returns(tmp_path, monkeypatch):
  errors = []
  monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
  for attempt in range(5):  # a background cleanup would race the removal below
    root = tmp_path / f"ckpt{attempt}"
    leftover = root / "3.orbax-checkpoint-tmp-1700000000"
    (leftover / "params").mkdir(parents=True)
    ckpt = Checkpointer(str(root))
    assert not leftover.exists() and ckpt.latest_step() is None
    ckpt.close()
    shutil.rmtree(root)  # what a run that fails before its first save does to its workdir
  assert errors == []


def test_save_then_restore_round_trips(tmp_path):
  ckpt = Checkpointer(str(tmp_path / "c"))
  assert ckpt.save(4, {"g": {"w": np.arange(3.0)}}, {"step": 4})
  assert not ckpt.save(4, {"g": {"w": np.zeros(3)}}, {"step": 4})  # kept as it was
  params, meta = ckpt.restore()
  np.testing.assert_array_equal(params["g"]["w"], np.arange(3.0))
  assert meta == {"step": 4} and ckpt.restore_meta() == {"step": 4}
  ckpt.close()
