"""OneToMany and Collection, on both databases: discovery checks of `mapped_by`, the
collection API and its initialized / uninitialized states, both sides kept in step in
memory, the flush writing only the foreign key, cascade persist from a collection,
select-in populate (nested, chunked) and to_object."""

from __future__ import annotations

import pytest

from orm import (
    Collection,
    EventSubscriber,
    ManyToOne,
    MetadataError,
    OneToMany,
    PrimaryKey,
    QueryOrder,
    ValidationError,
    entity,
    wrap,
)
from tests.core.one_to_many_models import MODELS, Note, Post, Writer
from tests.databases import execute, rows


@pytest.fixture
def rel(connect, log):
    instance = connect(MODELS, debug=["query"], logger=log.append)
    log.clear()
    return instance


@pytest.fixture
def rem(rel):
    return rel.em.fork()


def queries(log):
    return [m for m in log if "select" in m or "insert" in m or "update" in m or "delete" in m]


def seed(rem):
    ann, bob = Writer(name="Ann"), Writer(name="Bob")
    p1, p2 = Post(title="one", writer=ann), Post(title="two", writer=ann)
    Note(body="n1", post=p1)
    Note(body="n2", post=p1)
    rem.persist([ann, bob]).flush()
    rem.clear()
    return ann.id, bob.id, p1.id, p2.id


# -- declarations -------------------------------------------------------------------------
def test_mapped_by_must_name_the_many_to_one_pointing_back(connect):
    @entity()
    class Shelf:
        id: int = PrimaryKey()
        books: Collection[Book] = OneToMany(mapped_by="shelfx")

    @entity()
    class Book:
        id: int = PrimaryKey()
        shelf: Shelf = ManyToOne()

    with pytest.raises(MetadataError, match=r"Shelf\.books .*Book\.shelfx does not exist"):
        connect([Shelf, Book], create=False)


def test_an_option_of_the_foreign_key_side_on_an_inverse_side_says_where_it_belongs(connect):
    """`nullable` on a OneToMany (or an inverse OneToOne) used to be "unknown option(s)
    nullable; known options: entity, nullable, ...": a contradiction."""
    from orm import OneToOne

    @entity()
    class Shelf:
        id: int = PrimaryKey()
        books: Collection[Book] = OneToMany(mapped_by="shelf", nullable=True)

    @entity()
    class Book:
        id: int = PrimaryKey()
        shelf: Shelf = ManyToOne()

    with pytest.raises(MetadataError, match=r"Shelf\.books = OneToMany\(mapped_by='shelf'\) is "
                       r"the inverse side and has no column: nullable belongs on the side "
                       r"holding the foreign key, the target's 'shelf'\. The options of this "
                       r"side: entity, mapped_by, cascade, orphan_removal, hidden\."):
        connect([Shelf, Book], create=False)

    @entity()
    class Person:
        id: int = PrimaryKey()
        card: Card | None = OneToOne(mapped_by="owner", nullable=True, on_delete="cascade")

    @entity()
    class Card:
        id: int = PrimaryKey()
        owner: Person = OneToOne(inversed_by="card")

    with pytest.raises(MetadataError, match=r"Person\.card = OneToOne\(mapped_by='owner'\) is "
                       r"the inverse side and has no column: nullable, on_delete belong on "):
        connect([Person, Card], create=False)

    @entity()
    class Crate:
        id: int = PrimaryKey()
        items: Collection[Book] = OneToMany(mapped_by="shelf", colour="red")

    with pytest.raises(MetadataError, match=r"Crate\.items has unknown option\(s\) colour; "
                       r"known options: entity, mapped_by, cascade, orphan_removal, hidden\."):
        connect([Crate, Book], create=False)


def test_inversed_by_must_name_the_collection(connect):
    @entity()
    class Rack:
        id: int = PrimaryKey()

    @entity()
    class Box:
        id: int = PrimaryKey()
        rack: Rack = ManyToOne(inversed_by="boxes")

    with pytest.raises(MetadataError, match=r"Box\.rack .*inversed_by='boxes'"):
        connect([Rack, Box], create=False)


def test_inverse_side_has_no_column(rel):
    columns = [c.name for c in rel.metadata.get(Writer).columns]
    assert columns == ["id", "name"]


# -- the collection -----------------------------------------------------------------------
def test_new_entity_collection_is_initialized_and_in_step(rem):
    ann = Writer(name="Ann")
    assert ann.posts.is_initialized() and len(ann.posts) == 0
    p = Post(title="x", writer=ann)  # built with its owner: joins the collection
    assert list(ann.posts) == [p] and p in ann.posts
    bob = Writer(name="Bob", posts=[Post(title="y")])
    assert bob.posts.get_items()[0].title == "y" and bob.posts.get_items()[0].writer is bob
    bob.posts.add(p)  # moves p from Ann to Bob
    assert p.writer is bob and p not in ann.posts and bob.posts.count() == 2
    assert bob.posts[0].title == "y" and bob.posts[-1] is p and bob.posts[0:] == [bob.posts[0], p]
    p.writer = ann  # the owning side moves it back
    assert p in ann.posts and p not in bob.posts
    ann.posts.remove(p)
    assert p.writer is None and ann.posts.count() == 0 and ann.posts.is_dirty()
    with pytest.raises(ValidationError, match=r"Writer\.posts holds Post entities, got Note"):
        ann.posts.add(Note(body="n", post=p))


