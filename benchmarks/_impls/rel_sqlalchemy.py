"""SQLAlchemy ORM on the relation workloads W7-W9, on SQLite and on PostgreSQL
(``postgresql+psycopg``), with the same session choices as ``sqlalchemy_orm.py``
(``expire_on_commit=False``, mappers configured and the connection opened before the timed
block). ``Article.author`` is a many-to-one ``relationship``, ``Article.tags`` a many-to-many
through the ``article_tags`` ``Table`` (``secondary``); no back-references, as in the other
columns. W7 uses ``selectinload`` for both relations; W9N is ``commit()`` with nothing changed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Column, ForeignKey, Table, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
)

import _relations as rel
from _common import Context, Observations
from _relations import QueryCounter, counts_since


class Base(DeclarativeBase):
    pass


article_tags = Table(
    "article_tags",
    Base.metadata,
    Column("article_id", ForeignKey("article.id"), primary_key=True),
    Column("tag_id", ForeignKey("tag.id"), primary_key=True),
)


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Tag(Base):
    __tablename__ = "tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str]


class Article(Base):
    __tablename__ = "article"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=article_tags)


def _session(ctx: Context) -> AbstractContextManager[Session]:
    """The session of the W1-W6 columns (same engine settings, connection opened untimed)."""
    if ctx.database == "postgresql":
        from _impls import sqlalchemy_orm_pg

        return sqlalchemy_orm_pg._session(ctx)
    from _impls import sqlalchemy_orm

    return sqlalchemy_orm._session(ctx, foreign_keys=True)


def w7_load(ctx: Context) -> Observations:
    """``select(Article)`` with ``selectinload`` of ``author`` and ``tags``."""
    with _session(ctx) as session:
        before = QueryCounter.snapshot()
        with ctx.timed():
            articles = session.scalars(
                select(Article).options(selectinload(Article.author), selectinload(Article.tags))
            ).all()
            counts = counts_since(before)
        return {
            **rel.graph_observations(
                (a.author.name, (t.label for t in a.tags)) for a in articles
            ),
            "queries": counts["queries"],
        }


def w8_insert(ctx: Context) -> Observations:
    """The graph built on the loaded tag pool, ``add_all`` of the articles, one ``commit``."""
    n = ctx.n
    with _session(ctx) as session:
        pool = {t.label: t for t in session.scalars(select(Tag))}
        tags = [pool[f"tag {j}"] for j in range(rel.TAGS)]
        before = QueryCounter.snapshot()
        with ctx.timed():
            authors = [Author(name=f"Author {a}") for a in range(rel.author_count(n))]
            session.add_all(
                [
                    Article(
                        title=f"Article {k}",
                        author=authors[k // rel.ARTICLES_PER_AUTHOR],
                        tags=[tags[t - 1] for t in rel.tag_ids(k)],
                    )
                    for k in range(n)
                ]
            )
            session.commit()
            counts = counts_since(before)
        return counts


def _loaded(session: Session) -> tuple[list[Any], dict[int, Tag]]:
    articles = session.scalars(
        select(Article).options(selectinload(Article.tags)).order_by(Article.id)
    ).all()
    return list(articles), {t.id: t for t in session.scalars(select(Tag))}


def w9_change_tags(ctx: Context) -> Observations:
    """Replace one tag of every 10th article (untimed), ``commit``."""
    with _session(ctx) as session:
        articles, tags = _loaded(session)
        changed = 0
        for k in range(0, len(articles), rel.STRIDE):
            article = articles[k]
            article.tags.remove(tags[rel.tag_ids(k)[0]])
            article.tags.append(tags[rel.new_tag_id(k)])
            changed += 1
        before = QueryCounter.snapshot()
        with ctx.timed():
            session.commit()
            counts = counts_since(before)
        return {"changed": changed, **counts}


def w9n_noop_flush(ctx: Context) -> Observations:
    """``commit`` with N articles and their tags loaded, nothing changed."""
    with _session(ctx) as session:
        articles, _ = _loaded(session)
        before = QueryCounter.snapshot()
        with ctx.timed():
            session.commit()
            counts = counts_since(before)
        return {"loaded": len(articles), **counts}


WORKLOADS = {"W7": w7_load, "W8": w8_insert, "W9": w9_change_tags, "W9N": w9n_noop_flush}
