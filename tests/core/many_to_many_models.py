"""Entities with many-to-many relations for the many-to-many tests: articles and their tags
(owning side `Article.tags`, inverse side `Tag.articles`), tags' readers two levels down
(nested populate), and users' friends (self-referencing, with an inverse side)."""

from __future__ import annotations

from orm import Collection, ManyToMany, PrimaryKey, entity


@entity()
class Article:
    id: int = PrimaryKey()
    title: str
    tags: Collection[Tag] = ManyToMany(inversed_by="articles")


@entity()
class Tag:
    id: int = PrimaryKey()
    label: str
    articles: Collection[Article] = ManyToMany(mapped_by="tags")
    readers: Collection[Reader] = ManyToMany()


@entity()
class Reader:
    id: int = PrimaryKey()
    name: str


@entity()
class Person:
    id: int = PrimaryKey()
    name: str
    friends: Collection[Person] = ManyToMany(inversed_by="friend_of")
    friend_of: Collection[Person] = ManyToMany(mapped_by="friends")


MODELS = [Article, Tag, Reader, Person]