def test_loaded_collection_is_uninitialized_and_never_queries(rem, log):
    ann_id, *_ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id})
    log.clear()
    assert not ann.posts.is_initialized()
    for touch in (len, list, lambda c: c.count(), lambda c: c.get_items(), lambda c: c[0]):
        with pytest.raises(ValidationError, match=r"Writer\.posts is not initialized.*load\(\)"):
            touch(ann.posts)
    assert queries(log) == []
    ann.posts.load()
    assert len(queries(log)) == 1
    assert sorted(p.title for p in ann.posts) == ["one", "two"]


def test_flush_writes_only_the_foreign_key(rel, rem, log):
    ann_id, bob_id, p1_id, _ = seed(rem)
    ann, bob = rem.find(Writer, {}, populate=["posts"], order_by={"id": "asc"})
    log.clear()
    rem.flush()
    assert queries(log) == []  # nothing changed: no SQL
    p1 = next(p for p in ann.posts if p.id == p1_id)
    bob.posts.add(p1)
    rem.flush()
    writes = [m for m in queries(log) if "select" not in m]
    assert len(writes) == 1 and "update" in writes[0] and "post" in writes[0]
    assert rows(rel, "select writer_id from post where id = ?", [p1_id]) == [(bob_id,)]


def test_cascade_persist_from_collection(rel, rem):
    ann_id, *_ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id}, populate=["posts"])
    post = Post(title="three")
    post.notes.add(Note(body="deep", post=post))
    ann.posts.add(post)  # the managed owner persists it (and its notes at flush)
    rem.flush()
    assert rows(rel, "select count(*) from post where writer_id = ?", [ann_id]) == [(3,)]
    assert rows(rel, "select count(*) from note where post_id = ?", [post.id]) == [(1,)]


def test_a_value_that_is_not_the_target_entity_is_refused_with_nothing_changed(rem):
    """A ManyToOne with an inverse collection checks the value on assignment (the flush
    would refuse it, but the collections would have moved by then)."""
    ann_id, *_ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id}, populate=["posts"])
    post = next(iter(ann.posts))
    for bad in (3, "ann", post, Note(body="n", post=post)):
        with pytest.raises(ValidationError, match=r"Invalid value for Post\.writer: expected a "
                           r"Writer entity or None, got (int|str|Post|Note) .*Nothing was changed"):
            post.writer = bad
        assert post.writer is ann and post in ann.posts
    with pytest.raises(ValidationError, match=r"Post\.writer: expected a Writer entity or None, "
                                              r"got int 3"):
        Post(title="x", writer=3)
    rem.flush()  # nothing half-done is left to write
    assert ann.posts.load().count() == 2


def test_adding_an_entity_marked_for_removal_is_refused_not_dropped(rel, rem):
    """`add` of a child after `em.remove(child)`: the flush would delete it and the move
    would be lost, so it is refused with nothing changed; `em.persist` keeps it."""
    ann_id, bob_id, p1_id, _ = seed(rem)
    bob = rem.find_one(Writer, {"id": bob_id}, populate=["posts"])
    post = rem.find_one(Post, {"id": p1_id})
    rem.remove(post)
    with pytest.raises(
        ValidationError,
        match=r"Cannot add Post .* to Writer\.posts: it is marked for removal in this "
        r"EntityManager",
    ) as raised:
        bob.posts.add(post)
    # a long entity is shown up to its last whole property, never cut inside a value
    assert f"Cannot add Post Post(id={p1_id}, title='one', " in str(raised.value)
    assert ", ...) to Writer.posts" in str(raised.value)
    with pytest.raises(
        ValidationError,
        match=r"Cannot point Post .* at Writer .* through writer: it is marked for removal in "
        r"this EntityManager \(em\.remove\(\)\), and the flush would delete it\. Call "
        r"em\.persist\(\) on it first to keep it\. Nothing was changed\.",
    ):
        post.writer = bob
    assert post.writer is not bob and bob.posts.count() == 0
    rem.persist(post)
    bob.posts.add(post)
    rem.flush()
    assert rows(rel, f"select writer_id from post where id = {p1_id}") == [(bob_id,)]


@pytest.mark.parametrize("how", ["constructor", "assignment"])
@pytest.mark.parametrize("loaded", [False, True], ids=["not-populated", "populated"])
def test_new_item_pointed_at_a_managed_owner_is_saved(rel, rem, how, loaded):
    """Whether the post is saved must not depend on whether `writer.posts` was loaded:
    pointing a new post at a managed writer persists it (Cascade.PERSIST), as `add` does."""
    ann_id, *_ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id}, populate=["posts"] if loaded else None)
    if how == "constructor":
        post = Post(title="three", writer=ann)
    else:
        post = Post(title="three")
        post.writer = ann
    assert wrap(post).get_entity_manager() is rem
    rem.flush()
    assert rows(rel, "select title from post where id = ?", [post.id]) == [("three",)]
    assert ann.posts.load().count() == 3 and post in ann.posts


