"""A small blog: users write articles, articles have tags and comments.

Run it with `python examples/blog.py [path/to/blog.db] [--quiet]`. Every step prints what it
did and the SQL it ran (`--quiet` hides the SQL). A database URL in place of the path runs it
on that database instead, e.g. `python examples/blog.py postgresql://postgres@localhost/app`
(PostgreSQL needs `pip install '.[postgresql]'` from the checkout; the tables are dropped and created in a
schema of the example's own, `blog`, unless the URL's `options` set a `search_path`).

It shows each kind of relation at work: a graph persisted from its root (Cascade.PERSIST),
loading with `populate` (one query per relation, never one per row), filters across
relations, a tag changed (only that pivot row written), a comment removed from its article
(orphan removal), and a user removed with everything they wrote (Cascade.REMOVE).
"""

from __future__ import annotations

import sys
from pathlib import Path

from orm import (
    ORM,
    Cascade,
    Collection,
    ManyToMany,
    ManyToOne,
    OneToMany,
    PrimaryKey,
    Property,
    ValidationError,
    define_config,
    entity,
    t,
    wrap,
)

OWNED = [Cascade.PERSIST, Cascade.REMOVE]


@entity()
class User:
    id: int = PrimaryKey()
    name: str
    email: str = Property(unique=True)
    articles: Collection[Article] = OneToMany(mapped_by="author", cascade=OWNED)


@entity()
class Article:
    id: int = PrimaryKey()
    title: str
    body: str = Property(type=t.text, default="")
    author: User = ManyToOne(inversed_by="articles")
    tags: Collection[Tag] = ManyToMany(inversed_by="articles")
    comments: Collection[Comment] = OneToMany(
        mapped_by="article", cascade=OWNED, orphan_removal=True
    )


@entity()
class Tag:
    id: int = PrimaryKey()
    label: str = Property(unique=True)
    articles: Collection[Article] = ManyToMany(mapped_by="tags")


@entity()
class Comment:
    id: int = PrimaryKey()
    text: str
    article: Article = ManyToOne(inversed_by="comments")
    author: User = ManyToOne()


ENTITIES = [User, Article, Tag, Comment]


def step(title: str) -> None:
    print(f"\n== {title}")


def titles(articles: list[Article]) -> list[str]:
    return sorted(a.title for a in articles)


def main(db_name: str, debug: bool = True) -> None:
    """`db_name` is an SQLite file, or a database URL (`postgresql://...`, `sqlite:///...`)."""
    if "://" not in db_name:
        where = {"db_name": db_name}
    elif "search_path" in db_name:
        where = {"client_url": db_name}
    else:
        where = {"client_url": db_name, "schema": "blog"}
    orm = ORM.init(define_config(**where, entities=ENTITIES, debug=debug))
    orm.schema.refresh_database()

    step("a graph persisted from its roots: users, their articles, tags and comments")
    em = orm.em.fork()
    ann = User(name="Ann", email="ann@example.com")
    bob = User(name="Bob", email="bob@example.com")
    python, orm_tag, sqlite = Tag(label="python"), Tag(label="orm"), Tag(label="sqlite")
    first = Article(title="Hello, ORM", author=ann, tags=[python, orm_tag])
    second = Article(title="SQLite in one file", author=ann, tags=[sqlite, python])
    Article(title="Bob's notes", author=bob, tags=[orm_tag])
    Comment(text="Nice!", article=first, author=bob)
    Comment(text="Thanks", article=first, author=ann)
    Comment(text="Which version?", article=second, author=bob)
    em.persist([ann, bob]).flush()  # articles, tags, comments and pivot rows by cascade
    counts = {e.__name__: orm.em.fork().count(e) for e in ENTITIES}
    print("rows:", counts)

    step("loading with populate: one query per relation, whatever the number of rows")
    em = orm.em.fork()
    articles = em.find(
        Article, {}, populate=["author", "tags", "comments.author"], order_by={"title": "asc"}
    )
    for article in articles:
        labels = sorted(tag.label for tag in article.tags)
        said = sorted(f"{c.author.name}: {c.text}" for c in article.comments)
        print(f"{article.title!r} by {article.author.name}, tags {labels}, comments {said}")

    step("a collection that was not loaded is never queried behind your back")
    bob_again = em.find_one_or_fail(User, {"name": "Bob"})
    try:
        len(bob_again.articles)
    except ValidationError as exc:
        print(f"ValidationError: {exc}")
    print("after load():", titles(bob_again.articles.load().get_items()))

    step("filters across relations")
    print("tagged python:", titles(em.find(Article, {"tags": {"label": "python"}})))
    print("commented on by Bob:",
          titles(em.find(Article, {"comments": {"author": {"name": "Bob"}}})))
    writers = em.find(User, {"articles": {"tags": {"label": "orm"}}}, order_by={"name": "asc"})
    print("wrote about orm:", [u.name for u in writers])

    step("a tag changed: only that pivot row is written")
    hello = next(a for a in articles if a.title == "Hello, ORM")
    hello.tags.remove(next(tag for tag in hello.tags if tag.label == "python"))
    hello.tags.add(em.find_one_or_fail(Tag, {"label": "sqlite"}))
    em.flush()
    print("tags now:", sorted(tag.label for tag in hello.tags))

    step("a comment taken off its article is deleted (orphan removal)")
    thanks = next(c for c in hello.comments if c.text == "Thanks")
    hello.comments.remove(thanks)
    em.flush()
    print("comments left:", orm.em.fork().count(Comment))

    step("serialization: populated relations nested, the rest as keys")
    print(wrap(hello).to_object())

    step("a user removed with everything they wrote (Cascade.REMOVE)")
    em = orm.em.fork()
    em.remove(em.find_one_or_fail(User, {"name": "Ann"})).flush()
    counts = {e.__name__: orm.em.fork().count(e) for e in ENTITIES}
    print("rows:", counts)
    left = orm.em.fork().find(Article, {}, populate=["tags"])
    print("articles left:", [(a.title, sorted(tag.label for tag in a.tags)) for a in left])

    orm.close()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    path = args[0] if args else str(Path.cwd() / "blog.db")
    main(path, debug="--quiet" not in sys.argv)
