"""The built wheel, once: `roomc.*` only (no generic top-level names), schemas inside, and it runs."""
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True)
    return next(out.glob("roomc-*.whl"))


def test_wheel_installs_only_under_roomc(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("roomc-")}
    assert top == {"roomc"}
    assert "roomc/schema/roomc.schema.json" in names
    assert "roomc/schema/sautikit-actions.schema.json" in names
    assert "roomc/compiler/rules/redirect_loop.py" in names
    assert {"roomc/runtime/templates/page.html", "roomc/runtime/templates/rooms.html",
            "roomc/runtime/static/ui.js", "roomc/runtime/static/ui.css"} <= set(names), "the live page ships"
    assert not any(n.startswith("roomc/__init__") for n in names), "roomc stays a namespace package"


def test_installed_wheel_runs_without_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    # The base interpreter, with the wheel and the dependencies on its path but not this
    # checkout's editable install, run from outside the repository.
    base = Path(sys.base_prefix) / "bin" / "python3"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])}
    probe = subprocess.run([str(base), "-c", "import roomc.compiler, roomc.schema; print(roomc.compiler.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.startswith(str(target))
    lint = subprocess.run([str(base), "-c", "from roomc.cli import run; run()", "lint", str(ROOT / "rooms")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    schema = subprocess.run([str(base), "-c", "from roomc.cli import run; run()", "schema"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True)
    assert '"title": "roomc room policy"' in schema.stdout
