"""Build hook: compiles the change detector `orm._diff` from `src/orm/_diff.pyx`.

Everything else lives in pyproject.toml; setuptools needs this file only to know about the
extension module.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [Extension("orm._diff", ["src/orm/_diff.pyx"])]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
        },
    ),
)