def test_populate_keeps_links_not_yet_flushed(rel, log):
    """FlushMode.COMMIT: populate does not flush, and neither drops the new items in a
    collection nor asks the database for the items of an owner it has not written."""
    em = rel.em.fork(flush_mode="commit")
    ann_id, *_ = seed(em)
    ann = em.find_one(Writer, {"id": ann_id}, populate=["posts"])
    kept = Post(title="three", writer=ann)
    cyd = Writer(name="Cyd")
    em.persist(cyd)
    new = Post(title="four", writer=cyd)
    log.clear()
    em.populate([ann, cyd], ["posts"])
    assert kept in ann.posts and ann.posts.count() == 3
    assert list(cyd.posts) == [new]
    assert not [m for m in queries(log) if "null" in m]  # no "writer_id is null" query
    em.flush()
    assert rows(rel, "select writer_id from post where title in ('three', 'four') "
                     "order by title desc") == [(ann_id,), (cyd.id,)]


# -- populate -----------------------------------------------------------------------------
def test_populate_one_query_per_level_and_empty_collections(rem, log):
    ann_id, bob_id, p1_id, p2_id = seed(rem)
    log.clear()
    writers = rem.find(Writer, {}, populate=["posts.notes"], order_by={"id": "asc"})
    assert len(queries(log)) == 3  # writers, posts, notes
    ann, bob = writers
    assert bob.posts.is_initialized() and bob.posts.count() == 0
    by_title = {p.title: p for p in ann.posts}
    assert sorted(n.body for n in by_title["one"].notes) == ["n1", "n2"]
    assert by_title["two"].notes.is_initialized() and by_title["two"].notes.count() == 0
    rem.clear()
    log.clear()
    writers = rem.find(Writer, {})
    rem.populate(writers, ["*"])
    assert len(queries(log)) == 3
    assert all(w.posts.is_initialized() for w in writers)


def test_populate_chunks_under_the_variable_limit(rem, log):
    rem.persist([Writer(name=f"w{i}", posts=[Post(title=f"p{i}")]) for i in range(30)])
    rem.flush()
    rem.clear()
    writers = rem.find(Writer, {})
    rem.connection.max_variables = 7
    log.clear()
    rem.populate(writers, ["posts"])
    assert len(queries(log)) == 5  # ceil(30 / 7)
    assert all(w.posts.count() == 1 and w.posts.get_items()[0].writer is w for w in writers)


def test_unknown_populate_path_names_the_collections(rem):
    with pytest.raises(ValidationError, match=r"Writer\.posts\.nope.*relations of Post"):
        rem.find(Writer, {}, populate=["posts.nope"])


# -- serialization ------------------------------------------------------------------------
def test_to_object_nests_populated_and_leaves_out_uninitialized(rem):
    ann_id, *_ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id})
    assert "posts" not in wrap(ann).to_object()
    rem.populate([ann], ["posts"])
    shown = wrap(ann).to_object()
    assert sorted(p["title"] for p in shown["posts"]) == ["one", "two"]
    assert all(p["writer"] == ann_id for p in shown["posts"])  # the cycle shown as a key


# -- filters ------------------------------------------------------------------------------
def test_filter_a_collection_by_its_items_with_in(rem):
    """MikroORM's `{"posts": {"$in": [...]}}`: the writers holding any of those posts,
    given as entities, Refs or keys."""
    ann_id, bob_id, p1_id, p2_id = seed(rem)
    p2 = rem.find_one(Post, p2_id)
    assert [w.id for w in rem.find(Writer, {"posts": {"$in": [p1_id]}})] == [ann_id]
    assert [w.id for w in rem.find(Writer, {"posts": {"$in": [p2, 999]}})] == [ann_id]
    assert rem.find(Writer, {"posts": {"$in": []}}) == []
    assert [w.id for w in rem.find(Writer, {"$not": {"posts": {"$in": [p1_id]}}})] == [bob_id]
    with pytest.raises(ValidationError, match=r"Writer\.posts"):
        rem.find(Writer, {"posts": {"$in": 3}})


def test_filter_across_a_collection(rem):
    ann_id, bob_id, *_ = seed(rem)
    found = rem.find(Writer, {"posts": {"title": "two"}})
    assert [w.id for w in found] == [ann_id]
    assert rem.find(Writer, {"posts": {"notes": {"body": "n2"}}})[0].id == ann_id
    assert rem.find(Writer, {"posts": {"title": "zzz"}}) == []
    assert [w.id for w in rem.find(Writer, {"$not": {"posts": {"id": {"$gt": 0}}}})] == [bob_id]
    with pytest.raises(ValidationError, match=r"Post has no property 'nope'"):
        rem.find(Writer, {"posts": {"nope": 1}})
    with pytest.raises(ValidationError, match=r"Writer\.posts \(a collection of Post\)"):
        rem.find(Writer, {"posts": 3})


# -- rollback -----------------------------------------------------------------------------
def test_rollback_keeps_collections_in_step_with_the_pending_foreign_key(rel, rem):
    """A rolled-back transaction leaves the in-memory change pending, as for any column:
    the collections follow the entity's relation (not the rolled-back row), and the next
    flush writes that relation, so memory and database agree again."""
    ann, bob = Writer(name="Ann"), Writer(name="Bob")
    post = Post(title="x", writer=ann)
    rem.persist([ann, bob]).flush()

    def move(tx):
        bob.posts.add(post)
        tx.flush()
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        rem.transactional(move)
    assert rows(rel, "select writer_id from post where id = ?", [post.id]) == [(ann.id,)]
    assert post.writer is bob and post in bob.posts and post not in ann.posts
    rem.flush()
    assert rows(rel, "select writer_id from post where id = ?", [post.id]) == [(bob.id,)]


