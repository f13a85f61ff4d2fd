"""Each real dataset from fixture files through its TFDS builder to records and batches."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from regcls_jax.data import breakfast, common, nyud2, pipeline


def _csv_rows(path):
  with open(path, newline="") as f:
    return list(csv.reader(f))


def _first(loader):
  return next(iter(loader))


def _all(loader):
  """Every batch of an eval loader, concatenated per key."""
  batches = list(loader)
  return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


# --------------------------------------------------------------------------------------------
# IMDB-WIKI-DIR


def test_imdb_wiki_splits_follow_the_csv(prepared, fixture_root):
  config, builder = prepared("imdb_wiki")
  rows = _csv_rows(fixture_root / "imdb_wiki" / "imdb_wiki.csv")[1:]
  for split in ("train", "val", "test"):
    want = [(float(a), p) for a, p, s in rows if s == split]
    source = builder.as_data_source(split=split)
    got = [(float(r["age"]), r["path"].decode()) for r in source]
    assert got == want  # membership and order
    np.testing.assert_array_equal(
      pipeline.targets(builder, config.data, split), [a for a, _ in want]
    )


def test_imdb_wiki_stored_image_is_the_resized_face(prepared, fixture_root):
  _, builder = prepared("imdb_wiki")
  record = builder.as_data_source(split="train")[5]  # the fixture's greyscale face
  original = Image.open(fixture_root / "imdb_wiki" / record["path"].decode())
  assert original.mode == "L"
  want = np.asarray(original.convert("RGB").resize((224, 224), Image.BILINEAR), np.float32)
  assert record["image"].shape == (224, 224, 3) and record["image"].dtype == np.uint8
  assert np.abs(record["image"] - want).mean() < 2.0  # JPEG q95 re-encoding only


def test_imdb_wiki_train_and_eval_batches(prepared):
  config, builder = prepared("imdb_wiki")
  batch = _first(pipeline.make_loader(builder, config, "train"))
  assert batch["image"].shape == (16, 224, 224, 3) and batch["image"].dtype == np.uint8
  assert batch["label"].dtype == np.float32
  train_ages = set(pipeline.targets(builder, config.data, "train"))
  assert set(batch["label"].tolist()) <= train_ages
  test = _all(pipeline.make_loader(builder, config, "test"))
  np.testing.assert_array_equal(test["label"], pipeline.targets(builder, config.data, "test"))
  normalized = pipeline.transforms.normalize_dir_image(test["image"])
  assert normalized.dtype == np.float32
  np.testing.assert_allclose(normalized, (test["image"] / 255.0 - 0.5) / 0.5, atol=1e-6)


def test_imdb_wiki_train_augmentation_is_pad_crop_flip():
  image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
  out = pipeline.transforms.ImdbWikiTrain().random_map(
    {"image": image, "age": 30.0}, np.random.default_rng(7)
  )
  rng = np.random.default_rng(7)  # the same draws, reference with np.pad
  top, left = rng.integers(0, 33, size=2)
  want = np.pad(image, ((16, 16), (16, 16), (0, 0)))[top : top + 224, left : left + 224]
  if rng.random() < 0.5:
    want = want[:, ::-1]
  np.testing.assert_array_equal(out["image"], want)
  assert out["label"] == np.float32(30.0)


# --------------------------------------------------------------------------------------------
# NYUD2-DIR


def test_nyud2_validation_is_one_fifth_of_the_scenes(prepared, fixture_root):
  _, builder = prepared("nyud2")
  scenes = {
    split: {r["rgb_path"].decode().split("/")[2] for r in builder.as_data_source(split=split)}
    for split in ("train", "val")
  }
  all_scenes = sorted(scenes["train"] | scenes["val"])
  assert len(all_scenes) == 5 and not scenes["train"] & scenes["val"]
  # The last 5 - 4 * 5 // 5 = 1 of numpy's seed-0 permutation of 5 scenes, 2 0 1 3 | 4.
  assert scenes["val"] == {all_scenes[4]}
  tests = [r["rgb_path"].decode() for r in builder.as_data_source(split="test")]
  assert tests == [row[0] for row in _csv_rows(fixture_root / "nyud2" / nyud2.TEST_CSV)]


def test_nyud2_depth_units(prepared, fixture_root):
  """Training PNGs are 8-bit (value / 255 * 10 m), test PNGs 16-bit millimetres."""
  _, builder = prepared("nyud2")
  for split, scale in (("train", 10 / 255), ("test", 1e-3)):
    record = builder.as_data_source(split=split)[0]
    rgb_rel = record["rgb_path"].decode()
    depth_rel = rgb_rel.replace(".jpg", ".png").replace("_colors", "_depth")
    raw = Image.open(fixture_root / "nyud2" / depth_rel)
    want = np.asarray(raw.convert("F").resize((320, 240), Image.BILINEAR)) * scale
    got = common.decode(record["depth"]) * record["depth_scale"]
    assert got.shape == (240, 320)
    np.testing.assert_allclose(got, want, atol=scale * 0.51)  # rounding to whole source units
    assert record["depth_scale"] == pytest.approx(scale)


def test_nyud2_eval_batches_crop_and_mask(prepared, fixture_root):
  config, builder = prepared("nyud2")
  test = _all(pipeline.make_loader(builder, config, "test"))
  assert test["image"].shape == (6, 228, 304, 3) and test["image"].dtype == np.float32
  mask = np.load(fixture_root / "nyud2" / nyud2.MASK_FILE)[:, 0]
  np.testing.assert_array_equal(test["mask"], mask)
  records = builder.as_data_source(split="test")
  stored = common.decode(records[2]["depth"]) * records[2]["depth_scale"]
  np.testing.assert_allclose(test["label"][2], stored[6:234, 8:312], rtol=1e-6)
  # The balanced mask keeps the same number of pixels in every 0.1 m bin >= 7 that it touches.
  counts = np.bincount(nyud2.depth_bins(test["label"][test["mask"]]), minlength=100)
  assert counts[:7].sum() == 0 and len(set(counts[counts > 0])) == 1


def test_nyud2_train_batches(prepared):
  config, builder = prepared("nyud2")
  batch = _first(pipeline.make_loader(builder, config, "train"))
  assert batch["image"].shape == (4, 228, 304, 3) and batch["image"].dtype == np.float32
  assert batch["label"].shape == (4, 114, 152) and "label_full" not in batch
  assert 0 <= batch["label"].min() and batch["label"].max() <= 10
  assert np.isfinite(batch["image"]).all()


def test_balanced_test_mask_counts():
  rng = np.random.default_rng(0)
  depths = rng.uniform(0.2, 6.0, (3, 228, 304))
  mask = nyud2.balanced_test_mask(depths)
  assert mask.shape == (3, 1, 228, 304) and mask.dtype == bool
  bins = nyud2.depth_bins(depths)
  full = np.bincount(bins[bins >= 7], minlength=100)
  kept = np.bincount(bins[mask[:, 0]], minlength=100)
  np.testing.assert_array_equal(kept[kept > 0], np.full((full > 0).sum(), full[full > 0].min()))


def test_nyud2_classes_from_the_pixel_histogram(prepared):
  """Classes fitted from the stored value counts equal classes fitted to every pixel."""
  config, builder = prepared("nyud2", "runlocal,k=10,balanced")
  pixels = np.concatenate(
    [
      (common.decode(r["depth"]) * np.float32(r["depth_scale"])).ravel()
      for r in builder.as_data_source(split="train")
    ]
  )
  edges, keep = pipeline.fit_classes(builder, config)
  want_edges, want_keep = pipeline.binning.make_classes(
    pixels[pixels > 0], 10, True, value_range=(0.0, 10.0), rounding="round"
  )
  np.testing.assert_allclose(edges, want_edges, rtol=1e-6)
  np.testing.assert_allclose(keep, want_keep, rtol=1e-6)


@pytest.mark.parametrize(
  "name,arg,want",
  [
    ("imdb_wiki", "runlocal,k=10", np.linspace(0, 100, 11)),  # the authors' fixed age range
    ("imdb_wiki", "runlocal,k=2,balanced", [0.0, 50.0, 100.0]),  # never fewer than 2 classes
    ("nyud2", "runlocal,k=10", np.linspace(0, 10, 11)),  # depth 0-10 m
  ],
)
def test_image_classes_span_the_fixed_range(prepared, name, arg, want):
  """The image code's classes: linspace over ages 0-100 / depth 0-10 m, not the training
  range; `k=2,balanced` on the age fixture equalises into one class, so the 2 uniform classes
  on [0, 100] are kept (before, a 1-way head with an identically zero CE)."""
  config, builder = prepared(name, arg)
  edges, keep = pipeline.fit_classes(builder, config)
  np.testing.assert_allclose(edges, want)
  assert len(keep) == len(edges) - 1 and keep.max() == 1.0


# --------------------------------------------------------------------------------------------
# Breakfast


def test_progress_targets_by_hand():
  np.testing.assert_allclose(breakfast.progress_targets(4, "percent"), [0, 25, 50, 75])
  np.testing.assert_allclose(breakfast.progress_targets(3, "frames"), [0, 1, 2])
  with pytest.raises(ValueError, match="target"):
    breakfast.progress_targets(3, "seconds")


def test_breakfast_person_groups():
  assert [breakfast.person_group(p) for p in (3, 15, 16, 28, 29, 41, 42, 54)] == [
    "s1", "s1", "s2", "s2", "s3", "s3", "s4", "s4"
  ]  # fmt: skip
  assert breakfast.train_groups("s3") == "s1+s2+s4"
  with pytest.raises(ValueError, match="P55"):
    breakfast.person_group(55)


def test_breakfast_records_match_the_text_files(prepared, fixture_root):
  _, builder = prepared("breakfast")
  source = builder.as_data_source(split="s2")
  videos = builder.info.metadata["videos"]["s2"]
  assert sum(n for _, n, _ in videos) == len(source)
  name, n, activity = videos[1]
  want = np.loadtxt(fixture_root / "breakfast" / "features" / f"{name}.txt", dtype=np.float32)
  start = videos[0][1]
  for i in range(n):
    r = source[start + i]
    np.testing.assert_array_equal(r["features"], want[i])
    assert (r["frame"], r["num_frames"], r["person"]) == (i, n, 16)
    assert breakfast.ACTIVITIES[r["activity"]] == activity


@pytest.mark.parametrize("target", ["percent", "frames"])
def test_breakfast_split_and_targets(prepared, target):
  config, builder = prepared("breakfast", f"runlocal,split=s3,target={target}")
  groups = builder.info.metadata["videos"]
  train = _all(pipeline.make_loader(builder, config, "train", train=False))
  test = _all(pipeline.make_loader(builder, config, "test"))
  sizes = {g: sum(n for _, n, _ in v) for g, v in groups.items()}
  assert len(train["label"]) == sizes["s1"] + sizes["s2"] + sizes["s4"]
  assert len(test["label"]) == sizes["s3"]
  want = np.concatenate([breakfast.progress_targets(n, target) for _, n, _ in groups["s3"]])
  np.testing.assert_allclose(test["label"], want)
  assert test["features"].shape == (sizes["s3"], 64)


def test_fixture_layouts_are_the_published_ones(fixture_root):
  files = {
    name: sorted(os.path.relpath(os.path.join(d, f), fixture_root / name)
                 for d, _, fs in os.walk(fixture_root / name) for f in fs)
    for name in ("imdb_wiki", "nyud2", "breakfast")
  }  # fmt: skip
  assert "imdb_wiki.csv" in files["imdb_wiki"]
  assert any(f.startswith("imdb_crop/") for f in files["imdb_wiki"])
  assert {nyud2.TRAIN_CSV, nyud2.TEST_CSV, nyud2.MASK_FILE} <= set(files["nyud2"])
  assert "mapping/mapping.txt" in files["breakfast"]
  assert len([f for f in files["breakfast"] if f.startswith("features/")]) == 40
  ages = [int(r[0]) for r in _csv_rows(fixture_root / "imdb_wiki" / "imdb_wiki.csv")[1:]]
  hist = np.bincount(np.asarray(ages) // 10)
  assert hist.max() >= 4 * np.median(hist[hist > 0])  # deliberately imbalanced


def test_breakfast_video_names_are_the_released_ones():
  """The released feature files name the salad activity 'salat'."""
  assert breakfast.parse_video_name("features/P16_webcam02_P16_salat.txt") == (
    16,
    "webcam02",
    "salat",
  )
  assert "salad" not in breakfast.ACTIVITIES and len(breakfast.ACTIVITIES) == 10
  with pytest.raises(common.DataError, match="expected a name like"):
    breakfast.parse_video_name("features/P16_cam01_P16_salad.txt")


def test_nyud2_validation_scenes_as_the_authors_pick_them():
  """The last n - 4n//5 of numpy's seed-0 permutation of the sorted scenes: for n = 10 the
  permutation is 2 8 4 9 1 6 7 3 | 0 5, for n = 7 it is 6 2 1 3 0 | 5 4 (4 * 7 // 5 = 5)."""
  from regcls_jax.data import nyud2

  assert nyud2.val_scenes([f"s{i}" for i in range(10)]) == {"s0", "s5"}
  assert nyud2.val_scenes([f"s{i}" for i in reversed(range(7))] * 2) == {"s4", "s5"}
