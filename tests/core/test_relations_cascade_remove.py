"""Cascade.REMOVE and orphan_removal, on both databases: removing an author removes its
articles and their remarks (two levels, NOT NULL foreign keys), whether or not the
collections were loaded (one select-in query per level, batched deletes, children first);
orphan removal against moving an item; what the flush adds is taken back when it fails and
pending again after a rolled-back transaction; the declarations refused."""

from __future__ import annotations

import pytest

from orm import (
    Cascade,
    Collection,
    EventSubscriber,
    ForeignKeyConstraintViolationException,
    ManyToOne,
    MetadataError,
    OneToMany,
    OneToOne,
    PrimaryKey,
    entity,
)
from tests.core.cascade_models import MODELS, Article, Author, Pin, Remark
from tests.databases import execute, rows


@pytest.fixture
def rel(connect, log):
    instance = connect(MODELS, debug=["query"], logger=log.append)
    log.clear()
    return instance


@pytest.fixture
def rem(rel):
    return rel.em.fork()


def seed(rem, articles: int = 2, remarks: int = 2) -> tuple[int, int]:
    """Two authors; the first with `articles` articles of `remarks` remarks each, the
    second with one article and one remark. Returns their keys, the EntityManager cleared."""
    ann, bob = Author(name="Ann"), Author(name="Bob")
    for i in range(articles):
        article = Article(title=f"a{i}", author=ann)
        for j in range(remarks):
            Remark(body=f"r{i}.{j}", article=article)
    Remark(body="kept", article=Article(title="bob's", author=bob))
    rem.persist([ann, bob]).flush()
    rem.clear()
    return ann.id, bob.id


def counts(rel) -> tuple[int, int, int]:
    return rows(
        rel,
        "select (select count(*) from author), (select count(*) from article), "
        "(select count(*) from remark)",
    )[0]


# -- Cascade.REMOVE -----------------------------------------------------------------------
def test_removing_an_author_removes_its_loaded_articles_and_their_remarks(rel, rem):
    ann_id, bob_id = seed(rem)
    ann = rem.find_one(Author, {"id": ann_id}, populate=["articles.remarks"])
    articles = ann.articles.get_items()
    rem.remove(ann).flush()
    assert counts(rel) == (1, 1, 1)
    assert rows(rel, "select author_id from article") == [(bob_id,)]
    assert all(not rem.get_unit_of_work().get_identity_map()[Article].get(a.id) for a in articles)


def test_uninitialized_collections_are_loaded_select_in_inside_the_transaction(rel, rem, log):
    ann_id, _ = seed(rem, articles=30, remarks=3)
    ann = rem.find_one(Author, {"id": ann_id})
    assert not ann.articles.is_initialized()
    log.clear()
    rem.remove(ann).flush()
    sql = log.sql()
    assert counts(rel) == (1, 1, 1)
    # begin, one select per level, one delete per table (children first), commit
    assert [s.split()[0] for s in sql] == [
        "begin", "select", "select", "delete", "delete", "delete", "commit"
    ], sql
    assert "from `article`" in sql[1].replace('"', "`") and "in (" in sql[1]
    assert [s.replace('"', "`").split("`")[1] for s in sql[3:6]] == ["remark", "article", "author"]
    assert ann.articles.is_initialized() and len(ann.articles) == 30


def test_a_removed_reference_still_has_its_items_removed(rel, rem):
    ann_id, _ = seed(rem)
    rem.remove(rem.get_reference(Author, ann_id)).flush()
    assert counts(rel) == (1, 1, 1)


def test_links_made_in_memory_decide_what_goes(rel, rem):
    """An article moved away from the removed author stays (and is moved); one moved to it
    in memory goes, though its row still points elsewhere; a new article of the removed
    author is never inserted."""
    ann_id, bob_id = seed(rem, articles=2, remarks=0)
    ann = rem.find_one(Author, {"id": ann_id})
    bob = rem.find_one(Author, {"id": bob_id})
    a0 = rem.find_one(Article, {"title": "a0"})
    theirs = rem.find_one(Article, {"title": "bob's"})
    a0.author = bob
    theirs.author = ann
    fresh = Article(title="new", author=ann)
    rem.remove(ann).flush()
    assert rows(rel, "select title, author_id from article order by title") == [
        ("a0", bob_id)
    ]
    assert rows(rel, "select count(*) from remark") == [(0,)]
    assert fresh.id is None and not rem.get_unit_of_work().get_persist_stack()