def test_removing_a_parent_with_children_is_refused_and_retryable(rel, rem):
    from orm import ForeignKeyConstraintViolationException

    _, _, p1_id, _ = seed(rem)
    post = rem.find_one(Post, {"id": p1_id}, populate=["notes"])
    rem.remove(post)
    with pytest.raises(ForeignKeyConstraintViolationException):
        rem.flush()
    assert rows(rel, "select count(*) from post where id = ?", [p1_id]) == [(1,)]
    for note in post.notes:
        rem.remove(note)
    rem.flush()  # the same Unit of Work, retried with the children removed
    assert rows(rel, "select count(*) from post where id = ?", [p1_id]) == [(0,)]
    assert rows(rel, "select count(*) from note", []) == [(0,)]


# -- a deleted row stays deleted --------------------------------------------------------------
def test_a_deleted_item_leaves_the_collection_and_no_later_flush_inserts_it(rel, rem):
    """The flush that deletes a post takes it out of its writer's loaded collection; the
    post is never taken for a new one again (a cascade from the writer would insert its
    row anew); `em.persist()` inserts it again on purpose, as a new row."""
    ann_id, _, p1_id, _ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id}, populate=["posts", "posts.notes"])
    post = next(p for p in ann.posts if p.id == p1_id)
    for note in list(post.notes):
        rem.remove(note)
    rem.remove(post).flush()
    assert post not in ann.posts and [p.title for p in ann.posts] == ["two"]
    assert "one" not in str(wrap(ann).to_object())
    assert not wrap(post).is_managed()
    ann.name = "Ann B."
    rem.flush()
    assert rows(rel, "select title from post order by title") == [("two",)]
    with pytest.raises(ValidationError, match=r"Cannot add Post .* to Writer\.posts: its row "
                       r"was deleted by a flush\. em\.persist\(\) it to insert it again"):
        ann.posts.add(post)
    rem.persist(post).flush()
    assert rows(rel, "select title, writer_id from post order by title") == [
        ("one", ann_id), ("two", ann_id)
    ]
    assert post in ann.posts, "inserted again, it is back in its writer's collection"


def test_a_new_item_holding_a_removed_entity_cannot_join_a_managed_owner(rel, rem):
    """Built with a managed writer, a new post joins its Unit of Work at once: one whose
    notes hold a note marked for removal there is refused first, nothing changed."""
    ann_id, _, p1_id, _ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id}, populate=["posts"])
    note = rem.find_one(Note, {"body": "n1"})
    rem.remove(note)
    with pytest.raises(ValidationError, match=r"marked for removal in this EntityManager"):
        Post(title="new", writer=ann, notes=[note])
    assert [p.title for p in ann.posts] == ["one", "two"] and note.post.id == p1_id
    rem.flush()
    assert rows(rel, "select count(*) from post where title = 'new'") == [(0,)]


def test_a_deleted_post_cannot_be_pointed_at_a_writer_and_a_rollback_puts_it_back(rel, rem):
    ann_id, bob_id, p1_id, _ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id}, populate=["posts", "posts.notes"])
    bob = rem.find_one(Writer, {"id": bob_id}, populate=["posts"])
    post = next(p for p in ann.posts if p.id == p1_id)
    with pytest.raises(RuntimeError):
        with rem.transaction():
            for note in list(post.notes):
                rem.remove(note)
            rem.remove(post).flush()
            assert post not in ann.posts
            raise RuntimeError("abort")
    assert post in ann.posts, "the row is back: so is the post in its writer's collection"
    for note in list(post.notes):
        rem.persist(note)  # keep them after all
    rem.persist(post)
    rem.flush()
    assert rows(rel, f"select count(*) from post where id = {p1_id}") == [(1,)]
    for note in list(post.notes):
        rem.remove(note)
    rem.remove(post).flush()
    with pytest.raises(ValidationError, match=r"Cannot point Post .* through writer: the row of "
                       r"Post .* was deleted by a flush"):
        post.writer = bob
    assert post not in bob.posts


def test_a_rollback_leaves_a_post_moved_since_with_its_new_writer(rel, rem):
    """The rollback puts a deleted post back only where it still points: one persisted
    again and moved to another writer inside the transaction stays there alone."""
    ann_id, bob_id, _, p2_id = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id}, populate=["posts"])
    bob = rem.find_one(Writer, {"id": bob_id}, populate=["posts"])
    p2 = next(p for p in ann.posts if p.id == p2_id)
    with pytest.raises(RuntimeError):
        with rem.transaction():
            rem.remove(p2).flush()
            rem.persist(p2)
            p2.writer = bob
            rem.flush()
            raise RuntimeError("abort")
    assert p2 in bob.posts and p2 not in ann.posts and p2.writer is bob


