"""`python -m orm`: the `orm` command line."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m orm"))
