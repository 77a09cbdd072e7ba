"""Start-up of two checkouts of the package side by side, paired by round.

Usage (from the repository root)::

    git worktree add /tmp/orm-main main
    python benchmarks/startup.py --before /tmp/orm-main/src --after src --rounds 40

Each round runs, for both trees: ``-X importtime`` of ``import orm`` and of ``from orm import
ORM, PrimaryKey, entity`` (the imports a script starts with), the wall clock of ``import orm``
over an empty interpreter, and the tiny script of compare.py's START row (``benchmarks/_impls``,
``STARTUP_SCRIPT``), beside raw sqlite3's. As in compare.py, interpreters start with ``python
-S`` and site-packages on ``PYTHONPATH``, bytecode is cached (per tree, one untimed run first),
and the rows every script wrote are checked. A loaded machine inflates every figure, the pairing
keeps the ratios comparable; ``importtime`` is the minimum over the rounds, the rest medians.
"""

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _impls import orm_project, raw  # noqa: E402

SITE = sysconfig.get_paths()["purelib"]
SCRIPT_IMPORTS = "from orm import ORM, PrimaryKey, entity"


def environment(src: str | None, cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env["PYTHONPATH"] = f"{src}{os.pathsep}{SITE}" if src else SITE
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def wall(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def import_ms(code: str, env: dict[str, str], startup: set[str]) -> float:
    """`-X importtime` of `code`: the sum of its top-level imports (`from orm import ORM`
    imports orm.core after `orm` itself), without what the interpreter imports to start."""
    err = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", code],
        env=env, capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    total = 0
    for line in err.strip().splitlines()[1:]:
        _self, cumulative, name = line.split("|")
        if not name.startswith("  ") and name.strip() not in startup:
            total += int(cumulative)
    return total / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="src folder of the first checkout")
    parser.add_argument("--after", required=True, help="src folder of the second checkout")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="orm-startup-")
    scripts = {}
    for name, module in (("raw", raw), ("orm", orm_project)):
        scripts[name] = os.path.join(work, f"startup_{name}.py")
        Path(scripts[name]).write_text(module.STARTUP_SCRIPT)
    trees = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    envs = {tag: environment(src, os.path.join(work, f"pycache-{tag}")) for tag, src in trees.items()}
    envs["raw"] = environment(None, os.path.join(work, "pycache-raw"))
    empty = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", "pass"],
        env=envs["raw"], capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    startup = {line.split("|")[2].strip() for line in empty.strip().splitlines()[1:]}
    for tag in trees:
        subprocess.run([sys.executable, "-S", "-c", "import orm, orm.core"], env=envs[tag], check=True)
    runs: dict[str, list[float]] = {}
    for n in range(args.rounds):
        for tag in trees:
            env = envs[tag]
            runs.setdefault(f"import {tag}", []).append(import_ms("import orm", env, startup))
            runs.setdefault(f"script imports {tag}", []).append(
                import_ms(SCRIPT_IMPORTS, env, startup)
            )
            base = wall([sys.executable, "-S", "-c", "pass"], env)
            runs.setdefault(f"wall {tag}", []).append(
                1000 * (wall([sys.executable, "-S", "-c", "import orm"], env) - base)
            )
        for tag in ("raw", *trees):
            db = os.path.join(work, f"{tag}-{n}.db")
            script = scripts["raw" if tag == "raw" else "orm"]
            runs.setdefault(f"start {tag}", []).append(1000 * wall([sys.executable, "-S", script, db], envs[tag]))
            conn = sqlite3.connect(db)
            try:
                assert conn.execute("select name, age from note").fetchall() == [("Ann", 30)], tag
            finally:
                conn.close()
    print(f"{args.rounds} rounds; load average at the end {os.getloadavg()[0]:.2f}")
    print("| | before | after |")
    print("|---|---|---|")
    for label, key, pick in (
        ("`import orm`, `-X importtime` (minimum)", "import", min),
        (f"`{SCRIPT_IMPORTS}`, `-X importtime` (minimum)", "script imports", min),
        ("`import orm`, wall clock over an empty interpreter (median)", "wall", statistics.median),
    ):
        print(f"| {label} | {pick(runs[f'{key} before']):.1f} ms | {pick(runs[f'{key} after']):.1f} ms |")
    raw_start = runs["start raw"]
    cells = []
    for tag in trees:
        ratios = [a / b for a, b in zip(runs[f"start {tag}"], raw_start, strict=True)]
        cells.append(
            f"{statistics.median(runs[f'start {tag}']):.1f} ms, {statistics.median(ratios):.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f})"
        )
    print(
        f"| the tiny script, whole process (median; raw sqlite3 "
        f"{statistics.median(raw_start):.1f} ms) | {cells[0]} | {cells[1]} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