def test_a_refused_set_or_add_of_several_items_changes_nothing(rel, rem):
    """Every new item is checked (including what it holds) before any item moves."""
    ann_id, *_ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id}, populate=["posts"])
    note = rem.find_one(Note, {"body": "n1"})
    bad = Post(title="bad")
    note.post = bad
    rem.remove(note)
    ok = Post(title="ok")
    for change in (lambda: ann.posts.set([bad]), lambda: ann.posts.add(ok, bad)):
        with pytest.raises(ValidationError, match=r"marked for removal"):
            change()
        assert [p.title for p in ann.posts] == ["one", "two"] and ok.writer is None
    with pytest.raises(ValidationError, match=r"marked for removal"):
        rem.assign(ann, {"name": "changed", "posts": [bad]})
    assert ann.name == "Ann"
    rem.flush()
    assert rows(rel, "select title, writer_id from post order by title") == [
        ("one", ann_id), ("two", ann_id)
    ]


def test_a_removed_new_post_leaves_its_writer_and_is_never_inserted(rel, rem):
    """`em.remove()` of a new post forgets it and takes it out of its writer's loaded
    collection: a later flush of the writer does not persist it again."""
    ann_id, *_ = seed(rem)
    ann = rem.find_one(Writer, {"id": ann_id}, populate=["posts"])
    fresh = Post(title="fresh", writer=ann)  # persisted at once by cascade
    rem.remove(fresh)
    assert fresh not in ann.posts
    rem.flush()
    ann.name = "Ann B."
    rem.flush()
    assert rows(rel, "select count(*) from post where title = 'fresh'") == [(0,)]


def test_a_delete_rolled_back_after_clear_leaves_a_detached_entity_not_a_deleted_one(rel, rem):
    """`em.clear()` drops the bookkeeping, but the rollback still brings the row back: the
    old instance is an ordinary detached entity, which a query can load again."""
    _, bob_id, _, p2_id = seed(rem)
    post = rem.find_one(Post, {"id": p2_id})
    with pytest.raises(RuntimeError):
        with rem.transaction():
            rem.remove(post).flush()
            rem.clear()
            raise RuntimeError("abort")
    assert rows(rel, f"select count(*) from post where id = {p2_id}") == [(1,)]
    bob = rem.find_one(Writer, {"id": bob_id}, populate=["posts"])
    bob.posts.add(post)  # a detached entity, as after clear(): not refused as a deleted one
    assert post in bob.posts


def test_a_shallow_copy_lists_no_posts_and_changes_none_of_the_originals(rel, rem):
    """`copy.copy(writer)` gets a `posts` collection of its own, holding what points at the
    copy: nothing (the posts' writer is the original). It used to share the original's
    collection, and removing a post through the copy set that post's writer to None."""
    import copy

    ann_id, _, p1_id, p2_id = seed(rem)
    ann = rem.find_one_or_fail(Writer, ann_id, populate=["posts"])
    clone = copy.copy(ann)
    assert clone.posts is not ann.posts and clone.posts.owner is clone
    assert clone.posts.is_initialized() and list(clone.posts) == []
    clone.posts.remove(*ann.posts)  # not the copy's: nothing happens
    assert sorted(p.title for p in ann.posts) == ["one", "two"]
    assert all(p.writer is ann for p in ann.posts)
    clone.id = None
    clone.name = "Ann's copy"
    rem.persist(clone).flush()
    assert rows(rel, f"select count(*) from post where writer_id = {ann_id}") == [(2,)]
    moved = Post(title="three", writer=clone)
    rem.persist(moved).flush()
    assert list(clone.posts) == [moved]


def test_removing_a_post_that_points_at_another_writer_only_fixes_the_list(rel, rem):
    """A collection out of step with its items (a post listed under a writer it does not
    point at) gives the post up without changing where it points."""
    ann_id, bob_id, p1_id, _ = seed(rem)
    ann = rem.find_one_or_fail(Writer, ann_id, populate=["posts"])
    bob = rem.find_one_or_fail(Writer, bob_id, populate=["posts"])
    p1 = rem.find_one_or_fail(Post, p1_id)
    bob.posts._items[id(p1)] = p1  # out of step, as a copied list used to be
    bob.posts.remove(p1)
    assert p1.writer is ann and p1 in ann.posts and p1 not in bob.posts
    rem.flush()
    assert rows(rel, f"select writer_id from post where id = {p1_id}") == [(ann_id,)]


@pytest.mark.parametrize("removed", ["writer", "post", "kept"])
def test_persisting_a_graph_while_something_is_marked_for_removal_reads_each_entity_once(
    rel, rem, monkeypatch, removed
):
    """With an entity marked for removal, `em.persist()` looks through the new entities it
    brings along for a collection holding it. Where no collection can hold it (none
    reached holds writers) nothing is looked at; where one can, each new entity is looked
    at once for the whole list, not once per entity it is reached from (200 posts of one
    new writer, each bringing the writer and so its 200 posts: 40,000 looks); a removal
    cancelled by `em.persist()` leaves nothing marked."""
    from orm.metadata.discovery import MetadataStorage

    _, bob_id, _, p2_id = seed(rem)
    if removed == "post":
        rem.remove(rem.find_one_or_fail(Post, p2_id))
    else:
        bob = rem.find_one_or_fail(Writer, bob_id)
        rem.remove(bob)
        if removed == "kept":
            rem.persist(bob)  # the removal cancelled
    looked = []
    find = MetadataStorage.find
    monkeypatch.setattr(
        MetadataStorage, "find", lambda self, cls: looked.append(cls) or find(self, cls)
    )
    writer = Writer(name="new")
    posts = [Post(title=f"p{k}", writer=writer) for k in range(200)]
    rem.persist(posts)
    assert looked == ([Writer] if removed == "post" else [])  # the writer they bring
    looked.clear()
    rem.persist(Post(title="lone", writer=writer))  # the other posts are persisted already
    assert looked == ([Writer] if removed == "post" else [])
    looked.clear()
    one_by_one = Writer(name="one by one")
    singles = [Post(title=f"s{k}", writer=one_by_one) for k in range(200)]
    for post in singles:  # the writer, never persisted itself, is brought each time
        rem.persist(post)
    # its posts, reached back from it, are not looked through again for every post
    assert looked == ([Writer] * 200 if removed == "post" else [])
    monkeypatch.undo()
    rem.flush()
    assert rows(rel, "select count(*) from post where writer_id = ?", (writer.id,)) == [(201,)]
    assert rows(rel, "select count(*) from post where writer_id = ?", (one_by_one.id,)) == [
        (200,)
    ]


