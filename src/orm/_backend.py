"""Chooses the change-detector backend once, at import.

The compiled `orm._diff` is preferred; `ORM_PURE_PYTHON=1` (or a missing compiled module)
selects the pure-Python twin `orm._diff_py`. Both expose the same functions.
"""

from __future__ import annotations

from ._typing import TYPE_CHECKING, getenv

if TYPE_CHECKING:
    from types import ModuleType

core: ModuleType

if (getenv("ORM_PURE_PYTHON") or "").strip().lower() in {"1", "true", "yes", "on"}:
    from . import _diff_py as core
else:
    try:
        from . import _diff as core  # type: ignore[no-redef]
    except ImportError:  # no compiler where this was installed
        from . import _diff_py as core  # type: ignore[no-redef]


def diff_backend() -> str:
    """Which change detector is active: "cython" (compiled) or "python" (the twin)."""
    return str(core.BACKEND)
