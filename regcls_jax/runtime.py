"""Process-level JAX set-up shared by the CLI, benchmarks and tests."""

from __future__ import annotations

import os

import jax


def configure(num_cpu_devices: int | None = None, cache_dir: str | None = None) -> None:
  """Call before JAX initialises its backends.

  * Exposes every CPU core as its own JAX device (unless ``XLA_FLAGS`` already forces a count),
    so the 1D sweep shards its models over cores with the same mesh code it uses on GPUs.
    One single-threaded device per core ran the sweep 1.4x faster than one device using both
    cores (``benchmarks/sweep1d.py``). Accelerator platforms are unaffected.
  * Enables the persistent compilation cache (``REGCLS_JAX_CACHE`` or ``cache_dir``; set it to
    an empty string to disable), which saves most of the compile time of a second run.
  """
  if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    jax.config.update("jax_num_cpu_devices", num_cpu_devices or os.cpu_count() or 1)
  cache = os.environ.get("REGCLS_JAX_CACHE", cache_dir)
  if cache is None:
    cache = os.path.join(os.path.expanduser("~"), ".cache", "regcls_jax", "xla")
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
