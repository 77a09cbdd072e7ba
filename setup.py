"""Build hook: compiles the change detector `orm._diff` from `src/orm/_diff.pyx`.

Everything else lives in pyproject.toml; setuptools needs this file only to know about the
extension module.

The extension is optional: orm ships a pure-Python twin (`orm._diff_py`) with the same
interface, so a machine without a C compiler (or a build without Cython) still installs a
working package. The build then prints a warning and goes on without the extension;
`orm debug` and `orm.diff_backend()` tell which one is active. `ORM_REQUIRE_EXTENSION=1`
turns the fallback into an error (CI sets it, so that a broken build cannot pass unnoticed
by testing the twin twice).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

#: what a missing or failing compiler raises (CompileError and LinkError are CCompilerErrors)
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)

WARNING = """
********************************************************************************
WARNING: the compiled change detector orm._diff was not built:
  {reason}
orm is installed with its pure-Python twin (orm._diff_py) instead: everything works,
only flushing and loading many entities is slower. For the compiled one, install a
C compiler (and Cython) and reinstall; `orm debug` shows which one is active.
********************************************************************************
"""


def required() -> bool:
    return os.environ.get("ORM_REQUIRE_EXTENSION", "").strip().lower() in {"1", "true", "yes"}


def warn(reason: str) -> None:
    sys.stderr.write(WARNING.format(reason=reason))
    sys.stderr.flush()


class OptionalBuildExt(build_ext):
    """build_ext that falls back to the pure-Python twin when the compiler fails."""

    def run(self) -> None:
        try:
            super().run()
        except BUILD_ERRORS as exc:  # no compiler at all (PlatformError), say
            self._give_up(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as exc:
            self._give_up(exc, ext)

    def _give_up(self, exc: BaseException, ext: Extension | None = None) -> None:
        if required():
            raise exc
        # optional: setuptools then neither copies nor lists the missing file
        for e in [ext] if ext is not None else self.extensions:
            e.optional = True
        warn(f"{type(exc).__name__}: {exc}")


def extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        if required():
            raise
        warn(f"Cython is not installed ({exc})")
        return []
    return cythonize(
        [Extension("orm._diff", ["src/orm/_diff.pyx"], optional=not required())],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
