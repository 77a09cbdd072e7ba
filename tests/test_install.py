"""Installing without a C compiler (or without Cython) succeeds and runs on the pure-Python
twin, as the README promises.

The package is built as pip builds it, offline: `pip wheel --no-build-isolation` with this
environment's setuptools and Cython (both in the test extras), from a clean copy of the
sources (no compiled module or generated C left over from a local build). The wheel is then
installed into a folder of its own and imported from there in a child process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

WARNING = "WARNING: the compiled change detector orm._diff was not built"


def _clean_copy(dest: Path) -> Path:
    dest.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "src" / "orm",
        dest / "src" / "orm",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "*.html", "__pycache__"),
    )
    return dest


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "ORM_PURE_PYTHON", "ORM_CONFIG", "ORM_REQUIRE_EXTENSION")}
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("missing", ["compiler", "cython"])
def test_install_without_a_compiler_or_cython_runs_on_the_twin(tmp_path: Path, missing: str):
    source = _clean_copy(tmp_path / "source")
    if missing == "compiler":
        # a compiler that fails on every call: gcc missing or broken
        env = _env(CC="/bin/false", CXX="/bin/false", LDSHARED="/bin/false")
    else:
        blocker = tmp_path / "blocker" / "Cython"
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text('raise ImportError("Cython is not installed")\n')
        env = _env(PYTHONPATH=str(blocker.parent))

    built = _run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "--no-index", "-w", str(tmp_path / "dist"), "."],
        source, env,
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-4000:]
    assert WARNING in output
    assert "pure-Python twin (orm._diff_py)" in output
    reason = "CompileError" if missing == "compiler" else "Cython is not installed"
    assert reason in output

    (wheel,) = (tmp_path / "dist").glob("orm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "orm/_diff_py.py" in names
    assert not [n for n in names if n.startswith("orm/_diff.") and n.endswith((".so", ".pyd"))]

    site = tmp_path / "site"
    installed = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
         str(site), str(wheel)],
        tmp_path, _env(),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    (project / "orm_config.py").write_text(
        "from orm import define_config\n\nconfig = define_config(db_name=':memory:', "
        "entities=[])\n"
    )
    env = _env(PYTHONPATH=str(site), NO_COLOR="1")
    probe = _run(
        [sys.executable, "-c", "import orm; print(orm.__file__); print(orm.diff_backend())"],
        project, env,
    )
    assert probe.returncode == 0, probe.stderr
    where, backend = probe.stdout.split()
    assert Path(where).resolve().is_relative_to(site.resolve())
    assert backend == "python"

    debug = _run([sys.executable, "-m", "orm", "debug"], project, env)
    assert debug.returncode == 0, debug.stdout + debug.stderr
    assert (
        "change detector: python (pure-Python twin; orm._diff is not compiled" in debug.stdout
    )
    assert "database connection successful" in debug.stdout
