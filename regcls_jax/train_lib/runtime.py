"""Process-level JAX set-up shared by the CLI, benchmarks and tests."""

from __future__ import annotations

import os

import jax


def configure(num_cpu_devices: int | None = None, cache_dir: str | None = None) -> None:
  """Call before JAX initialises its backends.

  * Exposes every CPU core as its own JAX device (unless ``XLA_FLAGS`` already forces a count),
    so the 1D grid shards its models over cores with the same mesh code it uses on GPUs.
    One single-threaded device per core ran the 1D grid 1.4x faster than one device using both
    cores (``benchmarks/sweep1d.py``). Accelerator platforms are unaffected.
  * Enables the persistent compilation cache (``REGCLS_JAX_CACHE`` or ``cache_dir``; set it to
    an empty string to disable), which saves most of the compile time of a second run. JAX
    does not cache programs with host callbacks: on a CPU that leaves out the training programs
    of the vmapped families whose models hold 16k samples or more (their shuffles sort in
    NumPy, `scan_loop.sort_keys`).
  """
  if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    jax.config.update("jax_num_cpu_devices", num_cpu_devices or os.cpu_count() or 1)
  cache = os.environ.get("REGCLS_JAX_CACHE", cache_dir)
  if cache is None:
    cache = os.path.join(os.path.expanduser("~"), ".cache", "regcls_jax", "xla")
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


# The local launcher (launch/local.py) names the cluster with these; TPU pods and SLURM jobs
# set REGCLS_DISTRIBUTED=auto and let JAX detect it (launch/tpu_pod.sh, launch/slurm.sbatch).
COORDINATOR_ENV = "REGCLS_COORDINATOR"
NUM_PROCESSES_ENV = "REGCLS_NUM_PROCESSES"
PROCESS_ID_ENV = "REGCLS_PROCESS_ID"
AUTO_ENV = "REGCLS_DISTRIBUTED"


def init_distributed() -> bool:
  """Joins a multi-process JAX run (``jax.distributed``) when the environment asks for one.

  Returns True when this process is part of a multi-process run. Must run before JAX's
  backends start (before the first device query).
  """
  env = os.environ
  if env.get(COORDINATOR_ENV):
    missing = [k for k in (NUM_PROCESSES_ENV, PROCESS_ID_ENV) if not env.get(k)]
    if missing:
      verb = "is" if len(missing) == 1 else "are"
      raise ValueError(f"{COORDINATOR_ENV} is set but {' and '.join(missing)} {verb} not")
    jax.distributed.initialize(
      coordinator_address=env[COORDINATOR_ENV],
      num_processes=int(env[NUM_PROCESSES_ENV]),
      process_id=int(env[PROCESS_ID_ENV]),
    )
    return True
  if (
    env.get(AUTO_ENV) == "auto"
    or env.get("JAX_COORDINATOR_ADDRESS")
    or env.get("SLURM_NTASKS", "1") != "1"
  ):
    jax.distributed.initialize()  # TPU pod, SLURM or Open MPI: JAX detects the cluster
    return True
  return False
