"""The CLI: one-line errors for bad input, and the family registry behind it."""

import shutil
import subprocess
import sys

import pytest

from regcls_jax import families
from regcls_jax.train_lib.config import REPO_ROOT, load_config

MAIN = [sys.executable, "-m", "regcls_jax.main"]
TINY = "--config=configs/synthetic1d.py:grid=tiny"


def cli(*args):
  return subprocess.run([*MAIN, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
  "override,needle",
  [
    ("--config.scenarios=('clean','dirty')", "config.scenarios"),
    ("--config.samplings=('extreme',)", "config.samplings"),
    ("--config.num_classes=(4,1)", "config.num_classes"),
    ("--config.lam.clean=(-1.0,)", "config.lam.clean"),
    ("--config.no_such_field=1", "no_such_field"),
    ("--config.methods=('reg','ranksym')", "config.methods"),
    ("--config.peers.lds_kernel=box", "config.peers.lds_kernel"),
  ],
)
def test_bad_input_is_one_line_naming_the_key(tmp_path, override, needle):
  out = cli(TINY, f"--workdir={tmp_path}", override)
  assert out.returncode == 2
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error:") and needle in last, out.stderr[-2000:]
  assert "Traceback" not in out.stderr


def test_workdir_that_is_a_file(tmp_path):
  path = tmp_path / "a_file"
  path.write_text("x")
  out = cli(TINY, f"--workdir={path}")
  assert out.returncode == 2
  assert (
    out.stderr.strip().splitlines()[-1] == f"error: --workdir={path} is a file; expected a "
    "directory"
  )


def test_unknown_experiment_names_the_key():
  config = load_config("configs/synthetic1d.py", "grid=tiny")
  with config.unlocked():
    config.experiment = "weather"
  with pytest.raises(ValueError, match=r"config.experiment: unknown experiment 'weather'"):
    families.train_and_evaluate(config, "/nonexistent")


@pytest.mark.parametrize(
  "experiment,module", [("imdbwiki", "images"), ("nyud2", "images"), ("breakfast", "breakfast")]
)
def test_every_config_names_its_family(experiment, module):
  config = load_config(f"configs/{experiment}.py")
  assert families.trainer(config).__name__ == f"regcls_jax.families.{module}.trainer"


def test_a_second_run_on_a_busy_workdir_refuses_in_one_line(tmp_path):
  import json
  import socket

  live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    (tmp_path / ".lock").write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
    out = cli(TINY, f"--workdir={tmp_path}")
  finally:
    live.kill()
    live.wait()
  assert out.returncode == 2 and "Traceback" not in out.stderr
  assert f"the workdir is in use by pid {live.pid}" in out.stderr.strip().splitlines()[-1]
  assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # nothing written


@pytest.mark.parametrize(
  "args,needle",
  [
    # Through the CLI, one case per family; tests/train_lib/test_validate.py tries every field.
    (("--config=configs/breakfast.py:runlocal", "--config.data.batch_size=0"), "batch_size"),
    (("--config=configs/imdbwiki.py:runlocal", "--config.lam=-1.0"), "config.lam"),
    (("--config=configs/nyud2.py:runlocal", "--config.epochs=0"), "config.epochs"),
  ],
)
def test_every_family_rejects_bad_numbers_before_writing(tmp_path, args, needle):
  workdir = tmp_path / "new"
  out = cli(*args, f"--workdir={workdir}")
  assert out.returncode == 2 and "Traceback" not in out.stderr
  assert needle in out.stderr.strip().splitlines()[-1]
  assert not workdir.exists()


def test_a_failed_start_leaves_no_workdir_behind(tmp_path):
  workdir = tmp_path / "new"
  out = cli(
    "--config=configs/imdbwiki.py", f"--config.data.data_dir={tmp_path / 'nowhere'}",
    f"--workdir={workdir}",
  )  # fmt: skip
  assert out.returncode == 2 and "IMDB-WIKI-DIR directory not found" in out.stderr
  assert not workdir.exists()


def _sigterm_after(args, marker, workdir):
  """Starts ``main``, sends SIGTERM once ``marker`` is logged, returns (code, stderr)."""
  import signal

  proc = subprocess.Popen(
    [*MAIN, *args, f"--workdir={workdir}"], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True
  )
  lines = []
  for line in proc.stderr:
    lines.append(line)
    if marker in line:
      proc.send_signal(signal.SIGTERM)
      break
  rest = proc.communicate(timeout=300)[1]
  return proc.returncode, "".join(lines) + rest


@pytest.mark.parametrize(
  "args,marker,table",
  [
    ((TINY, "--config.checkpoint_every_secs=1e9"), "chunk 1/3", "results.csv"),
    (("--config=configs/breakfast.py:runlocal,both",), "reg: 40 models", "table5.md"),
  ],
  ids=["synthetic1d", "breakfast"],
)
def test_sigterm_saves_exits_0_and_the_rerun_finishes_identically(tmp_path, args, marker, table):
  code, err = _sigterm_after(args, marker, tmp_path / "stopped")
  assert code == 0, err[-3000:]
  assert "SIGTERM: stopped" in err and not (tmp_path / "stopped" / table).exists()
  resumed = cli(*args, f"--workdir={tmp_path / 'stopped'}")
  assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr[-3000:]
  straight = cli(*args, f"--workdir={tmp_path / 'straight'}")
  assert straight.returncode == 0
  for name in ("results.csv", table):
    assert (tmp_path / "stopped" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes()


def test_a_full_disk_is_one_line_naming_the_checkpoint_directory(tmp_path):
  mount = tmp_path / "small"
  mount.mkdir()
  made = shutil.which("mount") and subprocess.run(
    ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True
  )
  if not made or made.returncode != 0:
    pytest.skip("mounting a tmpfs is not allowed here")
  try:
    out = cli(TINY, f"--workdir={mount / 'w'}")
  finally:
    subprocess.run(["umount", str(mount)])
  assert out.returncode == 2
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: [Errno 28] cannot save checkpoint step") and "checkpoints" in last
