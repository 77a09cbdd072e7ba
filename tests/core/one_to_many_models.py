"""Entities with an inverse side (`OneToMany`) for the one-to-many tests: a writer's posts,
a post's notes (two levels for nested populate)."""

from __future__ import annotations

from orm import Collection, ManyToOne, OneToMany, PrimaryKey, entity


@entity()
class Writer:
    id: int = PrimaryKey()
    name: str
    posts: Collection[Post] = OneToMany(mapped_by="writer")


@entity()
class Post:
    id: int = PrimaryKey()
    title: str
    writer: Writer | None = ManyToOne(nullable=True, inversed_by="posts")
    notes: Collection[Note] = OneToMany(mapped_by="post")


@entity()
class Note:
    id: int = PrimaryKey()
    body: str
    post: Post = ManyToOne()


MODELS = [Writer, Post, Note]
