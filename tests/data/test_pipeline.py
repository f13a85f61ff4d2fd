"""Grain pipeline behaviour: keep masks, re-balancing, samplers, determinism, resume, sharding."""

import grain
import numpy as np
import pytest

from regcls_jax.data import fixtures, pipeline, samplers, transforms
from regcls_jax.method import binning
from regcls_jax.train_lib.checkpoint import Checkpointer


def _batches(loader, n):
  it = iter(loader)
  return [next(it) for _ in range(n)]


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


# --------------------------------------------------------------------------------------------
# Class-keep masking (Eq. 13) and re-balancing (Tab. 4)


def test_keep_mask_frequencies_match_the_keep_probabilities():
  edges = np.array([0.0, 1.0, 2.0, 3.0])
  keep = np.array([1.0, 0.5, 0.1])
  op = transforms.ClassKeepMask(edges, keep)
  rng = np.random.default_rng(0)
  labels = np.repeat(np.float32([0.5, 1.5, 2.5]), 4000)
  out = op.random_map({"label": labels}, rng)
  cls, mask = out["cls"], out["cls_mask"]
  np.testing.assert_array_equal(cls, np.repeat([0, 1, 2], 4000))
  for c, p in enumerate(keep):
    freq = mask[cls == c].mean()
    assert abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / 4000) + 1e-12, (c, freq, p)
  assert out["reg_mask"].shape == (12000,) and out["reg_mask"].all()  # CE only


def test_rebalance_applies_the_same_mask_to_both_losses():
  edges, keep = np.array([0.0, 5.0, 10.0]), np.array([1.0, 0.3])
  rng = np.random.default_rng(1)
  op = transforms.ClassKeepMask(edges, keep, source="label_full", rebalance=True)
  full = rng.uniform(0, 10, (3, 8, 12)).astype(np.float32)
  out = op.random_map({"label": full[:, ::2, ::2], "label_full": full}, rng)
  assert "label_full" not in out and out["cls"].shape == (3, 8, 12)
  np.testing.assert_array_equal(out["reg_mask"], out["cls_mask"][:, ::2, ::2])
  np.testing.assert_array_equal(out["cls"], (full >= 5).astype(np.int32))
  assert out["cls_mask"][out["cls"] == 0].all()  # keep probability 1


def test_loader_masks_follow_keep_probabilities_and_change_every_epoch(prepared):
  config, builder = prepared("breakfast", "runlocal,balanced")
  edges, keep = pipeline.fit_classes(builder, config)
  n = builder.info.splits["s2+s3+s4"].num_examples
  config.data.batch_size = n // 4
  batches = _batches(pipeline.make_loader(builder, config, "train", (edges, keep)), 40)
  cls = np.concatenate([b["cls"] for b in batches])
  mask = np.concatenate([b["cls_mask"] for b in batches])
  labels = np.concatenate([b["label"] for b in batches])
  np.testing.assert_array_equal(cls, binning.assign_classes(labels, edges))
  p = keep[cls]
  assert abs(mask.sum() - p.sum()) <= 4 * np.sqrt((p * (1 - p)).sum())
  # The same record gets a new draw in another epoch: compare epoch 1 and 2 by record.
  per_epoch = [np.concatenate([b["cls_mask"] for b in batches[e * 4 : e * 4 + 4]]) for e in (0, 1)]
  order = [np.lexsort(np.concatenate([b["features"] for b in batches[e * 4 : e * 4 + 4]]).T)
           for e in (0, 1)]  # fmt: skip
  assert not np.array_equal(per_epoch[0][order[0]], per_epoch[1][order[1]])


def test_rebalanced_depth_batches(prepared):
  config, builder = prepared("nyud2", "runlocal,k=10,balanced,rebalance")
  classes = pipeline.fit_classes(builder, config)
  batch = next(iter(pipeline.make_loader(builder, config, "train", classes)))
  assert batch["cls"].shape == batch["cls_mask"].shape == (4, 228, 304)
  np.testing.assert_array_equal(batch["reg_mask"], batch["cls_mask"][:, ::2, ::2])
  assert 0 < batch["cls_mask"].mean() < 1


# --------------------------------------------------------------------------------------------
# Determinism and resume


def test_one_seed_gives_identical_batches(prepared):
  config, builder = prepared("imdb_wiki", "runlocal,k=10,balanced")
  classes = pipeline.fit_classes(builder, config)
  a = _batches(pipeline.make_loader(builder, config, "train", classes), 6)
  b = _batches(pipeline.make_loader(builder, config, "train", classes), 6)
  _assert_same(a, b)
  config.data.seed = 1
  c = _batches(pipeline.make_loader(builder, config, "train", classes), 1)
  assert not np.array_equal(a[0]["label"], c[0]["label"])


