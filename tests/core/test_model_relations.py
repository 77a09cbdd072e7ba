"""A model-based check of relations: links and unlinks through both sides, flushes, rolled-back
transactions, removals, populate and `clear()`, at random, on each database.

Writers and posts (`Post.writer`, a nullable ManyToOne, with `Writer.posts` its inverse
collection). The machine keeps two plain models: which writer each post points to in memory,
and the rows the database must hold. After every step every initialized collection holds
exactly the posts that point to its writer; after every flush the rows equal the model and a
second flush runs no SQL; a transaction rolled back after a flush leaves the rows as they were
and the work pending, so the next flush writes it.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.core.one_to_many_models import MODELS, Post, Writer
from tests.databases import rows

SCALE = int(os.environ.get("ORM_PROOF_SCALE", "1"))
NAMES = st.text("abcdef", min_size=1, max_size=6)


class Boom(Exception):
    """Raised inside a transaction block to roll it back."""


class RelationsMachine(RuleBasedStateMachine):
    orm = None  # set by the test
    log: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.orm.schema.clear_database()
        self.em = self.orm.em.fork()
        self.writers: list[Writer] = []
        self.posts: list[Post] = []
        #: the writer each tracked post points to in memory (by the post's id())
        self.points_to: dict[int, Writer | None] = {}
        self.removed: set[int] = set()
        #: the rows: writer keys, and post key -> (title, writer key)
        self.db_writers: set[int] = set()
        self.db_posts: dict[int, tuple[str, int | None]] = {}

    # -- helpers ----------------------------------------------------------------------------
    def _live_writers(self) -> list[Writer]:
        return [w for w in self.writers if id(w) not in self.removed]

    def _live_posts(self) -> list[Post]:
        return [p for p in self.posts if id(p) not in self.removed]

    def _pick(self, data: st.DataObject, items: list) -> object:
        return items[data.draw(st.integers(0, len(items) - 1))]

    def _expected_rows(self) -> tuple[set[int], dict[int, tuple[str, int | None]]]:
        writers = {w.id for w in self._live_writers()}
        posts = {}
        for p in self._live_posts():
            target = self.points_to[id(p)]
            posts[p.id] = (p.title, None if target is None else target.id)
        return writers, posts

    # -- rules ------------------------------------------------------------------------------
    @rule(name=NAMES)
    def new_writer(self, name: str) -> None:
        writer = Writer(name=name)
        self.em.persist(writer)
        self.writers.append(writer)

    @rule(title=NAMES, data=st.data())
    def new_post(self, title: str, data: st.DataObject) -> None:
        """A new post, linked to a writer (or none) through its constructor: persisted by
        cascade from the writer (managed) when it is linked, without `persist`."""
        live = self._live_writers()
        writer = self._pick(data, [None, *live]) if live else None
        post = Post(title=title, writer=writer)
        if writer is None or data.draw(st.booleans()):
            self.em.persist(post)
        self.posts.append(post)
        self.points_to[id(post)] = writer

    @precondition(lambda self: self._live_posts())
    @rule(data=st.data())
    def link_through_the_owning_side(self, data: st.DataObject) -> None:
        post = self._pick(data, self._live_posts())
        writer = self._pick(data, [None, *self._live_writers()])
        post.writer = writer
        self.points_to[id(post)] = writer

    @precondition(lambda self: self._live_posts() and self._live_writers())
    @rule(data=st.data())
    def link_through_the_collection(self, data: st.DataObject) -> None:
        """`writer.posts.add(post)` / `.remove(post)` on an initialized collection."""
        writer = self._pick(data, self._live_writers())
        if not writer.posts.is_initialized():
            return
        post = self._pick(data, self._live_posts())
        if self.points_to[id(post)] is writer and data.draw(st.booleans()):
            writer.posts.remove(post)
            self.points_to[id(post)] = None
        else:
            writer.posts.add(post)
            self.points_to[id(post)] = writer

    @precondition(lambda self: self._live_posts())
    @rule(data=st.data())
    def remove_post(self, data: st.DataObject) -> None:
        post = self._pick(data, self._live_posts())
        if post.writer is not None and post.writer.posts.is_initialized():
            post.writer.posts.remove(post)
        self.em.remove(post)
        self.removed.add(id(post))

    @precondition(lambda self: self._live_writers())
    @rule(data=st.data())
    def remove_unreferenced_writer(self, data: st.DataObject) -> None:
        writer = self._pick(data, self._live_writers())
        if any(self.points_to[id(p)] is writer for p in self._live_posts()):
            return
        self.em.remove(writer)
        self.removed.add(id(writer))

    @rule()
    def flush(self) -> None:
        self.em.flush()
        self.db_writers, self.db_posts = self._expected_rows()
        self.the_database_holds_the_model()
        self.log.clear()
        self.em.flush()
        assert self.log == [], f"a flush with nothing to do ran SQL: {self.log}"

    @rule()
    def flush_then_roll_back(self) -> None:
        """The flush writes into a transaction that is rolled back: the rows stay as they
        were and the work is pending again (the next flush writes it)."""
        with pytest.raises(Boom):
            with self.em.transaction():
                self.em.flush()
                raise Boom
        self.the_database_holds_the_model()

    @precondition(lambda self: self._live_writers())
    @rule()
    def populate_collections(self) -> None:
        """A query: FlushMode.AUTO flushes first when posts have pending work, then every
        collection is filled from the rows (a writer still unwritten keeps its own)."""
        live = self._live_writers()
        self.log.clear()
        self.em.populate(live, ["posts"])
        if any(line.endswith("commit") for line in self.log):
            self.db_writers, self.db_posts = self._expected_rows()
        self.the_database_holds_the_model()
        for writer in live:
            assert writer.posts.is_initialized()

    @rule()
    def clear_and_reload(self) -> None:
        """Unflushed work is dropped; the entities are read again from the rows."""
        self.em.clear()
        self.em = self.orm.em.fork()
        self.writers = self.em.find(Writer, {})
        self.posts = self.em.find(Post, {}, populate=["writer"])
        self.removed = set()
        self.points_to = {id(p): p.writer for p in self.posts}
        assert {w.id for w in self.writers} == self.db_writers
        for p in self.posts:
            assert (p.title, None if p.writer is None else p.writer.id) == self.db_posts[p.id]

    # -- checks -----------------------------------------------------------------------------
    def the_database_holds_the_model(self) -> None:
        got_writers = {r[0] for r in rows(self.orm, "select id from writer")}
        got_posts = {r[0]: (r[1], r[2]) for r in rows(self.orm,
                                                      "select id, title, writer_id from post")}
        assert got_writers == self.db_writers
        assert got_posts == self.db_posts

    @invariant()
    def collections_follow_the_owning_side(self) -> None:
        for writer in self._live_writers():
            if not writer.posts.is_initialized():
                continue
            held = {id(p) for p in writer.posts if id(p) not in self.removed}
            expected = {id(p) for p in self._live_posts() if self.points_to[id(p)] is writer}
            assert held == expected, writer


MODEL_SETTINGS = settings(
    max_examples=100 * SCALE,
    stateful_step_count=30,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_relations_match_the_model(connect, log):
    RelationsMachine.orm = connect(MODELS, debug=["query"], logger=log.append)
    RelationsMachine.log = log
    run_state_machine_as_test(RelationsMachine, settings=MODEL_SETTINGS)
