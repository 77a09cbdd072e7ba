"""Entities for the Cascade.REMOVE / orphan_removal and inverse one-to-one tests: an author's
articles (Cascade.REMOVE) and an article's remarks (orphan_removal), two levels deep with
NOT NULL foreign keys; a pin pointing at an article with no inverse side (nothing cascades to it); a member and the profile that holds the
foreign key to it."""

from __future__ import annotations

from orm import Cascade, Collection, ManyToOne, OneToMany, OneToOne, PrimaryKey, entity


@entity()
class Author:
    id: int = PrimaryKey()
    name: str
    articles: Collection[Article] = OneToMany(
        mapped_by="author", cascade=[Cascade.PERSIST, Cascade.REMOVE]
    )


@entity()
class Article:
    id: int = PrimaryKey()
    title: str
    author: Author = ManyToOne()
    remarks: Collection[Remark] = OneToMany(mapped_by="article", orphan_removal=True)


@entity()
class Remark:
    id: int = PrimaryKey()
    body: str
    article: Article = ManyToOne()


@entity()
class Pin:
    """Points at an article with no inverse side: nothing cascades to it."""

    id: int = PrimaryKey()
    article: Article = ManyToOne()


@entity()
class Member:
    id: int = PrimaryKey()
    name: str
    profile: Profile | None = OneToOne(mapped_by="member", cascade=[Cascade.ALL])


@entity()
class Profile:
    id: int = PrimaryKey()
    bio: str
    member: Member | None = OneToOne(nullable=True, inversed_by="profile")


MODELS = [Author, Article, Remark, Pin, Member, Profile]
