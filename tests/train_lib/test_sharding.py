"""Meshes, the vmapped models program and device batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regcls_jax.data import pipeline
from regcls_jax.train_lib import sharding


def test_round_up_and_padded_order():
  assert [sharding.round_up(n, 4) for n in (0, 1, 4, 5, 8)] == [4, 4, 4, 8, 8]
  np.testing.assert_array_equal(sharding.padded_order(5, 4), [0, 1, 2, 3, 4, 4, 4, 4])
  np.testing.assert_array_equal(sharding.padded_order(4, 4), [0, 1, 2, 3])


def test_models_program_equals_a_loop_over_models():
  """Per-model arguments are sliced over the mesh, shared ones (in_axes None) are not."""
  mesh = sharding.models_mesh()
  assert mesh.devices.size == 4 and mesh.axis_names == ("models",)

  def one(shared, w, b):
    return {"out": jnp.tanh(shared @ w + b), "norm": jnp.sum(w**2)}

  rng = np.random.default_rng(0)
  shared = rng.normal(size=(5, 3)).astype(np.float32)
  w = rng.normal(size=(8, 3, 2)).astype(np.float32)
  b = rng.normal(size=(8, 2)).astype(np.float32)
  program = sharding.models_program(one, mesh, in_axes=(None, 0, 0))
  got = jax.device_get(program(shared, w, b))
  assert got["out"].shape == (8, 5, 2) and got["norm"].shape == (8,)
  for i in range(8):
    np.testing.assert_allclose(got["out"][i], np.tanh(shared @ w[i] + b[i]), rtol=1e-5)
    np.testing.assert_allclose(got["norm"][i], np.sum(w[i] ** 2), rtol=1e-5)
  # Every argument per model (in_axes 0, the default).
  both = sharding.models_program(lambda x, y: x * y, mesh)
  np.testing.assert_allclose(both(b, b), b * b)


def test_models_program_needs_a_multiple_of_the_device_count():
  program = sharding.models_program(lambda x: x + 1, sharding.models_mesh())
  with pytest.raises(ValueError):
    program(np.zeros((6, 2), np.float32))


def test_device_batches_shard_over_the_data_axis(prepared):
  config, builder = prepared("breakfast", "runlocal")
  mesh = sharding.data_mesh()
  host = next(iter(pipeline.make_loader(builder, config, "train")))
  batch = next(sharding.device_batches(iter([host]), mesh))
  assert batch["features"].sharding == sharding.batch_sharding(mesh)
  assert len(batch["features"].addressable_shards) == 4
  np.testing.assert_array_equal(np.asarray(batch["features"]), host["features"])


def test_device_batch_with_accumulation_is_micro_batches():
  mesh = sharding.data_mesh()
  host = {"x": np.arange(16 * 3, dtype=np.float32).reshape(16, 3)}
  batch = sharding.device_batch(host, mesh, accum_steps=2)
  assert batch["x"].shape == (2, 8, 3)
  np.testing.assert_array_equal(np.asarray(batch["x"]).reshape(16, 3), host["x"])
  # Each micro-batch is split over the devices, not the micro-batch axis.
  assert {s.data.shape for s in batch["x"].addressable_shards} == {(2, 2, 3)}


def test_host_copy_and_gather_in_one_process():
  x = jax.device_put(jnp.arange(4.0))
  np.testing.assert_array_equal(sharding.host_copy({"a": x})["a"], np.arange(4.0))
  arrays = {"p": np.arange(3)}
  assert sharding.gather_processes(arrays) is arrays
  assert sharding.any_process(True) and not sharding.any_process(False)
