"""The tabular loader: splits, standardisation on train, one-line errors."""

import numpy as np
import pytest

from regcls_jax.data import tabular
from regcls_jax.data.common import DataError


def _write(path, header, rows):
  path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n")
  return str(path)


def test_seeded_split_and_training_standardisation(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(3.0, 2.0, (50, 2))
  y = x @ [1.0, -2.0] + 5.0
  path = _write(tmp_path / "t.csv", ["a", "b", "price"], np.column_stack([x, y]))
  table = tabular.load_table(path, "price")
  assert table.features == ("a", "b")
  sizes = {k: len(v) for k, v in table.splits.items()}
  assert sizes == {"train": 30, "val": 10, "test": 10}
  rows = np.concatenate([s.rows for s in table.splits.values()])
  np.testing.assert_array_equal(np.sort(rows), np.arange(50))  # a partition of the rows
  train = table.splits["train"]
  np.testing.assert_allclose(train.x.mean(0), 0.0, atol=1e-6)
  np.testing.assert_allclose(train.x.std(0), 1.0, atol=1e-5)
  test = table.splits["test"]
  want = (x[test.rows] - x[train.rows].mean(0)) / x[train.rows].std(0)
  np.testing.assert_allclose(test.x, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(table.y_scale.invert(test.y), y[test.rows], rtol=1e-5)
  again = tabular.load_table(path, "price", seed=0)
  np.testing.assert_array_equal(again.splits["val"].rows, table.splits["val"].rows)
  assert not np.array_equal(tabular.load_table(path, "price", seed=1).splits["val"].rows,
                            table.splits["val"].rows)  # fmt: skip


def test_split_column(tmp_path):
  rows = [[i, i * 2.0, ("train", "val", "test")[i % 3]] for i in range(9)]
  path = _write(tmp_path / "t.csv", ["f", "y", "part"], rows)
  table = tabular.load_table(path, "y", split_column="part")
  np.testing.assert_array_equal(table.splits["val"].rows, [1, 4, 7])
  assert table.features == ("f",)


@pytest.mark.parametrize(
  "header,rows,kwargs,message",
  [
    (["a", "y"], [[1, 2]] * 5, {"target": "price"}, "no target column 'price'"),
    (["a", "y"], [[1, 2], ["x1", 3]] * 3, {"target": "y"},
     "line 3: feature 'a' is 'x1', not a number"),
    (["a", "y"], [[1, 2], [2, "nan"]] * 3, {"target": "y"}, "line 3: target 'y' is missing or NaN"),
    (["a", "y", "s"], [[1, 2, "train"], [2, 3, "test"]] * 3, {"target": "y", "split_column": "s"},
     "the val split is empty"),
  ],
)  # fmt: skip
def test_bad_tables_name_the_problem(tmp_path, header, rows, kwargs, message):
  path = _write(tmp_path / "t.csv", header, rows)
  with pytest.raises(DataError, match=message) as e:
    tabular.load_table(path, **kwargs)
  assert "\n" not in str(e.value) and path in str(e.value)


def test_missing_file(tmp_path):
  with pytest.raises(DataError, match="no such file"):
    tabular.load_table(str(tmp_path / "none.csv"), "y")