def test_linking_a_post_to_a_writer_marked_for_removal_is_refused_both_ways(rel, rem):
    """The new post would point at a row the flush deletes: refused, nothing changed,
    whether through `writer.posts`, `post.writer` or the constructor; kept after
    `em.persist()` of the writer."""
    writer, other = Writer(name="w"), Writer(name="other")
    moved = Post(title="m", writer=other)
    rem.persist([writer, other]).flush()
    rem.remove(writer)
    post = Post(title="p")
    with pytest.raises(
        ValidationError,
        match=r"Cannot add to Writer\.posts of .*: it is marked for removal in this EntityManager",
    ):
        writer.posts.add(post)
    assert post.writer is None and post not in writer.posts
    for point in (lambda: setattr(moved, "writer", writer), lambda: Post(title="n", writer=writer)):
        with pytest.raises(
            ValidationError,
            match=r"Cannot point Post\.writer at .*: it is marked for removal in this EntityManager",
        ) as raised:
            point()
        assert raised.value.property == "writer"
    assert moved.writer is other and moved in other.posts
    moved.writer = other  # the same owner again: nothing new
    rem.persist(writer)
    writer.posts.add(post)
    rem.flush()
    assert sorted(rows(rel, "select title, writer_id from post")) == [
        ("m", other.id), ("p", writer.id)
    ]


def test_create_and_assign_refuse_a_writer_marked_for_removal_before_changing_anything(
    rel, rem, connect
):
    """`em.assign` checks the writer before it sets the title; `em.create` checks it before
    the instance exists, also for a class with an `__init__` of its own (whose values it
    sets directly)."""
    writer, other = Writer(name="w"), Writer(name="other")
    post = Post(title="p", writer=other)
    rem.persist([writer, other]).flush()
    rem.remove(writer)
    message = r"Writer .* is marked for removal in this EntityManager .* new link to writer"
    with pytest.raises(ValidationError, match=r"Cannot assign Post\.writer of .*: " + message):
        rem.assign(post, {"title": "changed", "writer": writer})
    assert post.title == "p" and post.writer is other
    with pytest.raises(ValidationError, match=r"Cannot create Post: " + message):
        rem.create(Post, {"title": "n", "writer": writer.id})
    with pytest.raises(ValidationError, match=r"Cannot upsert Post: " + message):
        rem.upsert(Post, {"id": post.id, "title": "u", "writer": writer})
    with pytest.raises(ValidationError, match=r"Cannot upsert Post: " + message):
        rem.upsert(Post, {"id": post.id, "title": "u", "writer": writer.id})  # by its key
    with pytest.raises(ValidationError, match=r"Cannot upsert Post: " + message):
        rem.upsert(Post, {"id": post.id, "title": "u", "writer": str(writer.id)})  # as text
    assert rows(rel, f"select title from post where id = {post.id}") == [("p",)]
    rem.assign(post, {"title": "same writer", "writer": other})  # held already: fine

    @entity()
    class Author:
        id: int = PrimaryKey()
        name: str
        books: Collection[Book] = OneToMany(mapped_by="author")

    @entity()
    class Book:
        id: int = PrimaryKey()
        title: str
        author: Author | None = ManyToOne(nullable=True, inversed_by="books")

        def __init__(self, title: str = "", author: Author | None = None) -> None:
            self.title = title
            self.author = author

    orm = connect([Author, Book])
    em = orm.em.fork()
    author = Author(name="a")
    em.persist(author).flush()
    em.remove(author)
    with pytest.raises(ValidationError, match=r"Cannot create Book: Author .* is marked for"):
        em.create(Book, {"title": "c", "author": author})
    em.flush()
    assert rows(orm, "select count(*) from author") == [(0,)]


def test_an_upserted_second_instance_of_a_managed_row_leaves_the_unit_of_work(rel, rem):
    """A new post built with a managed writer joins the EntityManager at once; upserted
    onto a row the EntityManager already manages, it is refused as a second instance of
    that row, and leaves: it was still listed in the writer's posts and scheduled for an
    INSERT that failed every later flush on the duplicate key."""
    ann_id, _, p1_id, p2_id = seed(rem)
    ann = rem.find_one(Writer, ann_id, populate=["posts"])
    edit = Post(id=p1_id, title="edited", writer=ann)
    assert edit in ann.posts and len(ann.posts) == 3
    with pytest.raises(ValidationError, match="second instance of the same row stays unmanaged"):
        rem.upsert(edit)
    assert edit not in ann.posts and sorted(p.id for p in ann.posts) == [p1_id, p2_id]
    assert rem.find_one(Post, p1_id).title == "edited"
    rem.flush()  # nothing left to insert
    assert rows(rel, "select id, title from `post` order by id") == [
        (p1_id, "edited"), (p2_id, "two"),
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="not managed by this EntityManager"):
        rem.remove(edit)


