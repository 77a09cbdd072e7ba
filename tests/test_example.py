"""The first-entity walkthrough runs end to end and prints what the guide prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "first_entity.py"


def test_first_entity_walkthrough(tmp_path):
    db = tmp_path / "sqlite.db"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), str(db)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    expected_in_order = [
        "ValidationError: Using the global EntityManager (orm.em)",
        "TableNotFoundException: select `u0`.`id`",
        "no such table: user",
        "[query] create table `user`",
        "[query] insert into `user` (`full_name`, `email`, `password`, `bio`) values "
        "('Foo Bar', 'foo@bar.com', '123456', '')",
        "user id is: 1",
        "users are the same? True",
        "[query] update `user` set `bio` = '...' where `id` = 1",
        "users are the same? False",
        "bio after refresh: '...'",
        "userRef is initialized: False",
        "ValidationError: User.email cannot be read",
        "userRef is initialized: True",
        "{'id': 1, 'full_name': 'Foo Bar', 'email': 'foo@bar.com', 'bio': '...'}",
        "[query] delete from `user` where `id` = 1",
        "users left: 0",
    ]
    position = 0
    for text in expected_in_order:
        found = out.find(text, position)
        assert found >= 0, f"missing (in order): {text!r}\n---\n{out}"
        position = found + len(text)
    identity_step = out.split("users are the same? True")[0].rsplit("== ", 1)[1]
    assert "[query] select" not in identity_step, "identity map lookup ran a query"
    assert db.exists()
