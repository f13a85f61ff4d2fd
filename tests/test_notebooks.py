"""The Colab notebooks, executed top to bottom on CPU with runlocal sizes (nbclient)."""

import time

import nbformat
import pytest
from nbclient import NotebookClient

from regcls_jax.train_lib.config import REPO_ROOT

# The budget per notebook; a cold CI machine compiles everything, so allow headroom
# for compilation on top (what is measured is printed with -s and in the closing note).
MINUTE = 60


def _execute(name: str, env: dict, monkeypatch, tmp_path):
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  monkeypatch.setenv("REGCLS_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
  nb = nbformat.read(REPO_ROOT / "colab" / name, as_version=4)
  client = NotebookClient(
    nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
  )
  start = time.perf_counter()
  client.execute()
  seconds = time.perf_counter() - start
  print(f"{name}: {seconds:.1f} s")
  return nb, seconds


def _outputs(nb, output_type=None):
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      if output_type is None or out.get("output_type") == output_type:
        yield out


def test_quickstart_runs_the_1d_grid_and_shows_fig3(monkeypatch, tmp_path):
  nb, seconds = _execute("quickstart_1d.ipynb", {"REGCLS_NOTEBOOK_GRID": "tiny"}, monkeypatch,
                         tmp_path)  # fmt: skip
  assert not list(_outputs(nb, "error"))
  images = [o for o in _outputs(nb, "display_data") if "image/png" in o["data"]]
  tables = [o for o in _outputs(nb, "display_data") if "text/markdown" in o["data"]]
  assert len(images) == 1 and len(tables) == 1
  assert "| clean | severe |" in tables[0]["data"]["text/markdown"]
  assert (tmp_path / "work" / "synthetic1d_tiny" / "results.csv").exists()
  assert seconds < 1.5 * MINUTE


def test_age_notebook_trains_and_evaluates_from_the_checkpoint(monkeypatch, tmp_path):
  # Without REGCLS_AGE_DATA_DIR the notebook uses the fixture (written to ~/.cache if missing).
  nb, seconds = _execute(
    "age_imdbwiki.ipynb", {"REGCLS_NOTEBOOK_EPOCHS": "1"}, monkeypatch, tmp_path
  )
  assert not list(_outputs(nb, "error"))
  tables = [o["data"]["text/markdown"] for o in _outputs(nb, "display_data")
            if "text/markdown" in o["data"]]  # fmt: skip
  assert len(tables) == 1 and "| many |" in tables[0] and "| few |" in tables[0]
  assert (tmp_path / "work" / "age" / "eval_test.json").exists()
  assert any("image/png" in o["data"] for o in _outputs(nb, "display_data"))
  assert seconds < 1.5 * MINUTE


@pytest.mark.parametrize("name", ["quickstart_1d.ipynb", "age_imdbwiki.ipynb"])
def test_notebooks_call_the_library_and_are_stored_without_outputs(name):
  nb = nbformat.read(REPO_ROOT / "colab" / name, as_version=4)
  nbformat.validate(nb)
  code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
  assert "train_step" not in code and "value_and_grad" not in code  # no training logic in cells
  assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", ["quickstart_1d.ipynb", "age_imdbwiki.ipynb"])
def test_install_cell_pins_the_runtimes_jax_and_asks_for_the_url_in_a_form(name):
  import importlib.metadata

  nb = nbformat.read(REPO_ROOT / "colab" / name, as_version=4)
  source = nb.cells[1].source
  assert 'REPO_URL = ""  # @param {type:"string"}' in source  # a Colab form field, no env var
  assert "os.environ" not in source
  namespace = {}
  exec(compile(source, name, "exec"), namespace)  # regcls_jax is importable: no install
  pins = namespace["accelerator_pins"]()
  for package in ("jax", "jaxlib"):
    assert f"{package}=={importlib.metadata.version(package)}" in pins