@pytest.mark.parametrize("workers", [0, 2])
def test_restored_iterator_continues_with_the_next_batch(prepared, tmp_path, workers):
  config, builder = prepared("imdb_wiki", "runlocal,balanced", worker_count=workers)
  classes = pipeline.fit_classes(builder, config)
  it = iter(pipeline.make_loader(builder, config, "train", classes))
  for _ in range(5):  # past the first epoch (64 records, batch 16)
    next(it)
  ckpt = Checkpointer(str(tmp_path / "ckpt"))
  ckpt.save(5, {"w": np.zeros(2)}, {"step": 5}, data_iterator=it)
  want = [next(it) for _ in range(2)]
  fresh = iter(pipeline.make_loader(builder, config, "train", classes))
  _, meta = ckpt.restore(data_iterator=fresh)
  assert meta == {"step": 5}
  _assert_same([next(fresh) for _ in range(2)], want)
  ckpt.close()


# --------------------------------------------------------------------------------------------
# Samplers


def test_peak_weights_by_hand():
  targets = np.repeat(np.arange(100.0), 3)  # 0..99, three records each
  p, centre = samplers.peak_weights(targets, "severe", centre=50.0)
  assert centre == 50.0
  half = 0.03 * 99
  in_peak = np.abs(targets - 50) <= half  # ages 48..52: 5 values
  pf = samplers.PEAK_FRACTION
  assert pf == pytest.approx(58971 / (58971 + 6144))
  np.testing.assert_allclose(p.sum(), 1.0)
  # Each non-empty bin of the peak gets pf / 5, each of the 100 full-range values (1-pf) / 100.
  np.testing.assert_allclose(p[in_peak], pf / 5 / 3 + (1 - pf) / 100 / 3)
  np.testing.assert_allclose(p[~in_peak], (1 - pf) / 100 / 3)


def test_peak_centre_is_drawn_from_the_seed():
  targets = np.linspace(0, 10, 1000)
  _, c1 = samplers.peak_weights(targets, "mild", seed=3)
  _, c2 = samplers.peak_weights(targets, "mild", seed=3)
  assert c1 == c2 == pytest.approx(np.random.default_rng(3).uniform(0, 10))
  with pytest.raises(ValueError, match="no target"):
    samplers.peak_weights(np.array([0.0, 10.0]), "severe", centre=5.0)


def test_inverse_frequency_weights_balance_the_bins():
  targets = np.array([0.0] * 8 + [1.0] * 2 + [2.0] * 1)
  p = samplers.inverse_frequency_weights(targets, num_bins=3)
  np.testing.assert_allclose([p[:8].sum(), p[8:10].sum(), p[10:].sum()], [1 / 3] * 3)


def test_shuffling_sampler_permutes_every_epoch_anew():
  s = samplers.EpochSampler(50, seed=4, num_epochs=3)
  keys = np.array([s[i].record_key for i in range(150)]).reshape(3, 50)
  for epoch in keys:
    np.testing.assert_array_equal(np.sort(epoch), np.arange(50))
  assert not np.array_equal(keys[0], keys[1]) and not np.array_equal(keys[1], keys[2])
  assert s[7].rng.random() == np.random.Generator(np.random.Philox(key=4 + 7)).random()


def test_weighted_sampler_draws_by_weight_and_anew_per_epoch():
  p = np.array([0.7, 0.2, 0.1])
  s = samplers.EpochSampler(3, seed=0, num_epochs=2, probabilities=p, epoch_size=20000)
  keys = np.array([s[i].record_key for i in range(40000)])
  for k in range(3):
    freq = (keys[:20000] == k).mean()
    assert abs(freq - p[k]) < 4 * np.sqrt(p[k] * (1 - p[k]) / 20000)
  assert not np.array_equal(keys[:20000], keys[20000:])
  again = samplers.EpochSampler(3, seed=0, num_epochs=2, probabilities=p, epoch_size=20000)
  assert [again[i].record_key for i in range(100)] == keys[:100].tolist()
  with pytest.raises(IndexError):
    s[40000]


