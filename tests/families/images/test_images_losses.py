"""The age model's losses with RankSim and DenseLoss (registry methods on the image family)."""

import jax.numpy as jnp
import numpy as np
import pytest

from regcls_jax.data import transforms
from regcls_jax.families.images import setup
from regcls_jax.method import conr, denseloss, ranksim, registry
from regcls_jax.train_lib.config import load_config


def _batch(k):
  rng = np.random.default_rng(0)
  return {
    "image": jnp.asarray(rng.integers(0, 255, (6, 32, 32, 3)), jnp.uint8),
    "label": jnp.array([20.0, 35.0, 35.0, 50.0, 64.0, 80.0]),
    "cls": jnp.array([0, 1, 1, 2, 3, 4]) % k,
    "cls_mask": jnp.ones(6, bool),
  }


def _loss(method, model, batch, priors=None):
  config = load_config("configs/imdbwiki.py", "runlocal,k=10")
  config.unlock()
  config.method = method
  hp = {"lam": 2.0, "scale": 1.0}
  return setup.make_loss_fn(config, priors or {})(model, batch, hp, None)[0]


def test_regcls_ranksim_adds_gamma_times_ranksim_of_the_pooled_features():
  config = load_config("configs/imdbwiki.py", "runlocal,k=10")
  model = setup.build_model(config, 10)
  model.eval()  # batch statistics fixed: both losses see the same features
  batch = _batch(10)
  both, plain = _loss("regcls+ranksim", model, batch), _loss("regcls", model, batch)
  term = ranksim.ranksim_loss(model.features(batch["image"]), batch["label"], 2.0)
  assert float(term) > 0
  assert float(both) == pytest.approx(float(plain) + 100.0 * float(term), rel=1e-5)
  reg_model = setup.build_model(config, 0)
  reg_model.eval()
  alone = _loss("ranksim", reg_model, batch) - _loss("reg", reg_model, batch)
  term = ranksim.ranksim_loss(reg_model.features(batch["image"]), batch["label"], 2.0)
  assert float(alone) == pytest.approx(100.0 * float(term), rel=1e-4)


def test_age_dense_loss_weights_the_rare_ages():
  config = load_config("configs/imdbwiki.py", "runlocal")
  model = setup.build_model(config, 0)
  model.eval()
  batch = _batch(1)
  ages = np.concatenate([np.full(50, 35.0), np.linspace(20, 80, 20)])
  priors = registry.fit_priors("dense", ages, registry.Settings())
  pred = np.asarray(model(batch["image"])[0])
  y = np.asarray(batch["label"])
  w = np.asarray(denseloss.lookup(priors["dense_grid"], priors["dense_w"], y))
  assert w[0] > w[1]  # age 20 is rarer than 35
  want = np.mean(w * (pred - y) ** 2)
  assert float(_loss("dense", model, batch, priors)) == pytest.approx(want, rel=1e-5)


def test_age_conr_sees_both_views():
  """ConR's loss: the MSE over both views plus beta times ConR of the 2B pooled features with
  the labels repeated."""
  config = load_config("configs/imdbwiki.py", "runlocal,method=conr")
  assert config.data.views == 2
  model = setup.build_model(config, 0)
  model.eval()
  batch = _batch(1)
  batch["image_view2"] = batch["image"][:, ::-1]
  both = jnp.concatenate([batch["image"], batch["image_view2"]])
  y2 = jnp.concatenate([batch["label"], batch["label"]])
  pred, h = model(both)[0], model.features(both)
  want = np.mean((np.asarray(pred) - np.asarray(y2)) ** 2) + 4.0 * float(
    conr.conr_loss(h, y2, pred, 1.0, 0.07, 0.01)
  )
  got = setup.make_loss_fn(config, {})(model, batch, {"lam": 0.0, "scale": 1.0}, None)[0]
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_two_views_are_two_draws_of_the_train_transform():
  image = np.random.default_rng(0).integers(0, 255, (224, 224, 3)).astype(np.uint8)
  out = transforms.ImdbWikiTrain(views=2).random_map(
    {"image": image, "age": 30}, np.random.default_rng(1)
  )
  assert out["image"].shape == out["image_view2"].shape == image.shape
  assert not np.array_equal(out["image"], out["image_view2"]) and out["label"] == 30
  with pytest.raises(ValueError, match="config.data.views"):
    transforms.ImdbWikiTrain(views=3)
