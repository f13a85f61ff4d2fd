"""Test set-up: 4 fake CPU devices (so the sharded code paths run), parsed absl flags."""

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()

from absl import flags  # noqa: E402

from regcls_jax.train_lib import runtime  # noqa: E402

runtime.configure()
flags.FLAGS.mark_as_parsed()


import shutil  # noqa: E402

import pytest  # noqa: E402

from regcls_jax.data import fixtures, pipeline  # noqa: E402
from regcls_jax.train_lib.config import load_config  # noqa: E402

CONFIG_FILES = {
  "imdb_wiki": "configs/imdbwiki.py",
  "nyud2": "configs/nyud2.py",
  "breakfast": "configs/breakfast.py",
}


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory):
  """The three fixture datasets, written once per test session."""
  root = tmp_path_factory.mktemp("fixtures")
  for name in CONFIG_FILES:
    fixtures.write(name, str(root / name))
  return root


@pytest.fixture(scope="session")
def tfds_root(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


def tiny_1d_config(**overrides):
  """``configs/synthetic1d.py:grid=tiny`` with ``overrides`` (config field -> value)."""
  config = load_config("configs/synthetic1d.py", "grid=tiny")
  with config.unlocked():
    for key, value in overrides.items():
      config[key] = value
  return config


def data_config(name, data_dir, tfds_dir, arg="runlocal", **overrides):
  """A real-data config pointed at ``data_dir``, unlocked for the test's overrides."""
  config = load_config(CONFIG_FILES[name], arg)
  config.unlock()
  config.data.data_dir = str(data_dir)
  config.data.tfds_dir = str(tfds_dir)
  for key, value in overrides.items():
    target = config.data if key in config.data else config
    setattr(target, key, value)
  return config


@pytest.fixture(scope="session")
def prepared(fixture_root, tfds_root):
  """``prepared(name, arg='runlocal', **overrides) -> (config, builder)`` on the fixtures."""

  def get(name, arg="runlocal", **overrides):
    config = data_config(name, fixture_root / name, tfds_root, arg, **overrides)
    return config, pipeline.prepare(config.data)

  return get


@pytest.fixture
def fixture_copy(fixture_root, tmp_path):
  """A writable copy of one fixture dataset, to break in a test."""

  def copy(name):
    dst = tmp_path / name
    shutil.copytree(fixture_root / name, dst)
    return dst

  return copy


@pytest.fixture(scope="module")
def breakfast_frames(prepared):
  """``(frames, config, builder)`` of the Breakfast fixture (a fresh config per test module)."""
  from regcls_jax.families.breakfast import frames

  config, builder = prepared("breakfast")
  return frames.load_frames(builder), config, builder
