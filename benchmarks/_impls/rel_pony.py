"""Pony ORM on the relation workloads W7-W9, on SQLite and on PostgreSQL (psycopg2).

A ``Database`` of its own (bound once per process, as ``pony_impl`` binds its own), mapped
onto the ``_relations`` tables without DDL. Pony wants both sides of every relation, so
``Author.articles`` and ``Tag.articles`` exist (never read). W7 is ``prefetch`` of the author
and of the tags with their labels; the flushes are ``commit()`` inside the ``db_session``.
On PostgreSQL the statements come from Pony's own statistics (``Database.local_stats``, one per
``execute``: psycopg2 is not wrapped) and the rows written are not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pony.orm import Database, PrimaryKey, Required, Set, commit, db_session

import _relations as rel
from _common import Context, Observations
from _relations import QueryCounter, counts_since

db = Database()


class Author(db.Entity):  # type: ignore[name-defined]
    _table_ = "author"
    id = PrimaryKey(int, auto=True)
    name = Required(str)
    articles = Set("Article")


class Tag(db.Entity):  # type: ignore[name-defined]
    _table_ = "tag"
    id = PrimaryKey(int, auto=True)
    label = Required(str)
    articles = Set("Article", column="article_id")


class Article(db.Entity):  # type: ignore[name-defined]
    _table_ = "article"
    id = PrimaryKey(int, auto=True)
    title = Required(str)
    author = Required(Author, column="author_id")
    tags = Set(Tag, table="article_tags", column="tag_id")


_bound = False


@contextmanager
def _session(ctx: Context) -> Iterator[None]:
    global _bound
    if not _bound:
        if ctx.database == "postgresql":
            from psycopg.conninfo import conninfo_to_dict

            from _pg import cell_target

            url, schema = cell_target()
            params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
            params["options"] = f"-c search_path={schema}"
            db.bind(provider="postgres", **params)
        else:
            db.bind(provider="sqlite", filename=ctx.db_path)
        db.generate_mapping(create_tables=False)
        _bound = True
    with db_session:
        yield


def _pony_statements() -> int:
    return sum(stat.db_count for stat in db.local_stats.values())


@contextmanager
def _counting(ctx: Context, out: dict[str, Any]) -> Iterator[None]:
    """The driver's counts on SQLite; Pony's statistics on PostgreSQL (inside the block)."""
    before, pony_before = QueryCounter.snapshot(), _pony_statements()
    yield
    out.update(counts_since(before))
    if ctx.database == "postgresql":
        out["queries"] = _pony_statements() - pony_before
        out["written_rows"] = None


def w7_load(ctx: Context) -> Observations:
    """``Article.select().prefetch(Author, Tag)``: authors and tags with their columns."""
    counts: dict[str, Any] = {}
    with _session(ctx):
        with ctx.timed(), _counting(ctx, counts):
            articles = Article.select().prefetch(Author, Tag)[:]
        return {
            **rel.graph_observations(
                (a.author.name, (t.label for t in a.tags)) for a in articles
            ),
            "queries": counts["queries"],
        }


def w8_insert(ctx: Context) -> Observations:
    """The graph built on the loaded tag pool, one ``commit()``."""
    n = ctx.n
    counts: dict[str, Any] = {}
    with _session(ctx):
        pool = {t.label: t for t in Tag.select()[:]}
        tags = [pool[f"tag {j}"] for j in range(rel.TAGS)]
        with ctx.timed(), _counting(ctx, counts):
            authors = [Author(name=f"Author {a}") for a in range(rel.author_count(n))]
            for k in range(n):
                Article(
                    title=f"Article {k}",
                    author=authors[k // rel.ARTICLES_PER_AUTHOR],
                    tags=[tags[t - 1] for t in rel.tag_ids(k)],
                )
            commit()
    return {k: v for k, v in counts.items() if v is not None}


def _loaded() -> tuple[list[Any], dict[int, Any]]:
    articles = Article.select().order_by(Article.id).prefetch(Tag)[:]
    return list(articles), {t.id: t for t in Tag.select()[:]}


def w9_change_tags(ctx: Context) -> Observations:
    """Replace one tag of every 10th article (untimed), ``commit()``."""
    counts: dict[str, Any] = {}
    with _session(ctx):
        articles, tags = _loaded()
        changed = 0
        for k in range(0, len(articles), rel.STRIDE):
            article = articles[k]
            article.tags.remove(tags[rel.tag_ids(k)[0]])
            article.tags.add(tags[rel.new_tag_id(k)])
            changed += 1
        with ctx.timed(), _counting(ctx, counts):
            commit()
    return {"changed": changed, **{k: v for k, v in counts.items() if v is not None}}


def w9n_noop_flush(ctx: Context) -> Observations:
    """``commit()`` with N articles and their tags loaded, nothing changed."""
    counts: dict[str, Any] = {}
    with _session(ctx):
        articles, _ = _loaded()
        with ctx.timed(), _counting(ctx, counts):
            commit()
    return {"loaded": len(articles), **{k: v for k, v in counts.items() if v is not None}}


WORKLOADS = {"W7": w7_load, "W8": w8_insert, "W9": w9_change_tags, "W9N": w9n_noop_flush}