def test_cascade_all_removes_too_and_new_collection_items_are_not_inserted(connect):
    @entity()
    class Box:
        id: int = PrimaryKey()
        items: Collection[Thing] = OneToMany(mapped_by="box", cascade=[Cascade.ALL])

    @entity()
    class Thing:
        id: int = PrimaryKey()
        box: Box = ManyToOne()

    orm = connect([Box, Thing])
    em = orm.em.fork()
    box = Box()
    Thing(box=box), Thing(box=box)
    em.persist(box).flush()
    Thing(box=box)
    em.remove(box).flush()
    assert rows(orm, "select count(*) from thing") == [(0,)]
    assert rows(orm, "select count(*) from box") == [(0,)]


def test_a_failed_flush_takes_the_cascaded_removals_back(rel, rem):
    ann_id, _ = seed(rem)
    article_id = rows(rel, "select id from article where title = 'a0'")[0][0]
    execute(rel, "insert into pin (article_id) values (?)", [article_id])
    ann = rem.find_one(Author, {"id": ann_id})
    rem.remove(ann)
    with pytest.raises(ForeignKeyConstraintViolationException):
        rem.flush()
    assert counts(rel) == (2, 3, 5)  # nothing written
    assert rem.get_unit_of_work().get_removal_stack() == [ann]
    rem.remove(rem.find(Pin, {})[0])
    rem.flush()  # retried: the pin, the remarks, the articles, the author
    assert counts(rel) == (1, 1, 1)


def test_compute_change_sets_shows_the_cascade_without_scheduling_it(rel, rem):
    ann_id, _ = seed(rem, articles=1, remarks=1)
    ann = rem.find_one(Author, {"id": ann_id})
    rem.remove(ann)
    uow = rem.get_unit_of_work()
    sets = uow.compute_change_sets()
    assert sorted((cs.type, cs.name) for cs in sets) == [
        ("delete", "Article"), ("delete", "Author"), ("delete", "Remark")
    ]
    assert uow.get_removal_stack() == [ann]


def test_before_delete_runs_for_the_cascaded_entities(connect, log):
    seen: list[str] = []

    class Watch(EventSubscriber):
        def before_delete(self, args):
            seen.append(type(args.entity).__name__)

        def after_delete(self, args):
            seen.append("after " + type(args.entity).__name__)

    orm = connect(MODELS, subscribers=[Watch()])
    em = orm.em.fork()
    ann_id, _ = seed(em, articles=1, remarks=1)
    em.remove(em.find_one(Author, {"id": ann_id})).flush()
    assert sorted(seen) == sorted(
        ["Author", "Article", "Remark", "after Author", "after Article", "after Remark"]
    )
    assert counts(orm) == (1, 1, 1)


def _remove_and_roll_back(rel, rem, ann):
    with pytest.raises(RuntimeError):
        with rem.transaction():
            rem.remove(ann).flush()  # this EntityManager's flush, in the transaction
            assert counts(rel) == (1, 1, 1)
            raise RuntimeError("abort")
    assert counts(rel) == (2, 3, 3)


def test_rollback_makes_the_removal_pending_again_and_the_next_flush_cascades(rel, rem):
    """After the rollback the removal stack is again what em.remove() was given; what it
    cascaded to is managed again, under its keys, and goes with it at the next flush."""
    ann_id, _ = seed(rem, articles=2, remarks=1)
    ann = rem.find_one(Author, {"id": ann_id})
    uow = rem.get_unit_of_work()
    _remove_and_roll_back(rel, rem, ann)
    assert uow.get_removal_stack() == [ann]
    for cls in (Article, Remark):
        for held in rem.find(cls, {}):
            assert uow.get_identity_map()[cls][held.id] is held
    rem.flush()
    assert counts(rel) == (1, 1, 1)


