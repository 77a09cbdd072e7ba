"""This project's ``orm`` on the relation workloads W7-W9 (public API only), both databases.

The entities map onto the tables ``_relations`` creates (the DDL ``create_schema()`` writes
for them): ``Article.author`` a ManyToOne, ``Article.tags`` the owning side of a ManyToMany
(pivot ``article_tags``). No inverse collections: the workloads never read them, and an
inverse side would cost its upkeep in every column that has one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orm import ORM, Collection, ManyToMany, ManyToOne, PrimaryKey, entity

import _relations as rel
from _common import Context, Observations
from _relations import QueryCounter, counts_since


@entity()
class Author:
    id: int = PrimaryKey()
    name: str


@entity()
class Article:
    id: int = PrimaryKey()
    title: str
    author: Author = ManyToOne()
    tags: Collection[Tag] = ManyToMany()


@entity()
class Tag:
    id: int = PrimaryKey()
    label: str


ENTITIES = [Author, Article, Tag]


@contextmanager
def _entity_manager(ctx: Context) -> Iterator[Any]:
    if ctx.database == "postgresql":
        from _pg import cell_target

        url, schema = cell_target()
        instance = ORM.init(client_url=url, schema=schema, entities=ENTITIES)
    else:
        instance = ORM.init(db_name=ctx.db_path, entities=ENTITIES)
    try:
        yield instance.em.fork()
    finally:
        instance.close()


def w7_load(ctx: Context) -> Observations:
    """``em.find(Article, {}, populate=["author", "tags"])``."""
    with _entity_manager(ctx) as em:
        before = QueryCounter.snapshot()
        with ctx.timed():
            articles = em.find(Article, {}, populate=["author", "tags"])
            counts = counts_since(before)
        return {
            **rel.graph_observations(
                (a.author.name, (t.label for t in a.tags)) for a in articles
            ),
            "queries": counts["queries"],
        }


def w8_insert(ctx: Context) -> Observations:
    """Build N/10 authors x 10 articles x 3 tags (of the loaded pool), ``persist`` the
    articles (their authors by cascade), one ``flush``."""
    n = ctx.n
    with _entity_manager(ctx) as em:
        pool = {t.label: t for t in em.find(Tag, {})}
        tags = [pool[f"tag {j}"] for j in range(rel.TAGS)]
        before = QueryCounter.snapshot()
        with ctx.timed():
            authors = [Author(name=f"Author {a}") for a in range(rel.author_count(n))]
            em.persist(
                [
                    Article(
                        title=f"Article {k}",
                        author=authors[k // rel.ARTICLES_PER_AUTHOR],
                        tags=[tags[t - 1] for t in rel.tag_ids(k)],
                    )
                    for k in range(n)
                ]
            )
            em.flush()
            counts = counts_since(before)
        return counts


def _loaded(em: Any) -> tuple[list[Article], dict[int, Tag]]:
    """Articles in id order with their tags populated, and the tag pool (untimed)."""
    articles = em.find(Article, {}, populate=["tags"], order_by={"id": "asc"})
    return articles, {t.id: t for t in em.find(Tag, {})}


def w9_change_tags(ctx: Context) -> Observations:
    """Replace one tag of every 10th article (untimed), ``flush``."""
    with _entity_manager(ctx) as em:
        articles, tags = _loaded(em)
        changed = 0
        for k in range(0, len(articles), rel.STRIDE):
            article = articles[k]
            article.tags.remove(tags[rel.tag_ids(k)[0]])
            article.tags.add(tags[rel.new_tag_id(k)])
            changed += 1
        before = QueryCounter.snapshot()
        with ctx.timed():
            em.flush()
            counts = counts_since(before)
        return {"changed": changed, **counts}


def w9n_noop_flush(ctx: Context) -> Observations:
    """``flush`` with N articles and their tag collections loaded, nothing changed."""
    with _entity_manager(ctx) as em:
        articles, _ = _loaded(em)
        before = QueryCounter.snapshot()
        with ctx.timed():
            em.flush()
            counts = counts_since(before)
        return {"loaded": len(articles), **counts}


WORKLOADS = {"W7": w7_load, "W8": w8_insert, "W9": w9_change_tags, "W9N": w9n_noop_flush}
