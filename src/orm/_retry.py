"""The pause before retrying a transaction the database asked the client to run again (a
serialization failure or a deadlock): growing with each attempt, jittered so that the
transactions that collided do not collide again in step."""

from __future__ import annotations

import time

__all__ = ["pause"]

_BASE = 0.005
_CAP = 0.5


def pause(attempt: int) -> None:
    """Sleep before retry number `attempt` (1, 2, ...)."""
    import random  # a retry is rare: `import orm` does not load random (nor hashlib with it)

    time.sleep(min(_CAP, _BASE * 2**attempt) * random.uniform(0.5, 1.5))