def test_an_item_moved_after_the_rollback_is_kept(rel, rem):
    """The cascade is worked out again at the next flush, from things as they are then: an
    article moved to another author meanwhile stays, with its remark."""
    ann_id, bob_id = seed(rem, articles=2, remarks=1)
    ann = rem.find_one(Author, {"id": ann_id}, populate=["articles"])
    bob = rem.find_one(Author, {"id": bob_id}, populate=["articles"])
    _remove_and_roll_back(rel, rem, ann)
    moved = next(a for a in ann.articles if a.title == "a0")
    bob.articles.add(moved)
    rem.flush()
    assert rows(rel, "select title from article order by title") == [("a0",), ("bob's",)]
    assert counts(rel) == (1, 2, 2)


# -- orphan_removal -----------------------------------------------------------------------
def test_an_item_removed_from_the_collection_is_deleted(rel, rem):
    seed(rem, articles=1, remarks=4)
    article = rem.find_one(Article, {"title": "a0"}, populate=["remarks"])
    r0, r1, r2, r3 = sorted(article.remarks, key=lambda r: r.body)
    article.remarks.remove(r0)
    r1.article = None
    rem.flush()
    assert rows(rel, "select body from remark where article_id = ? order by body",
                [article.id]) == [("r0.2",), ("r0.3",)]
    assert rows(rel, "select count(*) from remark") == [(3,)]  # bob's is there
    article.remarks.set([r3])
    rem.flush()
    assert rows(rel, "select body from remark where article_id = ?", [article.id]) == [("r0.3",)]
    article.remarks.remove_all()
    rem.flush()
    assert rows(rel, "select body from remark") == [("kept",)]


def test_an_item_moved_to_another_owner_is_not_deleted(rel, rem):
    seed(rem, articles=1, remarks=2)
    article = rem.find_one(Article, {"title": "a0"}, populate=["remarks"])
    other = rem.find_one(Article, {"title": "bob's"}, populate=["remarks"])
    moved, unlinked = sorted(article.remarks, key=lambda r: r.body)
    other.remarks.add(moved)
    unlinked.article = None
    unlinked.article = other  # unlinked, then linked again before the flush: kept
    rem.flush()
    assert rows(rel, "select body from remark where article_id = ? order by body",
                [other.id]) == [("kept",), ("r0.0",), ("r0.1",)]
    assert moved in other.remarks and len(article.remarks) == 0


def test_a_new_item_removed_from_the_collection_is_not_inserted(rel, rem):
    seed(rem, articles=1, remarks=0)
    article = rem.find_one(Article, {"title": "a0"}, populate=["remarks"])
    fresh = Remark(body="draft", article=article)
    moved = Remark(body="moved", article=article)
    article.remarks.remove(fresh)
    article.remarks.remove(moved)
    moved.article = article  # linked again: persisted again
    rem.flush()
    assert rows(rel, "select body from remark where article_id = ?", [article.id]) == [
        ("moved",)
    ]
    assert fresh.id is None


def test_orphan_removal_implies_cascade_remove(rel, rem):
    seed(rem, articles=1, remarks=3)
    rem.remove(rem.find_one(Article, {"title": "a0"}))
    rem.flush()
    assert rows(rel, "select body from remark") == [("kept",)]


def test_without_cascade_the_foreign_key_still_refuses(rel, rem):
    """Pin has no inverse side with Cascade.REMOVE: removing its article is the
    database's refusal, nothing written (as for any relation without a cascade)."""
    seed(rem, articles=1, remarks=0)
    article = rem.find_one(Article, {"title": "a0"})
    rem.persist(Pin(article=article)).flush()
    rem.remove(article)
    with pytest.raises(ForeignKeyConstraintViolationException, match="Nothing of this flush"):
        rem.flush()
    assert rows(rel, "select count(*) from article where id = ?", [article.id]) == [(1,)]


# -- declarations -------------------------------------------------------------------------
def test_orphan_removal_on_a_many_to_one_is_refused(connect):
    @entity()
    class Bag:
        id: int = PrimaryKey()

    @entity()
    class Coin:
        id: int = PrimaryKey()
        bag: Bag = ManyToOne(orphan_removal=True)

    with pytest.raises(
        MetadataError,
        match=r"Coin\.bag: orphan_removal belongs on the inverse side "
              r"\(OneToMany\(mapped_by='bag', orphan_removal=True\) on the target\)",
    ):
        connect([Bag, Coin], create=False)