@pytest.mark.parametrize(
    ("how", "fails"),
    [("on_flush", "on_flush"), ("on_flush", "after_flush"), ("before_create", "after_flush")],
)
def test_a_note_a_handler_adds_to_a_new_post_is_written_once_after_a_retry(
    connect, how, fails
):
    """A handler adds a note to each new post (`on_flush` persisting `Note(post=post)`, a
    `before_create` adding to `post.notes`); the flush fails and is retried. The note the
    failed flush made was dropped from the Unit of Work but stayed in `post.notes`, so the
    retry wrote it and the one its handler made again: two rows for one."""
    state = {"failing": True}

    class Noter(EventSubscriber):
        def get_subscribed_entities(self):
            return [Post]

        def on_flush(self, args):
            if how == "on_flush":
                for cs in args.uow.compute_change_sets():
                    if cs.type == "create" and cs.name == "Post":
                        args.em.persist(Note(body="auto", post=cs.entity))
            if state["failing"] and fails == "on_flush":
                raise RuntimeError("on_flush failed")

        def before_create(self, args):
            if how == "before_create":
                args.entity.notes.add(Note(body="auto", post=args.entity))

        def after_flush(self, args):
            if state["failing"] and fails == "after_flush":
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Noter()])
    em = orm.em.fork()
    post = Post(title="p")
    em.persist(post)
    with pytest.raises(RuntimeError, match="failed"):
        em.flush()
    assert rows(orm, "select count(*) from note") == [(0,)]
    assert len(post.notes) == 0, "what the failed flush made is gone from the collection"
    state["failing"] = False
    em.flush()
    assert rows(orm, "select body, post_id from note") == [("auto", post.id)]
    assert [n.body for n in post.notes] == ["auto"]


def test_refresh_writes_nothing_pending_elsewhere(rel, rem, log):
    """`em.refresh(post)` reads the post and its loaded collections again; it must not
    flush: a note moved to it (`post.notes.add(note)`, a change of the note's foreign key)
    was written and committed by the auto flush of the collection's re-read. The move stays
    pending, shown in the re-read collection, and the next flush writes it."""
    _, _, p1, p2 = seed(rem)
    post = rem.find_one_or_fail(Post, p2, populate=["notes"])
    note = rem.find_one_or_fail(Note, {"body": "n1"})
    post.notes.add(note)
    post.title = "unsaved"
    log.clear()
    assert rem.refresh(post) is post
    assert not [m for m in queries(log) if "update" in m or "insert" in m], log
    assert rows(rel, "select post_id from note where body = 'n1'") == [(p1,)]
    assert post.title == "two" and [n.body for n in post.notes] == ["n1"]
    rem.flush()
    assert rows(rel, "select post_id from note where body = 'n1'") == [(p2,)]


def test_refresh_shows_notes_another_writer_added_or_deleted(rel, rem):
    """A note another writer deleted leaves the refreshed collection, one it added joins:
    the re-read kept every held note whose foreign key pointed at the post in memory,
    though only a moved one (not in its row yet) must stay."""
    _, _, p1, p2 = seed(rem)
    post = rem.find_one_or_fail(Post, p1, populate=["notes"])
    moved = rem.find_one_or_fail(Post, p2, populate=["notes"])
    assert sorted(n.body for n in post.notes) == ["n1", "n2"]
    execute(rel, f"insert into `note` (`body`, `post_id`) values ('n3', {p1})")
    execute(rel, "delete from `note` where `body` = 'n2'")
    mover = Note(body="new", post=moved)
    post.notes.add(mover)  # pending: its row does not exist yet
    rem.refresh(post)
    assert sorted(n.body for n in post.notes) == ["n1", "n3", "new"]
    rem.flush()
    assert rows(rel, f"select `body` from `note` where `post_id` = {p1} order by `body`") == [
        ("n1",), ("n3",), ("new",),
    ]  # fmt: skip


@pytest.mark.parametrize("direction", ["asc", -1, "QueryOrder.DESC", {"title": "asc"}])
def test_order_by_a_collection_is_refused_naming_it(rem, log, direction):
    """A collection holds several rows for each: it cannot order them, whatever the
    direction. A plain one ("asc", QueryOrder.DESC) sent `order by ""` to the database,
    whose error told to update the schema (SQLite) or about a literal % (PostgreSQL)."""
    if direction == "QueryOrder.DESC":
        direction = QueryOrder.DESC
    seed(rem)
    log.clear()
    with pytest.raises(ValidationError) as raised:
        rem.find(Writer, {}, order_by={"posts": direction})
    assert str(raised.value).startswith(
        "order_by on Writer: posts is a collection (several rows each), which cannot order "
        "the rows; order by a column, or through a ManyToOne"
    )
    assert raised.value.property == "posts" and queries(log) == []


