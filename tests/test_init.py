"""``import jdeblur``: the public names of ``__all__`` resolve to their modules' objects, each is in
docs/api.md, and the import itself loads no JAX (the names are imported on first use)."""
import importlib
import re
import subprocess
import sys

import pytest

import jdeblur
from jdeblur.config import REPO


@pytest.mark.parametrize("name", jdeblur.__all__)
def test_a_public_name_is_its_modules_object_and_documented(name):
    assert getattr(jdeblur, name) is getattr(importlib.import_module(jdeblur._EXPORTS[name]), name)
    assert name in dir(jdeblur)
    assert re.search(rf"`{name}[(`.]", (REPO / "docs" / "api.md").read_text()), f"{name} is not in docs/api.md"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'deblur'"):
        jdeblur.deblur  # noqa: B018


def test_import_jdeblur_loads_no_jax():
    code = "import sys, jdeblur; print(sorted(m for m in ('jax', 'flax', 'numpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
    result = subprocess.run([sys.executable, "-c", code.replace("jdeblur;", "jdeblur; jdeblur.psnr;")], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert "'jax'" in result.stdout, result.stderr  # the first use imports it
