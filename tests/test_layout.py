"""The package layout: families import the library, never each other; one family's import
loads no other family."""

import ast
import pathlib
import subprocess
import sys

import pytest

from regcls_jax.families import FAMILIES
from regcls_jax.train_lib.config import REPO_ROOT

PACKAGE = REPO_ROOT / "regcls_jax"
FAMILY_NAMES = sorted(set(FAMILIES.values()))


def _imports(path: pathlib.Path) -> set[str]:
  """Every module ``path`` imports (absolute names; relative imports resolved)."""
  tree = ast.parse(path.read_text())
  package = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
      out |= {base} | {f"{base}.{a.name}" for a in node.names}
  return out


def test_the_layout_has_every_family_folder():
  assert FAMILY_NAMES == ["breakfast", "images", "synthetic1d", "tabular"]
  for name in FAMILY_NAMES:
    assert (PACKAGE / "families" / name / "trainer.py").is_file()


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_no_family_imports_another(family):
  others = [f for f in FAMILY_NAMES if f != family]
  for path in (PACKAGE / "families" / family).rglob("*.py"):
    bad = {m for m in _imports(path) for o in others if m.startswith(f"regcls_jax.families.{o}")}
    assert not bad, f"{path.relative_to(REPO_ROOT)} imports {sorted(bad)}"


def test_the_library_imports_no_family():
  for folder in ("method", "train_lib", "models", "data"):
    for path in (PACKAGE / folder).rglob("*.py"):
      bad = {m for m in _imports(path) if m.startswith("regcls_jax.families")}
      assert not bad, f"{path.relative_to(REPO_ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_importing_a_trainer_loads_no_other_family(family):
  code = (
    f"import sys; import regcls_jax.families.{family}.trainer; "
    "print(sorted({m.split('.')[2] for m in sys.modules "
    "if m.startswith('regcls_jax.families.') and m.count('.') >= 2}))"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == repr([family])