@pytest.mark.parametrize("cascade", [[Cascade.REMOVE], [Cascade.ALL]])
@pytest.mark.parametrize("kind", [ManyToOne, OneToOne])
def test_cascade_remove_on_the_side_holding_the_foreign_key_is_refused(connect, cascade, kind):
    @entity()
    class Team:
        id: int = PrimaryKey()

    @entity()
    class Player:
        id: int = PrimaryKey()
        team: Team = kind(cascade=cascade)

    with pytest.raises(
        MetadataError,
        match=r"Player\.team: cascade=.* includes Cascade\.REMOVE on the side holding the "
              r"foreign key.*declare Cascade\.REMOVE on the inverse side",
    ):
        connect([Team, Player], create=False)


def test_removing_a_new_author_forgets_its_new_articles(rel, rem):
    ann = Author(name="Ann")
    article = Article(title="draft", author=ann)
    Remark(body="r", article=article)
    rem.persist(ann)
    rem.remove(ann)
    rem.flush()
    assert counts(rel) == (0, 0, 0)
    assert not rem.get_unit_of_work().get_persist_stack()


@pytest.mark.parametrize("through", ["many_to_one", "collection"])
def test_removing_a_new_author_that_a_stored_article_was_moved_to(rel, rem, through):
    """The stored article goes with the removed author (Cascade.REMOVE), and the author,
    forgotten by em.remove(), is not persisted again through that article's relation at
    the flush: one outcome, the change sets and the rows agreeing."""
    ann_id, bob_id = seed(rem, articles=1, remarks=1)
    article = rem.find_one(Article, {"author": ann_id}, populate=["remarks"])
    remark = article.remarks.get_items()[0]
    new = Author(name="New")
    if through == "many_to_one":
        article.author = new
    else:
        new.articles.add(article)
    rem.persist(new)
    rem.remove(new)
    uow = rem.get_unit_of_work()
    assert sorted((cs.type, type(cs.entity).__name__) for cs in uow.compute_change_sets()) == [
        ("delete", "Article"), ("delete", "Remark"),
    ]
    rem.flush()
    assert rows(rel, "select name from author order by id") == [("Ann",), ("Bob",)]
    assert rows(rel, "select title from article") == [("bob's",)]
    assert rows(rel, "select body from remark") == [("kept",)]
    assert new.id is None and not rem.get_unit_of_work().get_persist_stack()
    assert remark not in rem.find(Remark, {})


def test_a_query_flushes_a_pending_removal_that_cascades_to_its_type_first(rel, rem):
    """FlushMode.AUTO: the articles (and remarks) a pending removal takes are not found."""
    ann_id, bob_id = seed(rem, articles=2, remarks=1)
    rem.remove(rem.find_one(Author, {"id": ann_id}))
    assert [a.author.id for a in rem.find(Article, {})] == [bob_id]
    assert [r.body for r in rem.find(Remark, {})] == ["kept"]


def test_the_transaction_events_frame_the_loading_queries(connect, log):
    """With transaction handlers, the flush's own transaction begins (and its
    before_transaction_start runs) before the queries that load what a removal reaches."""
    order: list[tuple[str, int]] = []

    class Tx(EventSubscriber):
        def before_transaction_start(self, args):
            order.append(("start", len(log)))

        def after_transaction_commit(self, args):
            order.append(("commit", len(log)))

    orm = connect(MODELS, subscribers=[Tx()], debug=["query"], logger=log.append)
    em = orm.em.fork()
    ann_id, _ = seed(em, articles=1, remarks=1)
    ann = em.find_one(Author, {"id": ann_id})
    order.clear()
    log.clear()
    em.remove(ann).flush()
    sql = log.sql()
    assert [s.split()[0] for s in sql] == [
        "begin", "select", "select", "delete", "delete", "delete", "commit"
    ], sql
    assert order == [("start", 0), ("commit", len(sql))]
    assert counts(orm) == (1, 1, 1)
