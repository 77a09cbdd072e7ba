"""Type checkers see what the ORM does at run time: the keyword `__init__` that `@entity()`
generates (PEP 681 `dataclass_transform`), the entity types the EntityManager returns, and the
stub of the compiled core. A user meets the ORM through an editor; a constructor call that
the checker refuses, or a `find_one` result it does not know may be None, is a bug here.

mypy (`--strict`) and pyright (strict mode) each run once over all the checked files: the
README's tour (extracted from README.md), examples/first_entity.py, tests/typing/usage.py
(every documented way to declare and use entities, with `assert_type`), which must all check
clean, and tests/typing/mistakes.py, whose lines marked `# expect: KIND ["NAME"]` must be
reported by both checkers, and no other line.

mypy comes with the test extras. pyright is a node program: .ci/run installs it with npm;
elsewhere the test looks for `$ORM_PYRIGHT`, then `pyright` on PATH, and skips with the reason
when there is none, except in CI (`CI` set), where a checker that cannot run fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
MISTAKES = TYPING / "mistakes.py"

# What each kind of mistake looks like, per checker (message patterns).
EXPECTED = {
    "mypy": {
        "wrong-type": r'^Argument .* to "User" has incompatible type',
        "missing-argument": r'^Missing named argument .* for "User"',
        "unknown-keyword": r'^Unexpected keyword argument .* for "User"',
        "positional": r'^Too many positional arguments for "User"',
        "maybe-none": r'^Item "None" of "User \| None" has no attribute',
        "wrong-assignment": r"^Incompatible types in assignment",
        "unknown-attribute": r'^"User" has no attribute',
        "unknown-name": r"^Module has no attribute",
    },
    "pyright": {
        "wrong-type": r"^Argument of type .* cannot be assigned to parameter",
        "missing-argument": r"^Argument missing for parameter",
        "unknown-keyword": r"^No parameter named",
        "positional": r"^Expected 0 positional arguments",
        "maybe-none": r'is not a known attribute of "None"',
        "wrong-assignment": r"is not assignable to declared type|^Cannot assign to attribute",
        "unknown-attribute": r"^Cannot access attribute",
        "unknown-name": r"is not a known attribute of module",
    },
}
_MARKER = re.compile(r'#\s*expect:\s*([\w-]+)(?:\s+"([^"]+)")?\s*$')
_MYPY_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): error: (?P<message>.*)$")


@dataclass(frozen=True)
class Diagnostic:
    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file.name}:{self.line}: {self.message}"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    """A checker that cannot run fails CI (it would silently test nothing) and skips
    elsewhere, saying why."""
    if _in_ci():
        pytest.fail(f"{reason} (CI is set: the typing tests must run here)")
    pytest.skip(reason)


def readme_tour() -> str:
    """The python block of README.md's "A short tour" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## A short tour\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, 'README.md has no "## A short tour" section'
    block = re.search(r"^```python\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, 'README.md\'s "A short tour" has no ```python block'
    return block.group(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tour = tmp_path_factory.mktemp("typing") / "readme_tour.py"
    tour.write_text(readme_tour(), encoding="utf-8")
    return {
        "README tour": tour,
        "examples/first_entity.py": ROOT / "examples" / "first_entity.py",
        "tests/typing/usage.py": TYPING / "usage.py",
        "tests/typing/mistakes.py": MISTAKES,
    }


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The child inherits PYTHONPATH and runs this interpreter: the checkers resolve `orm` to
    # the package this test session imports.
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def mypy_diagnostics(
    files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> list[Diagnostic]:
    if importlib.util.find_spec("mypy") is None:
        _unavailable("mypy is not installed (pip install '.[test]')")
    pytest_cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    cache = pytest_cache.mkdir("mypy") if pytest_cache is not None else None
    cwd = tmp_path_factory.mktemp("mypy")  # no project config file applies
    result = _run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--no-pretty",
         "--no-color-output", "--show-absolute-path",
         "--cache-dir", str(cache or cwd / ".mypy_cache"),
         *[str(path) for path in files.values()]],
        cwd,
    )  # fmt: skip
    assert result.returncode in (0, 1), f"mypy failed to run:\n{result.stdout}{result.stderr}"
    found = []
    for line in result.stdout.splitlines():
        match = _MYPY_LINE.match(line)
        if match:
            found.append(
                Diagnostic(Path(match["file"]).resolve(), int(match["line"]), match["message"])
            )
    assert found or result.returncode == 0, result.stdout + result.stderr
    return found


def find_pyright() -> str:
    """`$ORM_PYRIGHT`, else `pyright` on PATH; skips (fails in CI) when neither runs."""
    configured = os.environ.get("ORM_PYRIGHT")
    if configured:
        found = shutil.which(configured)
        if found is None:
            _unavailable(f"ORM_PYRIGHT={configured!r} is not an executable")
        return str(found)
    found = shutil.which("pyright")
    if found is None:
        _unavailable(
            "pyright not found: set ORM_PYRIGHT to its executable or put it on PATH "
            "(npm install -g pyright; the PyPI wrapper needs to download node)"
        )
    return str(found)


@pytest.fixture(scope="module")
def pyright_diagnostics(
    files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> list[Diagnostic]:
    pyright = find_pyright()
    cwd = tmp_path_factory.mktemp("pyright")
    config = cwd / "pyrightconfig.json"
    config.write_text(json.dumps({"typeCheckingMode": "strict"}), encoding="utf-8")
    result = _run(
        [pyright, "--outputjson", "--project", str(config), "--pythonpath", sys.executable,
         *[str(path) for path in files.values()]],
        cwd,
    )  # fmt: skip
    assert result.returncode in (0, 1), f"pyright failed to run:\n{result.stdout}{result.stderr}"
    report = json.loads(result.stdout)
    assert report["summary"]["filesAnalyzed"] == len(files), report["summary"]
    return [
        Diagnostic(Path(d["file"]).resolve(), d["range"]["start"]["line"] + 1, d["message"])
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]


@pytest.fixture(params=["mypy", "pyright"])
def checker(request: pytest.FixtureRequest) -> tuple[str, list[Diagnostic]]:
    name = request.param
    return name, request.getfixturevalue(f"{name}_diagnostics")


def expected_mistakes() -> dict[int, tuple[str, str | None]]:
    """Line -> (kind, name the message must quote) for each marked line of mistakes.py."""
    marked = {}
    for number, line in enumerate(MISTAKES.read_text(encoding="utf-8").splitlines(), 1):
        match = _MARKER.search(line)
        if match:
            marked[number] = (match[1], match[2])
    return marked


def test_readme_tour_is_found_and_uses_the_constructor():
    tour = readme_tour()
    assert "@entity()" in tour
    assert "User(full_name=" in tour


def test_mistakes_file_marks_every_kind():
    kinds = {kind for kind, _ in expected_mistakes().values()}
    assert kinds == set(EXPECTED["mypy"]) == set(EXPECTED["pyright"])


def test_clean_files_type_check_without_errors(
    checker: tuple[str, list[Diagnostic]], files: dict[str, Path]
):
    name, diagnostics = checker
    clean = {path.resolve() for path in files.values() if path != MISTAKES}
    errors = [str(d) for d in diagnostics if d.file in clean]
    assert not errors, f"{name} reports errors in code that must check clean:\n" + "\n".join(
        errors
    )


def test_every_mistake_is_reported_and_nothing_else(checker: tuple[str, list[Diagnostic]]):
    name, diagnostics = checker
    by_line: dict[int, list[str]] = {}
    for d in diagnostics:
        if d.file == MISTAKES.resolve():
            by_line.setdefault(d.line, []).append(d.message)
    marked = expected_mistakes()
    problems = []
    for line, (kind, quoted) in marked.items():
        pattern = re.compile(EXPECTED[name][kind], re.M)
        messages = by_line.get(line, [])
        if not any(
            pattern.search(m) and (quoted is None or f'"{quoted}"' in m) for m in messages
        ):
            problems.append(f"line {line}: expected {kind} {quoted or ''}, got {messages}")
    for line, messages in sorted(by_line.items()):
        if line not in marked:
            problems.append(f"line {line}: unexpected {messages}")
    assert not problems, f"{name} on tests/typing/mistakes.py:\n" + "\n".join(problems)


def test_diff_stub_matches_the_compiled_module(tmp_path: Path):
    """src/orm/_diff.pyi names every public function and class of the compiled core with its
    real parameters (mypy's stubtest imports the module and compares)."""
    if importlib.util.find_spec("mypy") is None:
        _unavailable("mypy is not installed (pip install '.[test]')")
    try:
        import orm._diff  # noqa: F401
    except ImportError as exc:
        _unavailable(f"the compiled core orm._diff is not built here ({exc})")
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text("orm._diff.__test__\n")  # Cython's doctest table
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    result = _run(
        [sys.executable, "-m", "mypy.stubtest", "orm._diff", "--concise",
         "--allowlist", str(allowlist), "--mypy-config-file", str(config)],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_wheel_and_sdist_ship_the_type_information(tmp_path: Path):
    """Without `py.typed` in the installed package, type checkers ignore its annotations."""
    from tests.test_install import _clean_copy, _env
    from tests.test_install import _run as run_in

    source = _clean_copy(tmp_path / "source")
    # no compiler: the wheel builds in seconds, on the twin; the package data is the same
    env = _env(CC="/bin/false", CXX="/bin/false", LDSHARED="/bin/false")
    dist = tmp_path / "dist"
    wheel = run_in(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "--no-index", "-w", str(dist), "."],
        source, env,
    )  # fmt: skip
    assert wheel.returncode == 0, wheel.stdout + wheel.stderr
    sdist = run_in(
        [sys.executable, "-c",
         "import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])",
         str(dist)],
        source, env,
    )  # fmt: skip
    assert sdist.returncode == 0, sdist.stdout + sdist.stderr
    (wheel_file,) = dist.glob("orm-*.whl")
    (sdist_file,) = dist.glob("orm-*.tar.gz")
    in_wheel = set(zipfile.ZipFile(wheel_file).namelist())
    with tarfile.open(sdist_file) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in ("orm/py.typed", "orm/_diff.pyi"):
        assert name in in_wheel, sorted(in_wheel)
        assert f"src/{name}" in in_sdist, sorted(in_sdist)
