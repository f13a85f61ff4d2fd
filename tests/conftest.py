"""Test set-up: 4 fake CPU devices (so the sharded code paths run), parsed absl flags."""

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()

from absl import flags  # noqa: E402

from regcls_jax import runtime  # noqa: E402

runtime.configure()
flags.FLAGS.mark_as_parsed()