def test_a_new_item_that_joined_another_entity_manager_says_through_which_link(rel, rem):
    """A new post pointed at a writer managed by one EntityManager joins it at once; given
    to another's `persist()`, the refusal named only the post, and the user looked for a
    `persist()` of theirs that never was. It names the link it joined through."""
    ann_id, *_ = seed(rem)
    ann = rem.find_one_or_fail(Writer, ann_id, populate=["posts"])
    post = Post(title="new", writer=ann)
    other = rel.em.fork()
    with pytest.raises(ValidationError) as raised:
        other.persist(post)
    assert (
        f"is already new in another EntityManager (id {rem.id}), which it may have joined when "
        f"Post.writer was set to Writer(id={ann_id}, name='Ann', ...), managed there (a new "
        "entity joins the EntityManager of a managed one it is linked to); an entity belongs "
        "to one EntityManager"
    ) in str(raised.value)


def test_a_move_a_handler_made_stays_in_step_on_both_sides_after_a_failed_flush(connect):
    """A `before_create` handler moves a managed post to the new post's writer
    (`post.writer = bob`); the flush fails. A relation a handler assigned is not put back
    (its other side would not be with it): the post stays with Bob on both sides, and the
    retry writes the move once. Putting back only the foreign key left it under Ann's key
    but listed in Bob's posts, and every retry of a one-to-one failed."""
    failing: list[bool] = []
    moved: list[Post] = []

    class Mover(EventSubscriber):
        def get_subscribed_entities(self):
            return [Post]

        def before_create(self, args):
            if moved:
                moved[0].writer = args.entity.writer

        def after_flush(self, args):
            if failing:
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Mover()])
    em = orm.em.fork()
    ann_id, bob_id, p1, _ = seed(em)
    ann = em.find_one_or_fail(Writer, ann_id, populate=["posts"])
    bob = em.find_one_or_fail(Writer, bob_id, populate=["posts"])
    moved.append(em.find_one_or_fail(Post, p1))
    em.persist(Post(title="new", writer=bob))
    failing.append(True)
    with pytest.raises(RuntimeError, match="after_flush failed"):
        em.flush()
    assert moved[0].writer is bob
    assert [p.title for p in ann.posts] == ["two"]
    assert sorted(p.title for p in bob.posts) == ["new", "one"]
    failing.clear()
    em.flush()
    assert rows(orm, f"select title from post where writer_id = {bob_id} order by title") == [
        ("new",), ("one",),
    ]  # fmt: skip
    assert sorted(p.title for p in bob.posts) == ["new", "one"] and [
        p.title for p in ann.posts
    ] == ["two"]


def test_a_re_read_keeps_a_link_made_through_a_reference(rel):
    """FlushMode.COMMIT: a note never loaded (`em.get_reference`) added to a post's loaded
    notes, then the notes read again: the link is not in the note's row yet, so it stays
    (a reference's snapshot was taken for a stored row pointing elsewhere, and the note
    left the collection while its `post` still pointed there)."""
    em = rel.em.fork(flush_mode="commit")
    _, _, p1, p2 = seed(em)
    note_id = rel.em.fork().find_one_or_fail(Note, {"body": "n1"}).id
    post = em.find_one_or_fail(Post, p2, populate=["notes"])
    ref = em.get_reference(Note, note_id)
    post.notes.add(ref)
    em.populate(post, ["notes"])
    assert ref in post.notes and ref.post is post
    em.flush()
    assert rows(rel, f"select post_id from note where id = {note_id}") == [(p2,)]


@pytest.mark.parametrize("fails", ["handler", "after_flush", "transaction"])
def test_a_post_a_handler_makes_then_links_is_written_once_after_a_retry(connect, fails):
    """A `before_update` handler makes a post, then titles and links it and persists it;
    the flush fails (or the transaction around it rolls back) and is retried. What the
    handler assigned to the post it made is not put back: the link (the post stayed in the
    writer's posts, and the retry wrote two), nor its title (written, then rolled back, the
    post was inserted again with the title it was made with)."""
    failing: list[bool] = []
    made_posts: list[Post] = []

    class Maker(EventSubscriber):
        def before_update(self, args):
            if isinstance(args.entity, Writer) and not made_posts:
                made = Post(title="draft")
                made.title = "auto"
                made.writer = args.entity
                args.em.persist(made)
                made_posts.append(made)
                if failing and fails == "handler":
                    raise RuntimeError("handler failed")

        def after_flush(self, args):
            if failing and fails == "after_flush":
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Maker()])
    em = orm.em.fork()
    ann_id, *_ = seed(em)
    ann = em.find_one_or_fail(Writer, ann_id, populate=["posts"])
    ann.name = "Anne"
    if fails == "transaction":
        with pytest.raises(RuntimeError, match="undo"):
            with em.connection.transaction():
                em.flush()
                raise RuntimeError("undo")
        assert made_posts[0].title == "auto" and made_posts[0] in ann.posts
    else:
        failing.append(True)
        with pytest.raises(RuntimeError, match="failed"):
            em.flush()
        assert sorted(p.title for p in ann.posts) == ["one", "two"]
        made_posts.clear()
    failing.clear()
    em.flush()
    assert rows(orm, "select title from post where title in ('auto', 'draft')") == [("auto",)]
