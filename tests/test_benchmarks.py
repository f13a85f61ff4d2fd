"""benchmarks/gpu.sh, the script a lent GPU runs: valid bash, and on a machine without a GPU it
stops at once with one line and writes nothing."""

import os
import pathlib
import subprocess
import sys

from regcls_jax.train_lib.config import REPO_ROOT

SCRIPT = pathlib.Path(REPO_ROOT) / "benchmarks" / "gpu.sh"


def test_gpu_script_is_valid_bash():
  subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_gpu_script_without_a_gpu_exits_2_with_one_line_and_writes_nothing(tmp_path):
  out = tmp_path / "gpu_results"
  env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
  env.pop("GPU_SH_ON_CPU", None)
  proc = subprocess.run(
    ["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.strip().splitlines() == [
    "error: JAX's default backend is 'cpu', not 'gpu' (GPU_SH_ON_CPU=1 runs it anyway)"
  ]
  assert not out.exists()
