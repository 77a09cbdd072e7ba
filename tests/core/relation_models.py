"""Entities with relations for the relation tests. Annotations are strings here (`from
__future__ import annotations`), and `Article` refers to `Author` before it is defined: the
targets are resolved at discovery."""

from __future__ import annotations

from uuid import UUID, uuid4

from orm import Cascade, ManyToOne, OneToOne, PrimaryKey, Property, Ref, entity


@entity()
class Article:
    id: int = PrimaryKey()
    title: str
    author: Author = ManyToOne()
    reviewer: Author | None = ManyToOne(nullable=True, on_delete="set null")
    cover: Ref[Image] | None = OneToOne(nullable=True)


@entity()
class Author:
    id: int = PrimaryKey()
    name: str
    email: str = Property(default="")
    team: Team | None = ManyToOne(nullable=True)


@entity()
class Team:
    id: int = PrimaryKey()
    name: str


@entity()
class Image:
    id: UUID = PrimaryKey(default_factory=uuid4)
    url: str


@entity()
class Category:
    """A tree: a self-reference, nullable (the root has no parent)."""

    id: int = PrimaryKey()
    name: str
    parent: Category | None = ManyToOne(nullable=True)


@entity()
class Comment:
    """Deleted with its article (on delete cascade); no cascade persist of its article."""

    id: int = PrimaryKey()
    body: str
    article: Article = ManyToOne(on_delete="cascade", cascade=[])


@entity()
class Node:
    """Two NOT NULL references to its own type: a cycle of them cannot be inserted."""

    id: int = PrimaryKey()
    name: str
    next: Node = ManyToOne(cascade=[Cascade.PERSIST])


RELATED = [Article, Author, Team, Image, Category, Comment, Node]
