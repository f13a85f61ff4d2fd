"""The CLI: one-line errors for bad input, and the family registry behind it."""

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
    ("--config.methods=('reg','ranksim')", "config.methods"),
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
