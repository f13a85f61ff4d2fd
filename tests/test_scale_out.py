"""Scale-out: several JAX processes through launch/local.py, preemption (SIGTERM) and resume,
a diverging run stopped with its last good checkpoint kept."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from regcls_jax.train_lib.checkpoint import Checkpointer
from regcls_jax.train_lib.config import REPO_ROOT

AGE = "--config=configs/imdbwiki.py:runlocal"


def _data_flags(fixture_root, tfds_root):
  return [
    f"--config.data.data_dir={fixture_root / 'imdb_wiki'}",
    f"--config.data.tfds_dir={tfds_root}",
  ]


def _env(devices: int) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def _losses(workdir) -> dict[int, float]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}


def _final_state(workdir):
  ckpt = Checkpointer(str(workdir / "checkpoints" / "latest"))
  params, meta = ckpt.restore()
  ckpt.close()
  return params["state"], meta


def test_two_processes_of_two_devices_match_one_process_of_four(fixture_root, tfds_root, tmp_path):
  """jax.distributed over loopback: 2 processes x 2 CPU devices train the same global batches
  as 1 process x 4 devices (each process reads its block of every batch), so the loss curve
  is the same up to the order of cross-process sums. The 2-process run is interrupted after
  step 3 and resumed: both processes save the checkpoint together and both restore it (with
  their own data iterators); validation gathers both processes' predictions."""
  common = [AGE, *_data_flags(fixture_root, tfds_root), "--config.log_every=1"]
  launcher = [sys.executable, "launch/local.py", "--num_processes=2", "--devices_per_process=2"]
  for extra in (["--config.max_steps=3", "--config.checkpoint_every_secs=0"],
                ["--config.max_steps=6"]):  # fmt: skip
    two = subprocess.run(
      [*launcher, "--", *common, *extra, f"--workdir={tmp_path / 'two'}"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
  assert "[process 0]" in two.stderr and "[process 0] I" in two.stderr
  assert "resuming at step 3" in two.stderr
  lines = two.stderr.splitlines()  # the trainer's log lines come from process 0 only
  assert any(x.startswith("[process 0] I") and " run.py:" in x for x in lines)
  assert not any(x.startswith("[process 1] I") and " run.py:" in x for x in lines)
  one = subprocess.run(
    [sys.executable, "-m", "regcls_jax.main", *common, "--config.max_steps=6",
     f"--workdir={tmp_path / 'one'}"],
    cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=_env(4),
  )  # fmt: skip
  assert one.returncode == 0, one.stderr[-3000:]
  a, b = _losses(tmp_path / "two"), _losses(tmp_path / "one")
  assert sorted(a) == sorted(b) == list(range(1, 7))
  assert a[1] == pytest.approx(b[1], rel=1e-6)  # the same first batch, the same initial model
  for step in range(2, 7):
    assert a[step] == pytest.approx(b[step], rel=2e-3), step
  # A different batch composition would show: the curve itself moves by far more than that.
  assert max(abs(b[s] / b[s - 1] - 1) for s in range(2, 7)) > 0.05
  # Both processes saved one checkpoint together; its step and the validation match.
  state_two, meta_two = _final_state(tmp_path / "two")
  _, meta_one = _final_state(tmp_path / "one")
  assert meta_two["step"] == meta_one["step"] == 6
  val_two, val_one = meta_two["history"][-1]["val"]["all"], meta_one["history"][-1]["val"]["all"]
  assert val_two["count"] == val_one["count"] == 12  # every val image, gathered from both
  assert val_two["mae"] == pytest.approx(val_one["mae"], rel=1e-2)
  assert all(np.all(np.isfinite(v)) for v in state_two.values())


def test_sigterm_saves_and_resume_is_bit_identical(fixture_root, tfds_root, tmp_path):
  flags = [AGE, *_data_flags(fixture_root, tfds_root), "--config.epochs=3",
           "--config.log_every=1", "--config.checkpoint_every_secs=1e9"]  # fmt: skip
  main = [sys.executable, "-m", "regcls_jax.main", *flags]
  work = tmp_path / "interrupted"
  proc = subprocess.Popen(
    [*main, f"--workdir={work}"], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True
  )
  seen = []
  for line in proc.stderr:  # wait until training runs, then preempt it
    seen.append(line)
    if "step 2/12" in line:
      proc.send_signal(signal.SIGTERM)
      break
  rest = proc.communicate(timeout=300)[1]
  log = "".join(seen) + rest
  assert proc.returncode == 0, log[-3000:]
  assert "SIGTERM: stopped at step" in log
  _, meta = _final_state(work)
  assert 2 <= meta["step"] < 12 and meta.get("preempted")
  resumed = subprocess.run([*main, f"--workdir={work}"], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"resuming at step {meta['step']}" in resumed.stderr
  straight = subprocess.run([*main, f"--workdir={tmp_path / 'straight'}"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
  assert straight.returncode == 0, straight.stderr[-3000:]
  (a, meta_a), (b, meta_b) = _final_state(work), _final_state(tmp_path / "straight")
  assert meta_a["step"] == meta_b["step"] == 12 and "preempted" not in meta_a
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
  fixture_root, tfds_root, tmp_path
):
  """An absurd learning rate makes the loss overflow within a few steps; the run stops with a
  one-line error naming the first non-finite step, and checkpoints/latest holds a finite
  state from before it."""
  out = subprocess.run(
    [sys.executable, "-m", "regcls_jax.main", AGE, *_data_flags(fixture_root, tfds_root),
     f"--workdir={tmp_path}", "--config.epochs=10", "--config.lr=1e30",
     "--config.model.dtype=float32", "--config.checkpoint_every_secs=0", "--config.log_every=100"],
    cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
  )  # fmt: skip
  assert out.returncode == 2, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: step ") and "loss is not finite" in last, last
  bad_step = int(last.split()[2].rstrip(":"))
  state, meta = _final_state(tmp_path)
  assert meta["step"] < bad_step
  assert all(np.all(np.isfinite(v)) for v in state.values())
  assert f"last good state (step {meta['step']})" in last


def _run(cmd, env=None):
  return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, env=env)


def test_tpu_pod_launcher_runs_the_same_command_on_every_worker():
  out = _run(["bash", "launch/tpu_pod.sh", "--tpu=pod", "--zone=us-central2-b", "--project=p",
              "--source=https://example.org/regcls-jax.git", "--dry_run", "--",
              "--config=configs/imdbwiki.py:k=10", "--workdir=/mnt/nfs/runs/age"])  # fmt: skip
  assert out.returncode == 0, out.stderr
  cmd = out.stdout
  assert cmd.startswith("gcloud compute tpus tpu-vm ssh pod --zone=us-central2-b --worker=all")
  assert "--project=p" in cmd and "REGCLS_DISTRIBUTED=auto" in cmd
  assert "git clone -q https://example.org/regcls-jax.git" in cmd
  assert (
    "python -m regcls_jax.main --config=configs/imdbwiki.py:k=10 --workdir=/mnt/nfs/runs/age" in cmd
  )


@pytest.mark.parametrize(
  "args,needle",
  [
    (["--zone=z", "--source=s", "--", "--config=c", "--workdir=w"], "--tpu is required"),
    (["--tpu=t", "--source=s", "--", "--config=c", "--workdir=w"], "--zone is required"),
    (["--tpu=t", "--zone=z", "--", "--config=c", "--workdir=w"], "--source is required"),
    (["--tpu=t", "--zone=z", "--source=s"], "missing '-- --config=... --workdir=...'"),
    (["--tpu=t", "--zone=z", "--source=s", "--", "--config=c"], "need --workdir"),
    (["--tpu=t", "--zone=z", "--source=s", "--nodes=3"], "unknown argument '--nodes=3'"),
  ],
)
def test_tpu_pod_launcher_names_what_is_missing(args, needle):
  out = _run(["bash", "launch/tpu_pod.sh", *args])
  assert out.returncode == 2 and needle in out.stderr.splitlines()[0], out.stderr


def test_slurm_script_names_what_is_missing(tmp_path):
  env = {k: v for k, v in os.environ.items() if k not in ("CONFIG", "WORKDIR", "VENV")}
  out = _run(["bash", "launch/slurm.sbatch"], env=env)
  assert out.returncode == 2 and out.stderr.startswith("error: CONFIG is required")
  out = _run(["bash", "launch/slurm.sbatch"], env={**env, "CONFIG": "configs/imdbwiki.py"})
  assert out.returncode == 2 and out.stderr.startswith("error: WORKDIR is required")
  bad_venv = {**env, "CONFIG": "c", "WORKDIR": str(tmp_path), "VENV": str(tmp_path / "nope")}
  out = _run(["bash", "launch/slurm.sbatch"], env=bad_venv)
  assert out.returncode == 2 and "has no bin/activate" in out.stderr


def test_local_launcher_and_main_name_what_is_missing(tmp_path):
  out = _run([sys.executable, "launch/local.py", "--num_processes=2"])
  assert out.returncode == 2 and "missing '--'" in out.stderr
  out = _run([sys.executable, "launch/local.py", "--num_processes=2", "--", "--config=c"])
  assert out.returncode == 2 and "must include --workdir" in out.stderr
  env = {**os.environ, "REGCLS_COORDINATOR": "127.0.0.1:1"}
  env.pop("REGCLS_NUM_PROCESSES", None)
  out = _run([sys.executable, "-m", "regcls_jax.main", AGE, f"--workdir={tmp_path}"], env=env)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines()[-1] == (
    "error: REGCLS_COORDINATOR is set but REGCLS_NUM_PROCESSES and REGCLS_PROCESS_ID are not"
  )
