"""A model-based check of Cascade.REMOVE and orphan_removal: authors, their articles
(Cascade.REMOVE) and the articles' remarks (orphan_removal), linked, moved, unlinked and
removed at random, with flushes, rolled-back transactions and reloads (which leave the
collections uninitialized, so the flush must load what a removal reaches), on each database.

The model is which owner each entity points to in memory and which were removed: at a flush
an entity goes if it was removed, if its owner goes, or (a remark) if it points to no
article; the rows must then equal what is left, and a second flush run no SQL.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from tests.core.cascade_models import MODELS, Article, Author, Remark
from tests.databases import rows

SCALE = int(os.environ.get("ORM_PROOF_SCALE", "1"))


class Boom(Exception):
    """Raised inside a transaction block to roll it back."""


class CascadeMachine(RuleBasedStateMachine):
    orm = None  # set by the test
    log: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.orm.schema.clear_database()
        self.em = self.orm.em.fork()
        self.authors: list[Author] = []
        self.articles: list[Article] = []
        self.remarks: list[Remark] = []
        #: the owner each article / remark points to in memory (by id() of the entity)
        self.owner: dict[int, object] = {}
        self.removed: set[int] = set()
        self.expected: tuple = (set(), {}, {})

    # -- the model --------------------------------------------------------------------------
    def _gone(self, entity: object) -> bool:
        if id(entity) in self.removed:
            return True
        if isinstance(entity, Author):
            return False
        owner = self.owner[id(entity)]
        return owner is None or self._gone(owner)

    def _live(self, items: list) -> list:
        return [e for e in items if id(e) not in self.removed]

    def _pick(self, data: st.DataObject, items: list) -> object:
        return items[data.draw(st.integers(0, len(items) - 1))]

    def _rows_left(self) -> tuple:
        authors = {a.id for a in self.authors if not self._gone(a)}
        articles = {a.id: self.owner[id(a)].id for a in self.articles if not self._gone(a)}
        remarks = {r.id: self.owner[id(r)].id for r in self.remarks if not self._gone(r)}
        return authors, articles, remarks

    def _rows(self) -> tuple:
        return (
            {r[0] for r in rows(self.orm, "select id from author")},
            dict(rows(self.orm, "select id, author_id from article")),
            dict(rows(self.orm, "select id, article_id from remark")),
        )

    # -- rules ------------------------------------------------------------------------------
    @rule()
    def new_author(self) -> None:
        author = Author(name="a")
        self.em.persist(author)
        self.authors.append(author)

    @precondition(lambda self: self._live(self.authors))
    @rule(data=st.data())
    def new_article(self, data: st.DataObject) -> None:
        author = self._pick(data, self._live(self.authors))
        article = Article(title="t", author=author)  # persisted by cascade
        self.articles.append(article)
        self.owner[id(article)] = author

    @precondition(lambda self: self._live(self.articles))
    @rule(data=st.data())
    def new_remark(self, data: st.DataObject) -> None:
        article = self._pick(data, self._live(self.articles))
        remark = Remark(body="r", article=article)
        self.remarks.append(remark)
        self.owner[id(remark)] = article

    @precondition(lambda self: self._live(self.articles) and self._live(self.authors))
    @rule(data=st.data())
    def move_article(self, data: st.DataObject) -> None:
        article = self._pick(data, self._live(self.articles))
        author = self._pick(data, self._live(self.authors))
        if author.articles.is_initialized() and data.draw(st.booleans()):
            author.articles.add(article)
        else:
            article.author = author
        self.owner[id(article)] = author

    @precondition(lambda self: self._live(self.remarks))
    @rule(data=st.data())
    def relink_remark(self, data: st.DataObject) -> None:
        """Moved to another article, or unlinked (an orphan: deleted at the flush, unless
        linked again before it)."""
        remark = self._pick(data, self._live(self.remarks))
        article = self._pick(data, [None, *self._live(self.articles)])
        current = self.owner[id(remark)]
        if article is None and current is not None and current.remarks.is_initialized():
            current.remarks.remove(remark)
        else:
            remark.article = article
        self.owner[id(remark)] = article

    @precondition(lambda self: self._live(self.authors + self.articles + self.remarks))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        entity = self._pick(data, self._live(self.authors + self.articles + self.remarks))
        if entity._orm_snap is None and not isinstance(entity, Author):
            # a new entity still in its (new or managed) owner's collection would be
            # persisted again by cascade from it, as SQLAlchemy's save-update does
            return
        self.em.remove(entity)
        self._mark_removed(entity)

    def _mark_removed(self, entity: object) -> None:
        """`em.remove()` of a new entity forgets it at once and removes what its cascading
        sides hold: new items forgotten in turn, stored ones (moved to it) marked for
        removal, and so no longer movable elsewhere; a stored entity's items go at the
        flush (`_gone`), unless moved to a live owner before it."""
        self.removed.add(id(entity))
        if entity._orm_snap is None:
            for item in self.articles + self.remarks:
                if self.owner.get(id(item)) is entity and id(item) not in self.removed:
                    self._mark_removed(item)

    @rule()
    def flush(self) -> None:
        self.em.flush()
        self.expected = self._rows_left()
        assert self._rows() == self.expected
        self.authors = [a for a in self.authors if not self._gone(a)]
        self.articles = [a for a in self.articles if not self._gone(a)]
        self.remarks = [r for r in self.remarks if not self._gone(r)]
        self.removed = set()
        self.log.clear()
        self.em.flush()
        assert self.log == [], f"a flush with nothing to do ran SQL: {self.log}"

    @rule()
    def flush_then_roll_back(self) -> None:
        with pytest.raises(Boom):
            with self.em.transaction():
                self.em.flush()
                raise Boom
        assert self._rows() == self.expected

    @rule()
    def clear_and_reload(self) -> None:
        """Unflushed work is dropped; the collections of the entities read again are not
        initialized."""
        self.em.clear()
        self.em = self.orm.em.fork()
        self.authors = self.em.find(Author, {})
        self.articles = self.em.find(Article, {})
        self.remarks = self.em.find(Remark, {})
        self.removed = set()
        self.owner = {id(e): e.author for e in self.articles}
        self.owner.update({id(e): e.article for e in self.remarks})
        assert self._rows_left() == self.expected


CASCADE_SETTINGS = settings(
    max_examples=80 * SCALE,
    stateful_step_count=30,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_cascade_remove_matches_the_model(connect, log):
    CascadeMachine.orm = connect(MODELS, debug=["query"], logger=log.append)
    CascadeMachine.log = log
    run_state_machine_as_test(CascadeMachine, settings=CASCADE_SETTINGS)