def test_peak_resampled_loader_concentrates_on_the_peak(prepared):
  config, builder = prepared("imdb_wiki", "runlocal", sampling="severe", sampling_bins=100)
  train = pipeline.targets(builder, config.data, "train")
  centre = float(train.max())  # an age far from the fixture's 25-35 peak
  config.data.peak_centre = centre
  half = 0.03 * (train.max() - train.min())
  assert np.mean(np.abs(train - centre) <= half) < 0.05
  loader = pipeline.make_loader(builder, config, "train")
  labels = np.concatenate([b["label"] for b in _batches(loader, 40)])
  peak_share = np.mean(np.abs(labels - centre) <= half)
  assert peak_share > 0.85  # 90.6% expected, plus background draws that land in the peak


def test_shards_split_one_global_stream(prepared):
  """Two hosts' loaders (shard 0 and 1 of 2) see disjoint halves of the single-host stream."""
  _, builder = prepared("breakfast")
  source = builder.as_data_source(split="s1")
  sampler = samplers.EpochSampler(len(source), seed=0)

  def frames(shard):
    loader = grain.DataLoader(
      data_source=source,
      sampler=sampler,
      operations=[transforms.BreakfastFrame("frames")],
      worker_count=0,
      shard_options=grain.sharding.ShardOptions(shard, 2) if shard is not None else
      grain.sharding.NoSharding(),
    )  # fmt: skip
    it = iter(loader)
    return [float(next(it)["label"]) for _ in range(30 if shard is not None else 60)]

  whole = frames(None)
  assert frames(0) == whole[0::2] and frames(1) == whole[1::2]


# --------------------------------------------------------------------------------------------
# Transforms against hand-computed values, device placement


def test_lighting_by_hand():
  image = np.zeros((1, 1, 3), np.float32)
  alpha = np.array([1.0, 0.0, 0.0])
  # alpha * eigval = [0.2175, 0, 0]; eigvec @ that = first column * 0.2175.
  want = np.array([-0.5675, -0.5808, -0.5836]) * 0.2175
  np.testing.assert_allclose(transforms.lighting(image, alpha)[0, 0], want, rtol=1e-6)


def test_color_jitter_by_hand():
  image = np.array([[[0.2, 0.4, 0.6], [0.0, 0.5, 1.0]]], np.float32)
  grey = image @ np.array([0.299, 0.587, 0.114])
  b, c, s = 1.2, 0.8, 0.5
  want = image * b  # brightness first
  want = want * s + (want @ np.array([0.299, 0.587, 0.114]))[..., None] * (1 - s)  # saturation
  want = want * c + (want @ np.array([0.299, 0.587, 0.114])).mean() * (1 - c)  # contrast
  got = transforms.color_jitter(image, np.array([b, c, s]), np.array([0, 2, 1]))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert grey.shape == (1, 2)


def test_align_corners_upsampling_by_hand():
  """x2 with align_corners=True: the 2 x 2 corners stay, rows/columns in between sample at
  1/3 and 2/3 (torch's bilinear, align_corners=True, gives the same)."""
  a = np.array([[0.0, 3.0], [6.0, 9.0]], np.float32)
  want = np.array([[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]], np.float32)
  np.testing.assert_allclose(transforms.resize_align_corners(a, (4, 4)), want, atol=1e-6)


def test_depth_cls_targets_are_the_upsampled_regression_target(prepared):
  """NYUD2's per-pixel cls targets: the 114 x 152 target upsampled x2 (align corners), as the
  authors' depth code builds them, not a crop of the full-resolution depth."""
  _, builder = prepared("nyud2", "runlocal,k=10")
  element = builder.as_data_source(split="train")[0]
  out = transforms.Nyud2Train().random_map(element, np.random.default_rng(0))
  assert out["label"].shape == (114, 152) and out["label_full"].shape == (228, 304)
  np.testing.assert_allclose(out["label_full"][::227, ::303], out["label"][::113, ::151])
  np.testing.assert_allclose(
    out["label_full"], transforms.resize_align_corners(out["label"], (228, 304)), rtol=1e-6
  )


def test_runlocal_uses_the_fixture_written_on_first_use(tmp_path, monkeypatch):
  from regcls_jax.train_lib.config import load_config

  monkeypatch.setattr(fixtures, "FIXTURE_ROOT", str(tmp_path / "fixtures"))
  config = load_config("configs/breakfast.py", "runlocal")
  config.unlock()
  config.data.tfds_dir = str(tmp_path / "tfds")
  assert config.data.data_dir == "" and config.data.fixture
  builder = pipeline.prepare(config.data)
  assert (tmp_path / "fixtures" / "breakfast" / "mapping" / "mapping.txt").exists()
  assert builder.info.splits["s1"].num_examples > 0
