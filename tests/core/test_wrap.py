"""wrap(): state queries and serialization (hidden properties never leave)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal

import pytest

from orm import ValidationError, wrap
from tests.core.models import Color, Everything, User


def test_state_of_new_managed_and_detached_entities(em):
    u = User(full_name="a", email="a@x", password="secret")
    assert not wrap(u).is_managed() and wrap(u).is_initialized()
    assert wrap(u).get_entity_manager() is None
    em.persist(u).flush()
    assert wrap(u).is_managed() and wrap(u).get_entity_manager() is em
    assert wrap(u).get_primary_key() == 1
    wrap(u).populated()  # parity no-op, must not fail


def test_to_object_leaves_hidden_properties_out(em):
    u = User(full_name="a", email="a@x", password="secret")
    obj = wrap(u).to_object()
    assert "password" not in obj and obj["email"] == "a@x"
    assert "password" not in wrap(u).to_pojo() and "password" not in wrap(u).to_json()
    assert "email" not in wrap(u).to_object("email")
    assert "secret" not in repr(u)


def test_to_json_is_json_safe_and_to_pojo_is_detached():
    e = Everything(
        dt=datetime(2020, 1, 2, 3, 4, 5), u=uuid.UUID(int=1), dec=Decimal("1.25"),
        raw=b"\x01\x02", color=Color.GREEN, doc={"a": [1]},
    )  # fmt: skip
    data = wrap(e).to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["dt"] == "2020-01-02T03:04:05" and data["u"] == str(uuid.UUID(int=1))
    assert data["dec"] == "1.25" and data["raw"] == "AQI=" and data["color"] == "green"
    pojo = wrap(e).to_pojo()
    pojo["doc"]["a"].append(2)
    assert e.doc == {"a": [1]}


def test_wrap_of_a_non_entity():
    with pytest.raises(ValidationError, match="wrap\\(\\) needs an entity, got int"):
        wrap(5)


def test_serializing_and_repr_keep_entities_compact(em):
    """Reading `entity.__dict__` makes CPython 3.11 give an entity a dict object of its own:
    serializing or printing entities must not."""
    import tracemalloc

    em.persist([User(full_name=f"u{i}", email=f"{i}@x", password="p") for i in range(200)])
    em.flush()
    first, *users = em.fork().find(User, {})
    repr(first)  # warm up what is made once (interned names, caches)
    wrap(first).to_object()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for u in users:
        repr(u)
        wrap(u).to_object()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert held < len(users) * 16, f"{held / len(users):.0f} bytes kept per entity"
