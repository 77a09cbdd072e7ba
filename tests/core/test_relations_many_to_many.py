"""ManyToMany, on both databases: discovery checks, the pivot table's schema, both sides
kept in step in memory, the flush writing exactly the changed pivot rows (batched, nothing
when nothing changed), changes through the inverse side, removal, rollback, select-in
populate through the pivot, filters across it and to_object."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from orm import (
    Cascade,
    Collection,
    EventArgs,
    EventSubscriber,
    FlushMode,
    ForeignKeyConstraintViolationException,
    ManyToMany,
    ManyToOne,
    MetadataError,
    PrimaryKey,
    UniqueConstraintViolationException,
    ValidationError,
    entity,
    wrap,
)
from orm.unit_of_work.pivots import PIVOT_CHUNK, PIVOT_INSERT_CHUNK, _chunk_sizes
from tests.core.many_to_many_models import MODELS, Article, Person, Reader, Tag
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
    return [m for m in log.sql() if m.split(" ", 1)[0] in ("select", "insert", "update", "delete")]


def writes(log):
    return [m for m in queries(log) if not m.startswith("select")]


def pairs(orm, table="article_tags", columns="article_id, tag_id"):
    return sorted(rows(orm, f"select {columns} from {table}"))


def memory_pairs(articles):
    return sorted((a.id, t.id) for a in articles for t in a.tags)


def seed(rem):
    """Articles a1 (tags x, y), a2 (tag y), a3 (none); tags x, y, z."""
    x, y, z = Tag(label="x"), Tag(label="y"), Tag(label="z")
    a1, a2, a3 = Article(title="a1"), Article(title="a2"), Article(title="a3")
    a1.tags.add(x, y)
    a2.tags.add(y)
    rem.persist([a1, a2, a3, z]).flush()
    ids = {e.title if isinstance(e, Article) else e.label: e.id for e in (a1, a2, a3, x, y, z)}
    rem.clear()
    return ids


# -- declarations and schema ----------------------------------------------------------------
def test_pivot_table_schema(rel):
    sql = rel.schema.get_create_schema_sql()
    q = '"' if rel.config.driver == "postgresql" else "`"
    pivot = next(s for s in sql.split(";\n") if f"create table {q}article_tags{q}" in s)
    assert f"{q}article_id{q}" in pivot and f"{q}tag_id{q}" in pivot
    assert f"references {q}article{q} ({q}id{q}) on update cascade on delete cascade" in pivot
    assert f"references {q}tag{q} ({q}id{q}) on update cascade on delete cascade" in pivot
    assert f"primary key ({q}article_id{q}, {q}tag_id{q})" in pivot
    assert (f"create index {q}article_tags_tag_id_index{q} on {q}article_tags{q} ({q}tag_id{q})"
            in sql)
    # after both ends; dropped before them
    assert sql.index("create table " + q + "tag" + q) < sql.index("article_tags")
    drop = rel.schema.get_drop_schema_sql()
    assert drop.index("article_tags") < drop.index(f"{q}article{q}")
    # self-reference: two columns of one class
    assert f"{q}person_1_id{q}" in sql and f"{q}person_2_id{q}" in sql
    assert "person_friends" in sql and "tag_readers" in sql
    # the collections have no column
    assert [c.name for c in rel.metadata.get(Article).columns] == ["id", "title"]
    assert [c.name for c in rel.metadata.get(Tag).columns] == ["id", "label"]


def test_update_schema_adds_a_missing_pivot_table(rel):
    rel.connection.execute("drop table article_tags")
    dump = rel.schema.get_update_schema_sql()
    creates = [s for s in dump.split(";\n") if s.startswith("create table")]
    assert len(creates) == 1 and "article_tags" in creates[0]
    rel.schema.update_schema()
    assert rows(rel, "select count(*) from article_tags") == [(0,)]
    assert rel.schema.get_update_schema_sql() == ""


@pytest.mark.parametrize(
    "ddl, problem",
    [
        ("create table article_tags (article_id {key} not null references article (id) on "
         "update cascade on delete cascade, label_id {key} not null, "
         "primary key (article_id, label_id))", r"it has no column 'tag_id'"),
        ("create table article_tags (article_id {key} not null, tag_id {key} not null, "
         "primary key (article_id, tag_id))",
         r"column 'article_id' is not a foreign key to 'article' \(on update cascade on "
         r"delete cascade\); column 'tag_id' is not a foreign key to 'tag' .*"),
        ("create table article_tags (article_id {key} not null references article (id) on "
         "update cascade on delete cascade, tag_id {other} not null references tag (id) on "
         "update cascade on delete cascade, primary key (article_id, tag_id))",
         r"column 'tag_id' is (text|integer); it should be (integer|bigint), in the primary key"),
    ],
    ids=["column-missing", "no-foreign-key", "wrong-type"],
)
def test_update_schema_refuses_a_pivot_table_that_differs(rel, database, ddl, problem):
    """A pivot table whose columns or foreign keys differ would lose or strand pairs (the
    `on delete cascade` is what deletes a removed entity's pairs): refused, nothing changed.
    A missing index on its second column is added."""
    execute(rel, "drop table article_tags")
    pg = database == "postgresql"
    execute(rel, ddl.format(key="bigint" if pg else "integer", other="integer" if pg else "text"))
    execute(rel, "insert into article (title) values ('kept')")
    with pytest.raises(
        ValidationError,
        match=r"Cannot update the schema of Article\.tags: its pivot table 'article_tags' "
        rf"exists but differs \({problem}\)\. update_schema does not rebuild a pivot table",
    ) as raised:
        rel.schema.update_schema()
    assert raised.value.property == "tags"
    assert rows(rel, "select title from article") == [("kept",)]
    with pytest.raises(ValidationError):
        rel.schema.get_update_schema_sql()


def test_update_schema_takes_a_pivot_table_of_the_same_key_types(rel, database):
    """Spelled otherwise but storing the keys alike (`int` on SQLite is `integer`)."""
    if database != "sqlite":
        pytest.skip("type affinity is SQLite's")
    execute(rel, "drop table article_tags")
    execute(rel, "create table article_tags (article_id int not null references article (id) "
                 "on update cascade on delete cascade, tag_id int not null references tag (id) "
                 "on update cascade on delete cascade, primary key (article_id, tag_id))")
    assert [s for s in rel.schema.update_schema() if "article_tags" not in s] == []


def test_update_schema_adds_a_missing_pivot_index(rel):
    index = next(
        s.split(" ")[2] for s in rel.schema.get_create_schema_sql().split(";\n")
        if s.startswith("create index") and "article_tags" in s
    )
    execute(rel, f"drop index {index}")
    assert rel.schema.update_schema() == [
        s for s in rel.schema.get_create_schema_sql().split(";\n")
        if s.startswith("create index") and "article_tags" in s
    ]
    assert rel.schema.get_update_schema_sql() == ""


def test_unknown_target_names_the_side(connect):
    @entity()
    class Shelf:
        id: int = PrimaryKey()
        books: Collection[Nowhere] = ManyToMany()  # noqa: F821

    with pytest.raises(MetadataError, match=r"Shelf\.books is a relation to 'Nowhere'"):
        connect([Shelf], create=False)


def test_mapped_by_must_name_an_owning_many_to_many(connect):
    @entity()
    class Box:
        id: int = PrimaryKey()
        shelf: Shelf2 | None = ManyToOne(nullable=True)

    @entity()
    class Shelf2:
        id: int = PrimaryKey()
        boxes: Collection[Box] = ManyToMany(mapped_by="shelf")

    with pytest.raises(
        MetadataError,
        match=r"Shelf2\.boxes = ManyToMany\(mapped_by='shelf'\) .*Box\.shelf is not a ManyToMany",
    ):
        connect([Box, Shelf2], create=False)

    @entity()
    class Pen:
        id: int = PrimaryKey()
        cups: Collection[Cup] = ManyToMany(mapped_by="pens")

    @entity()
    class Cup:
        id: int = PrimaryKey()
        pens: Collection[Pen] = ManyToMany(mapped_by="cups")

    with pytest.raises(MetadataError, match=r"Pen\.cups .*Cup\.pens is itself an inverse side"):
        connect([Pen, Cup], create=False)

    @entity()
    class Jar:
        id: int = PrimaryKey()
        lids: Collection[Lid] = ManyToMany(mapped_by="nope")

    @entity()
    class Lid:
        id: int = PrimaryKey()

    with pytest.raises(MetadataError, match=r"Jar\.lids .*Lid\.nope does not exist"):
        connect([Jar, Lid], create=False)


def test_both_sides_owning_is_refused(connect):
    @entity()
    class Course:
        id: int = PrimaryKey()
        pupils: Collection[Pupil] = ManyToMany(inversed_by="courses")

    @entity()
    class Pupil:
        id: int = PrimaryKey()
        courses: Collection[Course] = ManyToMany()

    with pytest.raises(
        MetadataError,
        match=r"Course\.pupils = ManyToMany\(inversed_by='courses'\) .*Pupil\.courses is an "
        r"owning side too",
    ):
        connect([Course, Pupil], create=False)


@pytest.mark.parametrize("cascade", [[Cascade.PERSIST, Cascade.REMOVE], [Cascade.ALL]])
@pytest.mark.parametrize("side", ["owning", "inverse"])
def test_cascade_remove_on_a_many_to_many_is_refused(connect, cascade, side):
    """Either side's entities are shared: a cascade would delete rows other owners link to.
    Refused by name rather than ignored (the linked entities would silently stay)."""

    @entity()
    class Bin:
        id: int = PrimaryKey()
        caps: Collection[Cap] = ManyToMany(
            inversed_by="bins", **({"cascade": cascade} if side == "owning" else {})
        )

    @entity()
    class Cap:
        id: int = PrimaryKey()
        bins: Collection[Bin] = ManyToMany(
            mapped_by="caps", **({"cascade": cascade} if side == "inverse" else {})
        )

    where = r"Bin\.caps" if side == "owning" else r"Cap\.bins"
    with pytest.raises(
        MetadataError, match=where + r": cascade=.* includes Cascade\.REMOVE on a ManyToMany, "
        r"whose entities on the other side are shared .* remove those with em\.remove\(\)",
    ) as info:
        connect([Bin, Cap], create=False)
    assert info.value.property == ("caps" if side == "owning" else "bins")


def test_long_pivot_names_fit_postgresql(connect, database):
    if database != "postgresql":
        pytest.skip("identifier lengths are PostgreSQL's")

    @entity(table_name="a_rather_long_table_name_for_articles_of_the_archive")
    class LongArticle:
        id: int = PrimaryKey()
        keywords_of_the_archive_entry: Collection[LongTag] = ManyToMany()

    @entity()
    class LongTag:
        id: int = PrimaryKey()

    orm = connect([LongArticle, LongTag])
    pivot = orm.metadata.pivots[0]
    assert len(pivot.table.encode()) <= 63
    assert orm.connection.query(
        "select count(*) from pg_tables where schemaname = current_schema() and tablename = %s",
        [pivot.table],
    ) == [(1,)]

    @entity()
    class Bad:
        id: int = PrimaryKey()
        tags: Collection[LongTag] = ManyToMany(pivot_table="x" * 70)

    with pytest.raises(MetadataError, match=r"Bad\.tags: pivot_table='x+' is 70 bytes"):
        connect([Bad, LongTag], create=False)


# -- the collection in memory -----------------------------------------------------------------
def test_new_collections_are_initialized_and_both_sides_in_step(rem):
    a, b = Article(title="a"), Article(title="b")
    x, y = Tag(label="x"), Tag(label="y")
    assert a.tags.is_initialized() and a.tags.count() == 0 and x.articles.count() == 0
    a.tags.add(x, y)
    assert list(x.articles) == [a] and list(y.articles) == [a]
    y.articles.add(b)  # the inverse side reaches the owning one
    assert list(b.tags) == [y] and b.tags.is_dirty()
    a.tags.remove(x)
    assert x.articles.count() == 0 and x not in a.tags
    a.tags.set([x])
    assert list(a.tags) == [x] and list(x.articles) == [a] and list(y.articles) == [b]
    y.articles.remove_all()
    assert b.tags.count() == 0
    c = Article(title="c", tags=[x, y])  # the constructor takes the items
    assert c in x.articles and c in y.articles


def test_wrong_class_is_refused(rem):
    a = Article(title="a")
    with pytest.raises(ValidationError, match=r"Article\.tags holds Tag entities, got Reader"):
        a.tags.add(Reader(name="r"))
    with pytest.raises(ValidationError, match=r"Tag\.articles holds Article entities, got Tag"):
        Tag(label="t").articles.add(Tag(label="u"))
    assert a.tags.count() == 0


def test_loaded_collection_is_uninitialized_and_never_queries(rem, log):
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"])
    log.clear()
    assert not a1.tags.is_initialized()
    for touch in (len, list, lambda c: c.count(), lambda c: c.get_items(), lambda c: c.add()):
        with pytest.raises(ValidationError, match=r"Article\.tags is not initialized.*load\(\)"):
            touch(a1.tags)
    assert queries(log) == []
    a1.tags.load()
    assert len(queries(log)) == 1
    assert sorted(t.label for t in a1.tags) == ["x", "y"]


def test_an_entity_of_another_entity_manager_is_refused(rel, rem):
    ids = seed(rem)
    other = rel.em.fork()
    theirs = other.find_one(Tag, ids["z"])
    new_there = Tag(label="new")
    other.persist(new_there)
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    for tag, state in ((theirs, "managed by"), (new_there, "new in")):
        with pytest.raises(
            ValidationError,
            match=rf"Cannot add Tag .* to Article\.tags: it is {state} another EntityManager",
        ):
            a1.tags.add(tag)
    assert a1.tags.count() == 2
    rem.flush()
    assert pairs(rel) == sorted(
        [(ids["a1"], ids["x"]), (ids["a1"], ids["y"]), (ids["a2"], ids["y"])]
    )


def test_an_entity_marked_for_removal_is_refused_not_dropped(rel, rem):
    """Adding (or persisting a new owner holding) an entity after `em.remove()` would have
    the flush delete it and drop the link: refused, nothing changed; persisting it again
    cancels the removal and the link is written. Removing after adding deletes it."""
    ids = seed(rem)
    a3 = rem.find_one(Article, ids["a3"], populate=["tags"])
    z = rem.find_one(Tag, ids["z"])
    rem.remove(z)
    with pytest.raises(
        ValidationError,
        match=r"Cannot add Tag .* to Article\.tags: it is marked for removal in this "
        r"EntityManager \(em\.remove\(\)\)\. Call em\.persist\(\) on it first",
    ):
        a3.tags.add(z)
    assert a3.tags.count() == 0 and not a3.tags.is_dirty()
    fresh = Article(title="new", tags=[z])
    ok = Article(title="ok")
    for persist in (lambda: rem.persist(fresh), lambda: rem.persist([ok, [fresh]])):
        with pytest.raises(
            ValidationError,
            match=r"Cannot persist Article .*: Article\.tags holds Tag .*, which is marked for "
            r"removal in this EntityManager",
        ) as raised:
            persist()
        assert raised.value.property == "tags"
        assert not wrap(fresh).is_managed()
    rem.persist(z)  # keeps it after all
    a3.tags.add(z)
    rem.persist(fresh)
    rem.flush()
    assert (ids["a3"], ids["z"]) in pairs(rel) and (fresh.id, ids["z"]) in pairs(rel)
    # the refused list was refused as a whole: the article before the bad one did not join
    assert rows(rel, "select count(*) from article where title = 'ok'") == [(0,)]
    # the last call wins: added, then removed, the tag goes with its links
    y = rem.find_one(Tag, ids["y"])
    a3.tags.add(y)
    rem.remove(y)
    rem.flush()
    assert ids["y"] not in [t for _, t in pairs(rel)]
    assert rows(rel, f"select id from tag where id = {ids['y']}") == []


# -- flush ----------------------------------------------------------------------------------
def test_pivot_rows_equal_the_collections_and_a_second_flush_writes_nothing(
    rel, rem, log, database
):
    ids = seed(rem)
    assert pairs(rel) == sorted(
        [(ids["a1"], ids["x"]), (ids["a1"], ids["y"]), (ids["a2"], ids["y"])]
    )
    articles = rem.find(Article, {}, populate=["tags"])
    assert memory_pairs(articles) == pairs(rel)
    log.clear()
    rem.flush()
    assert queries(log) == []
    a1, a2, a3 = sorted(articles, key=lambda a: a.title)
    z = rem.find_one(Tag, ids["z"])
    x = next(t for t in a1.tags if t.label == "x")
    a1.tags.remove(x)
    a3.tags.add(z, x)
    a2.tags.add(z)
    log.clear()
    rem.flush()
    written = writes(log)
    assert len(written) == 2, written  # one delete, one insert of 3 rows
    assert written[0].startswith("delete from") and "article_tags" in written[0]
    assert written[1].startswith("insert into")
    if database == "postgresql":  # the pairs as two arrays
        assert "unnest(" in written[1] and written[1].count("(") == 2
    else:
        assert written[1].count("(") == 1 + 3
    assert memory_pairs(articles) == pairs(rel)
    log.clear()
    rem.flush()
    assert queries(log) == []
    assert not a1.tags.is_dirty()


def test_add_then_remove_writes_nothing(rem, log):
    ids = seed(rem)
    a3 = rem.find_one(Article, ids["a3"], populate=["tags"])
    z = rem.find_one(Tag, ids["z"])
    a3.tags.add(z)
    a3.tags.remove(z)
    log.clear()
    rem.flush()
    assert writes(log) == []


def test_a_change_through_the_inverse_side_is_written(rel, rem):
    ids = seed(rem)
    z = rem.find_one(Tag, ids["z"], populate=["articles"])
    a1, a3 = rem.find_one(Article, ids["a1"]), rem.find_one(Article, ids["a3"])
    assert not a1.tags.is_initialized()
    z.articles.add(a1, a3)  # the owning collections are not loaded: they keep the change
    rem.flush()
    assert (ids["a1"], ids["z"]) in pairs(rel) and (ids["a3"], ids["z"]) in pairs(rel)
    a1.tags.load()
    assert sorted(t.label for t in a1.tags) == ["x", "y", "z"]
    z.articles.remove(a1)
    assert z not in a1.tags
    rem.flush()
    assert (ids["a1"], ids["z"]) not in pairs(rel)


def test_inverse_change_of_a_pair_already_stored_is_harmless(rel, rem):
    ids = seed(rem)
    y = rem.find_one(Tag, ids["y"], populate=["articles"])
    x = rem.find_one(Tag, ids["x"])
    a1 = next(a for a in y.articles if a.title == "a1")
    assert not a1.tags.is_initialized()
    x.articles.load()
    x.articles.remove(a1)
    x.articles.add(a1)  # back to the stored state: nothing to write
    rem.flush()
    assert pairs(rel) == sorted(
        [(ids["a1"], ids["x"]), (ids["a1"], ids["y"]), (ids["a2"], ids["y"])]
    )


def test_new_entities_on_both_ends_are_inserted_first(rel, rem, log):
    ids = seed(rem)
    a2 = rem.find_one(Article, ids["a2"], populate=["tags"])
    fresh = Tag(label="fresh")
    a2.tags.add(fresh)  # the managed owner persists it (Cascade.PERSIST)
    assert wrap(fresh).get_entity_manager() is rem
    new_article = Article(title="new")
    fresh.articles.add(new_article)  # reached through the inverse side
    log.clear()
    rem.flush()
    statements = writes(log)
    assert statements[-1].startswith("insert into") and "article_tags" in statements[-1]
    assert (a2.id, fresh.id) in pairs(rel) and (new_article.id, fresh.id) in pairs(rel)


def test_a_new_item_without_cascade_is_refused(connect):
    @entity()
    class Gallery:
        id: int = PrimaryKey()
        pictures: Collection[Picture] = ManyToMany(cascade=[])

    @entity()
    class Picture:
        id: int = PrimaryKey()

    orm = connect([Gallery, Picture])
    em = orm.em.fork()
    gallery = Gallery()
    em.persist(gallery).flush()
    gallery.pictures.add(Picture())
    with pytest.raises(
        ValidationError, match=r"Gallery\.pictures holds a new Picture that is not persisted"
    ):
        em.flush()
    assert rows(orm, "select count(*) from gallery_pictures") == [(0,)]


def test_removing_an_owner_deletes_its_pivot_rows(rel, rem):
    ids = seed(rem)
    tags = rem.find(Tag, {}, populate=["articles"])
    a1 = rem.find_one(Article, ids["a1"])
    rem.remove(a1)
    rem.flush()
    assert pairs(rel) == [(ids["a2"], ids["y"])]
    assert all(a1 not in t.articles for t in tags)


def test_removing_a_target_drops_it_from_loaded_collections(rel, rem):
    ids = seed(rem)
    articles = rem.find(Article, {}, populate=["tags"])
    y = rem.find_one(Tag, ids["y"])
    rem.remove(y)
    rem.flush()
    assert pairs(rel) == [(ids["a1"], ids["x"])]
    assert memory_pairs(articles) == pairs(rel)
    rem.flush()  # nothing left pending about y


def test_rollback_keeps_the_change_pending(rel, rem):
    ids = seed(rem)
    a3 = rem.find_one(Article, ids["a3"], populate=["tags"])
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    z = rem.find_one(Tag, ids["z"])
    x = next(t for t in a1.tags if t.label == "x")

    def change(tx):
        a3.tags.add(z)
        a1.tags.remove(x)
        rem.flush()  # inside the transaction: a savepoint
        inside = tx.connection.query("select article_id, tag_id from article_tags")
        assert (ids["a3"], ids["z"]) in [tuple(r) for r in inside]
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        rem.transactional(change)
    assert (ids["a3"], ids["z"]) not in pairs(rel) and (ids["a1"], ids["x"]) in pairs(rel)
    assert z in a3.tags and x not in a1.tags and a3.tags.is_dirty()
    rem.flush()
    assert (ids["a3"], ids["z"]) in pairs(rel) and (ids["a1"], ids["x"]) not in pairs(rel)
    assert memory_pairs([a1, a3]) == [p for p in pairs(rel) if p[0] in (ids["a1"], ids["a3"])]


def test_rollback_then_undoing_the_change_in_memory_writes_nothing(rel, rem, log):
    ids = seed(rem)
    a3 = rem.find_one(Article, ids["a3"], populate=["tags"])
    z = rem.find_one(Tag, ids["z"])
    with pytest.raises(RuntimeError):
        with rem.transaction() as tx:  # noqa: F841
            a3.tags.add(z)
            rem.flush()
            a3.tags.remove(z)  # after the flush: pending as a removal
            raise RuntimeError("abort")
    log.clear()
    rem.flush()  # the rolled-back insert and the later removal cancel out
    assert writes(log) == []
    assert (ids["a3"], ids["z"]) not in pairs(rel)


def test_a_rolled_back_delete_puts_the_entity_back_in_the_collections_it_left(rel, rem):
    """A flush deleting a tag takes it out of the loaded collections holding it (its pivot
    rows went with it) and drops the unwritten pairs to it. Rolled back, the rows are back:
    so are the tag in those collections and the pending pairs, else a later change would be
    computed from a collection that no longer matches the database."""
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    a3 = rem.find_one(Article, ids["a3"], populate=["tags"])
    x = next(t for t in a1.tags if t.label == "x")
    y = next(t for t in a1.tags if t.label == "y")
    loaded_x = rem.find_one(Tag, ids["x"], populate=["articles", "readers"])
    assert loaded_x is x and [a.title for a in x.articles] == ["a1"]
    reader = Reader(name="r")
    x.readers.add(reader)  # x's own unwritten pair
    a3.tags.add(x)  # a pair to x not written yet
    with pytest.raises(RuntimeError):
        with rem.transaction():
            rem.remove(x)
            rem.flush()
            assert x not in a1.tags and x not in a3.tags
            raise RuntimeError("abort")
    assert pairs(rel) == sorted([(ids["a1"], ids["x"]), (ids["a1"], ids["y"]),
                                 (ids["a2"], ids["y"])])
    assert [t.label for t in a1.tags] == ["y", "x"] and x in a3.tags
    rem.persist(x)  # keep the tag after all
    a1.tags.set([y])  # computed against a collection that holds x again
    rem.flush()
    assert pairs(rel) == sorted([(ids["a1"], ids["y"]), (ids["a2"], ids["y"]),
                                 (ids["a3"], ids["x"])])
    assert rows(rel, "select count(*) from tag_readers") == [(1,)]
    assert memory_pairs([a1, a3]) == [p for p in pairs(rel) if p[0] in (ids["a1"], ids["a3"])]


def test_a_failed_flush_keeps_the_change_pending(rel, rem):
    ids = seed(rem)
    a3 = rem.find_one(Article, ids["a3"], populate=["tags"])
    z = rem.find_one(Tag, ids["z"])
    a3.tags.add(z)
    bad = Article(title=None)  # type: ignore[arg-type]  # NOT NULL: the flush fails
    rem.persist(bad)
    with pytest.raises(ValidationError):
        rem.flush()
    rem.remove(bad)
    rem.flush()
    assert (ids["a3"], ids["z"]) in pairs(rel)


def test_self_referencing(rel, rem):
    ann, bob, cyd = Person(name="ann"), Person(name="bob"), Person(name="cyd")
    ann.friends.add(bob, cyd)
    cyd.friends.add(ann)
    assert list(bob.friend_of) == [ann] and sorted(p.name for p in ann.friend_of) == ["cyd"]
    rem.persist([ann, bob, cyd]).flush()
    columns = "person_1_id, person_2_id"
    assert pairs(rel, "person_friends", columns) == sorted(
        [(ann.id, bob.id), (ann.id, cyd.id), (cyd.id, ann.id)]
    )
    rem.clear()
    people = rem.find(Person, {}, populate=["friends", "friend_of"], order_by={"id": "asc"})
    ann, bob, cyd = people
    assert sorted(p.name for p in ann.friends) == ["bob", "cyd"]
    assert [p.name for p in ann.friend_of] == ["cyd"] and bob.friends.count() == 0
    bob.friend_of.remove(ann)
    ann.friends.add(ann)  # oneself
    rem.flush()
    assert pairs(rel, "person_friends", columns) == sorted(
        [(ann.id, ann.id), (ann.id, cyd.id), (cyd.id, ann.id)]
    )
    assert ann in ann.friend_of


# -- populate -------------------------------------------------------------------------------
def test_populate_one_query_per_level_joining_the_pivot(rem, log):
    ids = seed(rem)
    y = rem.find_one(Tag, ids["y"], populate=["readers"])
    y.readers.add(Reader(name="r1"), Reader(name="r2"))
    rem.flush()
    rem.clear()
    log.clear()
    articles = rem.find(Article, {}, populate=["tags.readers"], order_by={"id": "asc"})
    assert len(queries(log)) == 3  # articles, tags, readers
    assert "join" in queries(log)[1] and "article_tags" in queries(log)[1]
    a1, a2, a3 = articles
    assert a3.tags.is_initialized() and a3.tags.count() == 0
    shared = [t for t in a1.tags if t.label == "y"][0]
    assert a2.tags.get_items() == [shared]  # one instance per row
    assert sorted(r.name for r in shared.readers) == ["r1", "r2"]
    rem.clear()
    log.clear()
    tags = rem.find(Tag, {}, order_by={"id": "asc"})
    rem.populate(tags, ["articles"])  # the inverse side
    assert len(queries(log)) == 2
    x, y, z = sorted(tags, key=lambda t: t.label)
    assert [a.title for a in x.articles] == ["a1"] and z.articles.count() == 0
    assert sorted(a.title for a in y.articles) == ["a1", "a2"]
    rem.clear()
    log.clear()
    rem.find(Tag, {}, populate=["*"])
    assert len(queries(log)) >= 3


def test_a_tag_shared_by_articles_is_created_and_loaded_once(rel):
    """Populate reads a shared tag once per pivot row (y is a1's and a2's): its on_init
    and on_load hooks still fire once, as for any query."""
    events = []

    class Loads(EventSubscriber):
        def get_subscribed_entities(self) -> list:
            return [Tag]

        def on_init(self, args: EventArgs) -> None:
            events.append(("on_init", args.entity.label))

        def on_load(self, args: EventArgs) -> None:
            events.append(("on_load", args.entity.label))

    ids = seed(rel.em.fork())
    rel.em.get_event_manager().register_subscriber(Loads())
    reader = rel.em.fork()
    reader.find(Article, {}, populate=["tags"])
    assert sorted(events) == [
        ("on_init", "x"), ("on_init", "y"), ("on_load", "x"), ("on_load", "y")
    ]
    events.clear()
    reader.find(Tag, {"id": ids["y"]})
    reader.populate(reader.find(Article, {}), ["tags"])
    assert events == [], "tags already loaded are returned untouched"


def test_populate_chunks_under_the_variable_limit(rem, log, database):
    tag = Tag(label="t")
    rem.persist([Article(title=f"a{i}", tags=[tag]) for i in range(30)]).flush()
    rem.clear()
    articles = rem.find(Article, {})
    rem.connection.max_variables = 7
    log.clear()
    rem.populate(articles, ["tags"])
    if database == "postgresql":  # the keys are one array parameter, whatever their count
        assert len(queries(log)) == 1 and "= any(" in queries(log)[0]
    else:
        assert len(queries(log)) == 5  # ceil(30 / 7)
    assert all(a.tags.count() == 1 for a in articles)
    assert len({id(a.tags.get_items()[0]) for a in articles}) == 1


def test_populate_keeps_changes_not_yet_flushed(rel, log):
    em = rel.em.fork(flush_mode=FlushMode.COMMIT)
    ids = seed(em)
    a1 = em.find_one(Article, ids["a1"])
    z = em.find_one(Tag, ids["z"], populate=["articles"])
    x = em.find_one(Tag, ids["x"])
    z.articles.add(a1)  # a1.tags is not loaded: it keeps the change
    x.articles.load()
    x.articles.remove(a1)
    em.populate([a1], ["tags"])
    assert sorted(t.label for t in a1.tags) == ["y", "z"]
    em.populate([z], ["articles"])
    assert list(z.articles) == [a1]
    em.flush()
    assert sorted(p for p in pairs(rel) if p[0] == ids["a1"]) == sorted(
        [(ids["a1"], ids["y"]), (ids["a1"], ids["z"])]
    )


def test_unknown_populate_path(rem):
    with pytest.raises(ValidationError, match=r"Article\.tags\.nope.*relations of Tag"):
        rem.find(Article, {}, populate=["tags.nope"])


# -- filters ----------------------------------------------------------------------------------
def test_filter_across_a_many_to_many(rem):
    ids = seed(rem)

    def titles(where):
        return sorted(a.title for a in rem.find(Article, where))

    assert titles({"tags": {"label": {"$in": ["x", "y"]}}}) == ["a1", "a2"]
    assert titles({"tags": {"label": "x"}}) == ["a1"]
    assert titles({"tags": {"label": "nope"}}) == []
    assert titles({"$not": {"tags": {"id": {"$gt": 0}}}}) == ["a3"]
    y = rem.find_one(Tag, ids["y"])
    assert titles({"tags": y}) == ["a1", "a2"]
    assert titles({"tags": ids["x"]}) == ["a1"]
    assert titles({"tags": [ids["x"], y]}) == ["a1", "a2"]
    found = rem.find(Tag, {"articles": {"title": "a2"}})  # the inverse side
    assert [t.label for t in found] == ["y"]
    with pytest.raises(ValidationError, match=r"Tag has no property 'nope'"):
        rem.find(Article, {"tags": {"nope": 1}})
    with pytest.raises(ValidationError, match=r"Invalid value for \$eq on Article\.tags"):
        rem.find(Article, {"tags": Reader(name="r")})


def test_filter_a_many_to_many_by_its_items_with_in(rem):
    ids = seed(rem)
    x = rem.find_one(Tag, ids["x"])
    titles = lambda where: sorted(a.title for a in rem.find(Article, where))  # noqa: E731
    assert titles({"tags": {"$in": [ids["x"], ids["y"]]}}) == ["a1", "a2"]
    assert titles({"tags": {"$in": [x]}}) == ["a1"]
    assert titles({"tags": {"$in": []}}) == []
    assert titles({"$not": {"tags": {"$in": [ids["y"]]}}}) == ["a3"]
    assert [t.label for t in rem.find(Tag, {"articles": {"$in": [ids["a2"]]}})] == ["y"]


def test_auto_flush_before_a_query_across_the_pivot(rem):
    ids = seed(rem)
    a3 = rem.find_one(Article, ids["a3"], populate=["tags"])
    a3.tags.add(rem.find_one(Tag, ids["z"]))
    assert [a.title for a in rem.find(Article, {"tags": {"label": "z"}})] == ["a3"]
    # a tag renamed and not flushed: a filter through the collection reads its table
    rem.find_one(Tag, ids["z"]).label = "zz"
    assert [a.title for a in rem.find(Article, {"tags": {"label": "zz"}})] == ["a3"]
    assert rem.count(Article, {"tags": {"label": {"$in": ["zz"]}}}) == 1


# -- serialization ----------------------------------------------------------------------------
def test_to_object(rem):
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"])
    assert "tags" not in wrap(a1).to_object()
    rem.populate([a1], ["tags.articles"])
    shown = wrap(a1).to_object()
    assert sorted(t["label"] for t in shown["tags"]) == ["x", "y"]
    y = next(t for t in shown["tags"] if t["label"] == "y")
    # the cycle back to a1 is its key; a2 is nested
    assert ids["a1"] in y["articles"]
    assert [a["title"] for a in y["articles"] if isinstance(a, dict)] == ["a2"]
    assert "readers" not in y  # not populated


def test_assigning_a_collection_property_sets_its_items(rel, rem):
    """`article.tags = [...]` (a SQLAlchemy habit) is `article.tags.set([...])`: the property
    stays the tracked Collection, the other side follows, the flush writes the pairs, and
    the EntityManager keeps working (it used to hold a plain list that broke every flush)."""
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    a2 = rem.find_one(Article, ids["a2"])
    x, z = rem.find_one(Tag, ids["x"]), rem.find_one(Tag, ids["z"], populate=["articles"])
    tags = a1.tags
    a1.tags = [z, x]
    assert a1.tags is tags and sorted(t.label for t in a1.tags) == ["x", "z"]
    assert a1 in z.articles
    a1.tags = a1.tags  # assigning itself changes nothing
    a2.title = "a2!"  # an unrelated change, written by the same flush
    rem.flush()
    assert pairs(rel) == sorted([
        (ids["a1"], ids["x"]), (ids["a1"], ids["z"]), (ids["a2"], ids["y"]),
    ])
    a1.tags = ()
    z.articles = (a for a in [a1])  # any iterable, from either side
    rem.flush()
    assert pairs(rel) == sorted([(ids["a1"], ids["z"]), (ids["a2"], ids["y"])])
    assert rows(rel, "select title from article where id = ?", (ids["a2"],)) == [("a2!",)]


@pytest.mark.parametrize("value", [None, "xy", 3, "tag"])
def test_assigning_a_collection_property_something_else_is_refused(rem, value):
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    a1.title = "a1!"
    tags = a1.tags
    if value == "tag":
        value = rem.find_one(Tag, ids["z"])  # one entity, not a list of them
    with pytest.raises(ValidationError, match=r"Article\.tags is a collection: give it an "
                       r"iterable of Tag entities \(a list; \[\] to empty it\), got .* "
                       r"Nothing was changed\.") as info:
        a1.tags = value
    assert info.value.property == "tags"
    with pytest.raises(ValidationError, match=r"Article\.tags is a collection"):
        a1.tags.set(value)
    assert a1.tags is tags and sorted(t.label for t in a1.tags) == ["x", "y"]
    rem.flush()  # the EntityManager still works: the other change is written
    rem.clear()
    assert rem.find_one(Article, ids["a1"]).title == "a1!"


@pytest.mark.parametrize("value", ["one tag", [None], "xy", ["tag", None]])
def test_the_constructor_refuses_what_is_not_a_list_of_entities(value):
    """Never a bare TypeError, and a None item is not silently dropped."""
    tag = Tag(label="t")
    if value == "one tag":
        value = tag
    elif isinstance(value, list):
        value = [tag if v == "tag" else v for v in value]
    with pytest.raises(ValidationError, match=r"Article\.tags (is a collection|holds Tag "
                                              r"entities, got NoneType)"):
        Article(title="a", tags=value)
    assert list(tag.articles) == []


def test_truth_of_a_collection_is_whether_it_holds_items(rem):
    ids = seed(rem)
    a1, a3 = (rem.find_one(Article, ids[t]) for t in ("a1", "a3"))
    with pytest.raises(ValidationError, match=r"Article\.tags is not initialized"):
        bool(a1.tags)  # never a guess, never a hidden query
    rem.populate([a1, a3], ["tags"])
    assert a1.tags and not a3.tags
    assert not Article(title="new").tags


def test_removing_an_item_of_another_class_is_refused(rem):
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    x = rem.find_one(Tag, ids["x"])
    with pytest.raises(ValidationError, match=r"Article\.tags holds Tag entities, got Article"):
        a1.tags.remove(x, a1)  # checked before anything changes
    assert x in a1.tags


def test_refresh_discards_pending_pairs_and_reloads_loaded_collections(rel, rem, log):
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    a2 = rem.find_one(Article, ids["a2"])  # tags not loaded: a change through the other side
    z = rem.find_one(Tag, ids["z"], populate=["articles"])
    tags = a1.tags
    a1.tags.set([z])
    z.articles.add(a2)
    a1.title = "changed"
    # a2 first: reading a1's tags again is a query across the pivot, which (FlushMode.AUTO)
    # flushes the pending pairs of others first
    assert rem.refresh(a2) is a2 and rem.refresh(a1) is a1
    assert a1.title == "a1" and a1.tags is tags
    assert sorted(t.label for t in a1.tags) == ["x", "y"]  # read again: it was loaded
    assert not a2.tags.is_initialized()
    log.clear()
    rem.flush()
    assert writes(log) == []
    assert pairs(rel) == sorted([
        (ids["a1"], ids["x"]), (ids["a1"], ids["y"]), (ids["a2"], ids["y"]),
    ])


def test_compute_change_sets_lists_the_pairs_a_flush_would_write(rel, rem, log):
    """Under the owning collection's name in the owner's change set, whichever side was
    changed, loaded or not; nothing written by asking; exactly what the flush then writes."""
    ids = seed(rem)
    a1, a2, a3 = (rem.find_one(Article, ids[t]) for t in ("a1", "a2", "a3"))
    x, y, z = (rem.find_one(Tag, ids[label]) for label in "xyz")
    rem.populate([a1], ["tags"])
    rem.populate([z], ["articles"])
    a1.tags.remove(x)
    a1.tags.add(z)
    a1.title = "a1!"
    z.articles.add(a3)  # through the inverse side: a3.tags is not loaded
    new = Article(title="a4", tags=[y, z])
    rem.persist(new)
    uow = rem.get_unit_of_work()
    log.clear()
    sets = {(cs.type, cs.entity.title): cs.payload for cs in uow.compute_change_sets()}
    assert writes(log) == []
    assert sets[("update", "a1!")] == {
        "title": "a1!", "tags": {"added": [z], "removed": [x]},
    }
    assert sets[("update", "a3")] == {"tags": {"added": [z], "removed": []}}
    assert sets[("create", "a4")]["tags"] == {"added": [y, z], "removed": []}
    assert ("update", "a2") not in sets

    rem.remove(a1)  # its pairs go with its row: nothing of its collection is listed
    sets = {(cs.type, cs.entity.title): cs.payload for cs in uow.compute_change_sets()}
    assert sets[("delete", "a1!")] == {}
    assert ("update", "a1!") not in sets
    rem.flush()
    assert pairs(rel) == sorted([
        (ids["a2"], ids["y"]), (ids["a3"], ids["z"]), (new.id, ids["y"]), (new.id, ids["z"]),
    ])
    assert uow.compute_change_sets() == []


# -- numbers ----------------------------------------------------------------------------------
def test_statements_for_one_tag_changed_on_a_tenth_of_a_thousand_articles(rel, rem, log):
    old, new = Tag(label="old"), Tag(label="new")
    articles = [Article(title=f"a{i}", tags=[old]) for i in range(1000)]
    rem.persist(articles).persist(new).flush()
    articles = rem.find(Article, {}, populate=["tags"], order_by={"id": "asc"})
    old = rem.find_one(Tag, {"label": "old"})
    new = rem.find_one(Tag, {"label": "new"})
    log.clear()
    for article in articles[::10]:
        article.tags.remove(old)
        article.tags.add(new)
    rem.flush()
    statements = writes(log)
    # one delete and one insert (100 rows each, under the variable limit of both databases)
    assert [s.split(" ", 1)[0] for s in statements] == ["delete", "insert"]
    assert rows(rel, "select count(*) from article_tags where tag_id = ?", [new.id]) == [(100,)]
    assert rows(rel, "select count(*) from article_tags", []) == [(1000,)]
    log.clear()
    rem.flush()
    assert queries(log) == []


# -- with event handlers ----------------------------------------------------------------------
def test_flush_with_event_handlers_writes_the_pivot(connect):
    """A flush that fires events takes another path (orm.unit_of_work.lifecycle); the pairs
    are written there too, and a failing after_flush handler leaves them pending."""
    from orm import EventSubscriber

    seen: list[int] = []
    failing: list[bool] = []

    class Watcher(EventSubscriber):
        def after_flush(self, args):
            seen.append(1)
            if failing:
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Watcher()])
    em = orm.em.fork()
    ids = seed(em)
    a3 = em.find_one(Article, ids["a3"], populate=["tags"])
    a3.tags.add(em.find_one(Tag, ids["z"]))
    failing.append(True)
    with pytest.raises(RuntimeError, match="after_flush failed"):
        em.flush()
    assert (ids["a3"], ids["z"]) not in pairs(orm)
    failing.clear()
    em.flush()
    assert (ids["a3"], ids["z"]) in pairs(orm)
    assert seen


def test_populate_of_the_inverse_side_keeps_new_owners(rel):
    em = rel.em.fork(flush_mode=FlushMode.COMMIT)
    ids = seed(em)
    y = em.find_one(Tag, ids["y"], populate=["articles"])
    made = Article(title="made", tags=[y])  # persisted below, not flushed
    em.persist(made)
    added = Article(title="added")
    y.articles.add(added)  # persisted by cascade
    em.populate([y], ["articles"])
    assert sorted(a.title for a in y.articles) == ["a1", "a2", "added", "made"]
    em.flush()
    assert len([p for p in pairs(rel) if p[1] == ids["y"]]) == 4


def test_uuid_keys_on_both_ends(connect):
    @entity()
    class Doc:
        id: uuid.UUID = PrimaryKey(default_factory=uuid.uuid4)
        name: str
        labels: Collection[Label] = ManyToMany(inversed_by="docs")

    @entity()
    class Label:
        id: uuid.UUID = PrimaryKey(default_factory=uuid.uuid4)
        text: str
        docs: Collection[Doc] = ManyToMany(mapped_by="labels")

    orm = connect([Doc, Label])
    em = orm.em.fork()
    red, blue = Label(text="red"), Label(text="blue")
    d1, d2 = Doc(name="d1", labels=[red, blue]), Doc(name="d2", labels=[blue])
    em.persist([d1, d2]).flush()
    em.clear()
    docs = em.find(Doc, {}, populate=["labels"])
    shown = {d.name: sorted(lb.text for lb in d.labels) for d in docs}
    assert shown == {"d1": ["blue", "red"], "d2": ["blue"]}
    blue = em.find_one(Label, {"text": "blue"}, populate=["docs"])
    assert sorted(d.name for d in blue.docs) == ["d1", "d2"]
    blue.docs.remove(next(d for d in docs if d.name == "d1"))
    em.flush()
    assert [d.name for d in em.find(Doc, {"labels": blue})] == ["d2"]
    assert [d.name for d in em.find(Doc, {"labels": {"text": "red"}})] == ["d1"]
    assert rows(orm, "select count(*) from doc_labels") == [(2,)]


def test_self_reference_without_an_inverse_side_and_set(connect):
    @entity()
    class Node:
        id: int = PrimaryKey()
        name: str
        links: Collection[Node] = ManyToMany()

    orm = connect([Node])
    em = orm.em.fork()
    a, b, c = Node(name="a"), Node(name="b"), Node(name="c")
    a.links.add(b, c)
    b.links.add(a)
    em.persist([a, b, c]).flush()
    sql = "select node_1_id, node_2_id from node_links"
    assert sorted(rows(orm, sql)) == sorted([(a.id, b.id), (a.id, c.id), (b.id, a.id)])
    a.links.set([c, a])  # b out, a in, c kept
    em.flush()
    assert sorted(rows(orm, sql)) == sorted([(a.id, c.id), (a.id, a.id), (b.id, a.id)])
    em.remove(c)
    em.flush()
    assert sorted(n.name for n in a.links) == ["a"]
    assert sorted(rows(orm, sql)) == sorted([(a.id, a.id), (b.id, a.id)])


def test_pending_pairs_of_removed_entities_are_not_written(rel, rem, log):
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    a2 = rem.find_one(Article, ids["a2"], populate=["tags"])
    a3 = rem.find_one(Article, ids["a3"], populate=["tags"])
    z = rem.find_one(Tag, ids["z"])
    gone = Tag(label="gone")
    a3.tags.add(gone, z)
    rem.flush()
    a1.tags.add(z)  # pending, and a1 is removed in the same flush: its pairs go with it
    a2.tags.add(gone)  # pending, and gone is removed in the same flush
    a3.tags.remove(z)
    rem.remove(a1)
    rem.remove(gone)
    log.clear()
    rem.flush()
    assert not [w for w in writes(log) if w.startswith("insert")]
    assert pairs(rel) == [(ids["a2"], ids["y"])]
    assert a3.tags.count() == 0 and [t.label for t in a2.tags] == ["y"]
    log.clear()
    rem.flush()
    assert queries(log) == []


def test_filling_a_many_to_many_before_discovery_says_to_init_first():
    """Before ORM.init() neither side of a many-to-many is known: filling one is a
    ValidationError saying so (it was a bare TypeError), on either side."""

    @entity()
    class Draft:
        id: int = PrimaryKey()
        labels: Collection[Label] = ManyToMany(inversed_by="drafts")

    @entity()
    class Label:
        id: int = PrimaryKey()
        drafts: Collection[Draft] = ManyToMany(mapped_by="labels")

    with pytest.raises(ValidationError, match=r"Draft\.labels is a ManyToMany, .*after ORM\.init"):
        Draft(labels=[Label()])
    with pytest.raises(ValidationError, match=r"Label\.drafts is a ManyToMany, .*after ORM\.init"):
        Label(drafts=[Draft()])


# -- a new graph: constructor-filled collections, plain inserts, arrays ----------------------


def test_constructor_checks_every_item_before_changing_anything(rem):
    x = Tag(label="x")
    with pytest.raises(ValidationError, match=r"Article\.tags holds Tag entities, got Reader"):
        Article(title="a", tags=[x, Reader(name="r")])
    assert x.articles.count() == 0  # the half-built article never reached the inverse side


def test_constructor_items_removed_before_the_flush_are_not_written(rel, rem):
    x, y = Tag(label="x"), Tag(label="y")
    a = Article(title="a", tags=[x, y, x])  # an item given twice is held once
    assert list(a.tags) == [x, y] and not a.tags.is_dirty()
    a.tags.remove(x)
    a.tags.add(Tag(label="z"))
    rem.persist(a).flush()
    assert memory_pairs([a]) == pairs(rel) and len(pairs(rel)) == 2
    assert x.articles.count() == 0 and a in y.articles


def test_pairs_of_new_owners_are_plain_inserts_and_of_stored_ones_skip_stored_pairs(
    rel, rem, log
):
    ids = seed(rem)
    z = rem.find_one(Tag, ids["z"], populate=["articles"])
    a3 = rem.find_one(Article, ids["a3"])  # its collection is never loaded
    z.articles.add(a3)  # so the pair may be stored already, for all it knows
    made = Article(title="made", tags=[z])
    rem.persist(made)
    log.clear()
    rem.flush()
    pivot = [s for s in writes(log) if s.startswith("insert into") and "article_tags" in s]
    assert len(pivot) == 2
    assert sum("on conflict do nothing" in s for s in pivot) == 1  # a3's pair may be stored
    assert (ids["a3"], ids["z"]) in pairs(rel) and (made.id, ids["z"]) in pairs(rel)


@pytest.mark.parametrize(
    "n, sizes",
    [
        (PIVOT_INSERT_CHUNK - 1, [PIVOT_CHUNK] * 3 + [PIVOT_CHUNK - 1]),
        (PIVOT_INSERT_CHUNK, [PIVOT_INSERT_CHUNK]),
        (2 * PIVOT_INSERT_CHUNK + PIVOT_CHUNK + 1, [PIVOT_INSERT_CHUNK] * 2 + [PIVOT_CHUNK, 1]),
    ],
)
def test_pivot_inserts_in_statements_of_few_sizes(rel, rem, log, database, n, sizes):
    """On SQLite, pairs go in statements of PIVOT_INSERT_CHUNK pairs while that many are
    left (fewer, larger statements: measured faster), then of PIVOT_CHUNK, then the rest;
    every pair is written, those of new owners and of stored ones alike."""
    assert PIVOT_INSERT_CHUNK % PIVOT_CHUNK == 0 and 3 * PIVOT_CHUNK < PIVOT_INSERT_CHUNK
    tag, other = Tag(label="t"), Tag(label="u")
    articles = [Article(title=f"a{i}", tags=[tag]) for i in range(n)]
    log.clear()
    rem.persist([*articles, other]).flush()
    for a in articles:  # stored owners: their pairs may be stored already
        a.tags.add(other)
    rem.flush()
    inserts = [m for m in writes(log) if m.startswith("insert") and "article_tags" in m]
    if database == "sqlite":
        assert [m.count("), (") + 1 for m in inserts] == sizes * 2
        assert all("on conflict do nothing" in m for m in inserts[len(sizes):])
    else:  # two arrays, one statement per flush
        assert len(inserts) == 2
    assert pairs(rel) == sorted((a.id, t.id) for a in articles for t in (tag, other))


def test_pivot_chunk_sizes_keep_under_the_variable_limit():
    assert _chunk_sizes(0, 2000, 500, 16383) == []
    assert _chunk_sizes(4501, 2000, 500, 16383) == [2000, 2000, 500, 1]
    assert _chunk_sizes(1200, 2000, 500, 499) == [499, 499, 202]  # SQLite before 3.32
    assert _chunk_sizes(7, 2000, 500, 3) == [3, 3, 1]


def test_pivot_writes_are_one_statement_of_two_arrays_on_postgresql(rel, rem, log, database):
    tags = [Tag(label=f"t{j}") for j in range(3)]
    articles = [Article(title=f"a{i}", tags=tags) for i in range(400)]  # 1,200 pairs
    rem.persist(articles).flush()
    statements = [s for s in writes(log) if "article_tags" in s]
    assert len(statements) == (1 if database == "postgresql" else 3)  # SQLite: 500 a statement
    assert len(pairs(rel)) == 1200
    log.clear()
    for article in articles[:300]:
        article.tags.remove(tags[0])
        article.tags.add(Tag(label=f"n{article.title}"))
    rem.flush()
    statements = [s.split(" ", 1)[0] for s in writes(log) if "article_tags" in s]
    assert statements == ["delete", "insert"]
    assert len(pairs(rel)) == 1200 and memory_pairs(articles) == pairs(rel)


def test_rolled_back_pairs_of_a_new_owner_are_pending_again(rel, rem):
    x, y = Tag(label="x"), Tag(label="y")
    rem.persist([x, y]).flush()
    a = Article(title="a", tags=[x])
    with pytest.raises(RuntimeError):
        with rem.transaction():
            rem.persist(a)
            rem.flush()  # a savepoint: its undo runs at the rollback
            a.tags.add(y)  # after that flush: a change of a stored owner
            raise RuntimeError("abort")
    assert pairs(rel) == [] and a.tags.is_dirty()
    rem.flush()  # the owner and every pair it holds now, none twice
    assert pairs(rel) == sorted([(a.id, x.id), (a.id, y.id)])


def test_constructor_takes_any_iterable_and_still_refuses_a_wrong_item(rel, rem):
    r1, r2 = Reader(name="r1"), Reader(name="r2")
    tag = Tag(label="t", readers=(r for r in [r1, r2]))  # no inverse side: the core's case
    assert list(tag.readers) == [r1, r2]
    with pytest.raises(ValidationError, match=r"Tag\.readers holds Reader entities, got Tag"):
        Tag(label="u", readers=(r for r in [r1, Tag(label="v")]))
    rem.persist(tag).flush()
    assert len(pairs(rel, "tag_readers", "tag_id, reader_id")) == 2


def test_a_pickled_or_copied_new_owner_writes_its_constructor_pairs(rel, rem):
    import copy
    import pickle

    x, y = Tag(label="x"), Tag(label="y")
    rem.persist([x, y]).flush()
    rem.clear()
    made = Article(title="a", tags=[Tag(label="n1"), Tag(label="n2")])
    clones = [pickle.loads(pickle.dumps(made)), copy.deepcopy(made)]
    rem.persist(clones).flush()
    assert len(pairs(rel)) == 4 and memory_pairs(clones) == pairs(rel)
    clones[0].tags.remove(clones[0].tags.get_items()[0])
    rem.flush()
    assert len(pairs(rel)) == 3 and memory_pairs(clones) == pairs(rel)


def test_a_shallow_copy_gets_its_own_collections_and_writes_its_pairs_as_new(rel, rem):
    """`copy.copy` used to share the original's Collection objects: a tag added to the
    copy was written as the original's pair, and the copy, inserted, got none."""
    import copy

    ids = seed(rem)
    a1 = rem.find_one_or_fail(Article, ids["a1"], populate=["tags"])
    z = rem.find_one_or_fail(Tag, ids["z"])
    clone = copy.copy(a1)
    assert clone.tags is not a1.tags and clone.tags.owner is clone
    assert list(clone.tags) == list(a1.tags)
    clone.id = None
    clone.title = "a copy"
    clone.tags.add(z)
    assert [t.label for t in a1.tags] == ["x", "y"]  # the original is untouched
    rem.persist(clone).flush()
    assert pairs(rel) == sorted([
        (ids["a1"], ids["x"]), (ids["a1"], ids["y"]), (ids["a2"], ids["y"]),
        (clone.id, ids["x"]), (clone.id, ids["y"]), (clone.id, ids["z"]),
    ])
    # an uninitialized collection is copied uninitialized, still the copy's own
    a2 = rem.find_one_or_fail(Article, ids["a2"])
    other = copy.copy(a2)
    assert other.tags is not a2.tags and other.tags.owner is other
    assert not other.tags.is_initialized()


def test_a_new_owner_writes_all_its_items_whatever_its_collection_recorded(rel, rem):
    """An owner inserted by the flush has no stored pairs: a collection that recorded
    changes as a loaded one does (here a copy of a loaded article with a tag added, given a
    new key) still has each of its items written, not only the recorded ones."""
    import copy

    ids = seed(rem)
    a1 = rem.find_one_or_fail(Article, ids["a1"], populate=["tags"])
    z = rem.find_one_or_fail(Tag, ids["z"])
    a1.tags.add(z)  # recorded: z added to a stored owner
    clone = copy.copy(a1)
    clone.id = None
    rem.persist(clone).flush()
    assert [p for p in pairs(rel) if p[0] == clone.id] == sorted(
        (clone.id, ids[label]) for label in ("x", "y", "z")
    )
    assert (ids["a1"], ids["z"]) in pairs(rel)  # the original's own change, written too


def test_a_persisted_copy_joins_the_inverse_sides_of_the_items_it_writes_pairs_for(rel, rem):
    """The pairs of a copy of a loaded article, inserted with a key of its own, are all its
    tags: the loaded inverse sides of those tags list it then, as they list an article
    built with them, else a change made through them is computed without it (here
    `x.articles.set([a1])` left the copy's pair to x in the table)."""
    import copy

    ids = seed(rem)
    a1 = rem.find_one_or_fail(Article, ids["a1"], populate=["tags"])
    x = rem.find_one_or_fail(Tag, ids["x"], populate=["articles"])
    clone = copy.copy(a1)
    assert [a.title for a in x.articles] == ["a1"]  # a copy changes nothing by itself
    clone.id = None
    clone.title = "a copy"
    rem.persist(clone).flush()
    assert [a.title for a in x.articles] == ["a1", "a copy"]
    x.articles.set([a1])
    rem.flush()
    assert [p for p in pairs(rel) if p[1] == ids["x"]] == [(ids["a1"], ids["x"])]
    assert memory_pairs([a1, clone]) == [p for p in pairs(rel) if p[0] in (a1.id, clone.id)]
    # whatever the original's collection recorded: a new article's (built with its tags, or
    # given them by add()), a loaded one's tags all added since it was loaded
    a3 = rem.find_one_or_fail(Article, ids["a3"], populate=["tags"])
    a3.tags.add(x)
    built = Article(title="built", tags=[x])
    added = Article(title="added")
    added.tags.add(x)
    copies = [copy.copy(original) for original in (a3, built, added)]
    for made in copies:
        made.id = None
    rem.persist([built, added, *copies]).flush()
    assert all(made in x.articles for made in copies)
    x.articles.set([a1])
    rem.flush()
    assert [p for p in pairs(rel) if p[1] == ids["x"]] == [(ids["a1"], ids["x"])]


def test_pairs_of_owners_rolled_back_after_a_clear_are_written_when_persisted_again(rel, rem):
    x, y = Tag(label="x"), Tag(label="y")
    a = Article(title="a", tags=[x, y])  # constructor-filled
    b = Article(title="b")
    b.tags.add(x)  # a change record
    with pytest.raises(RuntimeError):
        with rem.transaction():
            rem.persist([a, b])
            rem.flush()
            rem.clear()  # lets go of a and b: the rollback cannot make them pending again
            raise RuntimeError("abort")
    assert pairs(rel) == [] and a.id is None and b.id is None
    rem.persist([a, b]).flush()
    assert len(pairs(rel)) == 3 and memory_pairs([a, b]) == pairs(rel)


def test_an_upserted_owner_writes_its_pairs_at_the_next_flush(rel, rem):
    x, y, z = Tag(label="x"), Tag(label="y"), Tag(label="z")
    rem.persist([x, y, z]).flush()
    rem.persist(Article(id=8, title="stored", tags=[z])).flush()
    rem.clear()
    x, y = rem.find_one(Tag, x.id), rem.find_one(Tag, y.id)
    rem.upsert(Article(id=7, title="a", tags=[x, y]))  # a new row
    rem.flush()
    assert pairs(rel) == sorted([(7, x.id), (7, y.id), (8, z.id)])
    rem.clear()
    x = rem.find_one(Tag, x.id)
    rem.upsert(Article(id=8, title="b", tags=[x]))  # the row exists: its pairs stay
    rem.flush()
    assert pairs(rel) == sorted([(7, x.id), (7, y.id), (8, x.id), (8, z.id)])


def test_a_collection_pickled_in_the_slot_state_format_is_keyed_again(rel):
    from orm.entity.collection import Collection as Held

    x = Tag(label="x")
    owner = Article(title="a")
    stale = 12345  # the id() x had in the process that pickled it
    state = (None, {"owner": owner, "prop": "tags", "_items": {stale: x}, "_dirty": True,
                    "_delta": {stale: (x, True)}})
    held = Held.__new__(Held)
    held.__setstate__(state)
    assert x in held and held._delta == {id(x): (x, True)} and held.is_dirty()
    held.remove(x)
    assert held.count() == 0 and held._delta == {}


def test_a_deleted_owner_persisted_again_writes_its_pairs(rel, rem):
    """`em.persist()` of an article whose row a flush deleted inserts it as a new row with
    its tags (its pivot rows went with the row); a deleted tag cannot be added."""
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    rem.remove(a1).flush()
    assert (ids["a1"], ids["x"]) not in pairs(rel)
    rem.persist(a1).flush()
    assert sorted(t for a, t in pairs(rel) if a == a1.id) == sorted([ids["x"], ids["y"]])
    assert rem.get_unit_of_work().compute_change_sets() == []
    z = rem.find_one(Tag, ids["z"])
    rem.remove(z).flush()
    with pytest.raises(ValidationError, match=r"Cannot add Tag .* to Article\.tags: its row "
                       r"was deleted by a flush"):
        a1.tags.add(z)
    rem.flush()
    assert rows(rel, f"select count(*) from tag where id = {ids['z']}") == [(0,)]
    # a new article built holding it: the flush says the row was deleted, not that the
    # tag is new
    rem.persist(Article(title="holds a deleted tag", tags=[z]))
    with pytest.raises(ValidationError, match=r"Article\.tags holds Tag .*, whose row was "
                       r"deleted by a flush: em\.persist\(\) it to insert it again"):
        rem.flush()
    assert rows(rel, "select count(*) from article where title = 'holds a deleted tag'") == [
        (0,)
    ]


def test_a_deleted_tag_persisted_again_writes_the_pairs_its_inverse_side_holds(rel, rem):
    """The inverse side of a deleted tag still lists its articles (what went with it);
    `em.persist()` of the tag inserts it as a new row with those links: the articles'
    owning collections take it back, so its pairs are written, as a deleted owner's are."""
    ids = seed(rem)
    y = rem.find_one(Tag, ids["y"], populate=["articles"])
    a1, a2 = rem.find(Article, {"id": {"$in": [ids["a1"], ids["a2"]]}}, populate=["tags"],
                      order_by={"id": "asc"})
    rem.remove(y).flush()
    assert y not in a1.tags and [a.title for a in y.articles] == ["a1", "a2"]
    rem.persist(y).flush()
    assert rows(rel, f"select label from tag where id = {y.id}") == [("y",)]
    assert sorted(a for a, t in pairs(rel) if t == y.id) == [ids["a1"], ids["a2"]]
    assert y in a1.tags and y in a2.tags
    assert rem.get_unit_of_work().compute_change_sets() == []


def test_create_and_assign_take_keys_in_a_collection(rel, rem, log):
    """`{"tags": [key, ...]}` in em.create / em.assign (as MikroORM allows): references to
    those rows, no query; a key of the wrong type names the target's key."""
    ids = seed(rem)
    log.clear()
    article = rem.create(Article, {"title": "keys", "tags": [ids["x"], ids["z"]]})
    assert queries(log) == []
    rem.flush()
    assert sorted(t for a, t in pairs(rel) if a == article.id) == sorted([ids["x"], ids["z"]])
    from_set = rem.create(Article, {"title": "set", "tags": {ids["y"]}})  # any iterable
    rem.flush()
    assert [t for a, t in pairs(rel) if a == from_set.id] == [ids["y"]]
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    rem.assign(a1, {"tags": [ids["z"]]})
    rem.flush()
    assert [t for a, t in pairs(rel) if a == ids["a1"]] == [ids["z"]]
    with pytest.raises(ValidationError, match=r"'abc' is not a valid primary key for Tag\.id"):
        rem.assign(a1, {"tags": ["abc"]})


def test_a_collection_filter_of_none_says_how_to_find_rows_with_none(rem):
    ids = seed(rem)
    with pytest.raises(
        ValidationError,
        match=r"The filter on Article\.tags \(a collection of Tag\) takes conditions on Tag.*"
        r"got None \(for Article rows with none: \{'\$not': \{'tags': \{'id': "
        r"\{'\$ne': None\}\}\}\}\)",
    ):
        rem.find(Article, {"tags": None})
    found = rem.find(Article, {"$not": {"tags": {"id": {"$ne": None}}}})
    assert [a.id for a in found] == [ids["a3"]]


def test_a_new_entity_brought_along_by_cascade_may_not_hold_a_removed_one(rel, rem):
    """`em.persist(Article(tags=[Tag(readers=[removed])]))`: the new tag comes along by
    Cascade.PERSIST, and the flush would drop its pair to the removed reader without a word.
    Refused as for the article's own collection, before anything joins; so is adding such a
    tag to a managed article. Removing after persisting still deletes (the last call)."""
    ids = seed(rem)
    r = Reader(name="r")
    rem.persist(r).flush()
    rem.remove(r)
    with pytest.raises(ValidationError, match=r"Cannot persist Tag .*: Tag\.readers holds "
                       r"Reader .*which is marked for removal"):
        rem.persist(Article(title="n", tags=[Tag(label="deep", readers=[r])]))
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    with pytest.raises(ValidationError, match=r"Tag\.readers holds Reader .*marked for removal"):
        a1.tags.add(Tag(label="deeper", readers=[r]))
    assert sorted(t.label for t in a1.tags) == ["x", "y"]
    rem.flush()
    assert rows(rel, "select count(*) from tag where label in ('deep', 'deeper')") == [(0,)]
    assert rows(rel, "select count(*) from reader") == [(0,)]
    # persisted first, removed after: the removal is the last word
    r2 = Reader(name="r2")
    rem.persist(r2).flush()
    rem.persist(Article(title="m", tags=[Tag(label="kept", readers=[r2])]))
    rem.remove(r2).flush()
    assert rows(rel, "select count(*) from tag where label = 'kept'") == [(1,)]
    assert rows(rel, "select count(*) from tag_readers") == [(0,)]


def test_a_removed_new_tag_leaves_the_collections_holding_it_and_is_never_inserted(rel, rem):
    """`em.remove()` of a new tag, after it was added to a managed article: the removal is
    the last word, as for a new post of a writer. The tag used to stay in `a1.tags`, whose
    flush persisted it again by cascade and wrote the pair."""
    ids = seed(rem)
    a1 = rem.find_one_or_fail(Article, ids["a1"], populate=["tags"])
    fresh = Article(title="fresh")
    tag = Tag(label="new")
    rem.persist([tag, fresh])
    a1.tags.add(tag)
    fresh.tags.add(tag)
    rem.remove(tag)
    assert tag not in a1.tags and tag not in fresh.tags
    rem.flush()
    assert rows(rel, "select count(*) from tag where label = 'new'") == [(0,)]
    assert pairs(rel) == sorted([(ids["a1"], ids["x"]), (ids["a1"], ids["y"]),
                                 (ids["a2"], ids["y"])])
    assert rows(rel, "select count(*) from article where title = 'fresh'") == [(1,)]


def test_persisting_what_is_managed_or_cancelled_in_the_same_call_is_not_refused(rel, rem):
    """`em.persist(article)` of a managed article whose tag was then marked for removal
    changes nothing (MikroORM code persists after every change): the pair was stored before
    the removal, which wins. A list that cancels the removals it depends on is kept whole."""
    ids = seed(rem)
    a1 = rem.find_one(Article, ids["a1"], populate=["tags"])
    x = next(t for t in a1.tags if t.label == "x")
    rem.remove(x)
    rem.persist(a1)
    rem.persist([a1])
    rem.flush()
    assert rows(rel, f"select count(*) from tag where id = {ids['x']}") == [(0,)]
    assert sorted(t for a, t in pairs(rel) if a == ids["a1"]) == [ids["y"]]
    y = next(t for t in a1.tags if t.label == "y")
    rem.remove(a1)
    rem.remove(y)
    fresh = Article(title="fresh", tags=[y])
    rem.persist([a1, fresh, y])  # every removal it depends on cancelled by the same call
    rem.flush()
    assert sorted(t for a, t in pairs(rel) if a in (ids["a1"], fresh.id)) == [ids["y"]] * 2


def test_articles_persisted_one_by_one_with_a_persisted_new_tag_do_not_read_each_other(
    rel, rem, monkeypatch
):
    """While an article is marked for removal, `em.persist(article)` of articles sharing a
    new tag the Unit of Work holds does not read the tag, nor through it the other
    articles: a loop of single persists reads nothing. (Not persisted, the tag comes along
    with each article, and so do its other new articles, each of which may hold a removed
    tag: `test_a_new_article_reached_only_back_through_a_shared_new_tag_is_checked`)."""
    from orm.metadata.discovery import MetadataStorage

    ids = seed(rem)
    rem.remove(rem.find_one_or_fail(Article, ids["a3"]))
    looked = []
    find = MetadataStorage.find
    monkeypatch.setattr(
        MetadataStorage, "find", lambda self, cls: looked.append(cls) or find(self, cls)
    )
    shared = Tag(label="shared")
    rem.persist(shared)
    articles = [Article(title=f"n{k}", tags=[shared]) for k in range(100)]
    for article in articles:
        rem.persist(article)
    assert looked == []
    monkeypatch.undo()
    rem.flush()
    assert len([p for p in pairs(rel) if p[1] == shared.id]) == 100


def test_a_new_article_reached_only_back_through_a_shared_new_tag_is_checked(rel, rem):
    """`em.persist(a)` brings the new tag `a` shares with `b`, and the flush's cascade
    brings `b` through the tag's `articles`: `b` holding a tag marked for removal is
    refused, not inserted with its pair to that tag dropped. (A walk skipping the tag's
    `articles` as `a`'s siblings let it through.)"""
    ids = seed(rem)
    x = rem.find_one_or_fail(Tag, ids["x"])
    rem.remove(x)
    shared = Tag(label="shared")
    a = Article(title="a", tags=[shared])
    b = Article(title="b", tags=[shared, x])
    with pytest.raises(ValidationError, match=r"Cannot persist Article .*'b'.*: Article\.tags "
                       r"holds Tag .*'x'.*which is marked for removal"):
        rem.persist(a)
    assert not rem.get_unit_of_work().is_new(a)
    b.tags.remove(x)
    rem.persist(a).flush()
    assert rows(rel, "select count(*) from article where title in ('a', 'b')") == [(2,)]
    assert rows(rel, f"select count(*) from tag where id = {ids['x']}") == [(0,)]


def test_a_held_new_tag_is_looked_through_for_new_articles_it_gained(rel, rem):
    """`em.persist(tag)` of a tag persisted before the removal is not refused for its own
    links, but the new article built with it after the removal (`Article(tags=[tag, x])`
    fills `tag.articles` without joining anything) comes along by cascade: refused."""
    ids = seed(rem)
    x = rem.find_one_or_fail(Tag, ids["x"])
    tag = Tag(label="held")
    rem.persist(tag)
    rem.remove(x)
    b = Article(title="b", tags=[tag, x])
    with pytest.raises(ValidationError, match=r"Cannot persist Article .*'b'.*: Article\.tags "
                       r"holds Tag .*'x'.*which is marked for removal"):
        rem.persist(tag)
    b.tags.remove(x)
    rem.persist(tag).flush()
    assert sorted(t for a, t in pairs(rel) if a == b.id) == [tag.id]


def test_a_refused_set_or_create_changes_nothing(rel, rem):
    """`set()` (and so `em.assign`) checks every item before it takes any out; `em.create`
    checks before the entity exists; a new article built with a removed tag is refused
    before it joins anything."""
    ids = seed(rem)
    reader = rel.em.fork(flush_mode="commit")
    a1 = reader.find_one(Article, ids["a1"], populate=["tags"])
    z = reader.find_one(Tag, ids["z"])
    reader.remove(z)
    for change in (lambda: a1.tags.set([z]), lambda: reader.assign(a1, {"tags": [ids["z"]]})):
        with pytest.raises(ValidationError, match=r"it is marked for removal"):
            change()
        assert sorted(t.label for t in a1.tags) == ["x", "y"]
    with pytest.raises(ValidationError, match=r"Cannot create Article: Article\.tags holds Tag "
                       r".*which is marked for removal"):
        reader.create(Article, {"title": "new", "tags": [z]})
    reader.flush()
    assert sorted(t for a, t in pairs(rel) if a == ids["a1"]) == sorted([ids["x"], ids["y"]])
    assert rows(rel, "select count(*) from article where title = 'new'") == [(0,)]



def test_a_shallow_copy_of_a_tag_lists_no_articles(rel, rem):
    """The inverse side of a copy holds what points at the copy: no article's `tags` holds
    it, so its `articles` is empty (listing the original's would let a change through the
    copy rewrite the original's pairs)."""
    import copy

    ids = seed(rem)
    y = rem.find_one_or_fail(Tag, ids["y"], populate=["articles"])
    clone = copy.copy(y)
    assert clone.articles is not y.articles and list(clone.articles) == []
    assert sorted(a.title for a in y.articles) == ["a1", "a2"]
    clone.id = None
    clone.label = "y2"
    rem.persist(clone).flush()
    assert sorted(p for p in pairs(rel) if p[1] == ids["y"]) == [
        (ids["a1"], ids["y"]), (ids["a2"], ids["y"])
    ]
    assert [p for p in pairs(rel) if p[1] == clone.id] == []


def test_a_new_article_holding_a_managed_tag_is_persisted_by_the_next_flush(rel, rem):
    """As a post built with a managed writer joins the writer's EntityManager, an article
    built with (or given) a managed tag is persisted by the next flush, Cascade.PERSIST
    from `Tag.articles`, loaded or not: it used to be left out without a word. One that
    lets go of the tag again, or is given to `em.remove()`, is not; nor after `em.clear()`."""
    ids = seed(rem)
    z = rem.find_one_or_fail(Tag, ids["z"])  # z.articles not loaded
    built = Article(title="built", tags=[z])
    given = Article(title="given")
    given.tags.add(z)
    let_go = Article(title="let go", tags=[z])
    let_go.tags.remove(z)
    removed = Article(title="removed", tags=[z])
    rem.remove(removed)
    loaded_z = rem.find_one_or_fail(Tag, ids["x"], populate=["articles"])
    dropped = Article(title="dropped", tags=[loaded_z])
    assert dropped in loaded_z.articles
    rem.remove(dropped)  # it leaves the loaded inverse side too
    assert dropped not in loaded_z.articles
    # a query of articles (FlushMode.AUTO) flushes them first
    assert sorted(a.title for a in rem.find(Article, {"title": {"$in": ["built", "given"]}})) == [
        "built", "given"
    ]
    assert built.id is not None and given.id is not None
    assert sorted(a for a, t in pairs(rel) if t == ids["z"]) == sorted([built.id, given.id])
    assert rows(rel, "select count(*) from article where title in ('let go', 'removed')") == [
        (0,)
    ]
    forgotten = Article(title="forgotten", tags=[z])
    rem.clear()
    rem.flush()
    assert forgotten.id is None
    assert rows(rel, "select count(*) from article where title = 'forgotten'") == [(0,)]


def test_a_new_article_persisted_by_the_flush_keeps_every_managed_tag_it_holds(rel, rem):
    """Each managed tag an article takes enrolls it: letting go of the last one taken (or
    of any one) leaves it enrolled by those it still holds. A tag marked for removal
    enrolls nothing: the flush deletes it, and an entity being removed cascades nothing."""
    ids = seed(rem)
    z = rem.find_one_or_fail(Tag, ids["z"])
    x = rem.find_one_or_fail(Tag, ids["x"])
    y = rem.find_one_or_fail(Tag, ids["y"])
    built = Article(title="built", tags=[z, x])
    built.tags.remove(x)
    given = Article(title="given")
    given.tags.add(z)
    given.tags.add(x)
    given.tags.remove(x)
    rem.remove(y)
    after = Article(title="after removal", tags=[y])
    rem.flush()
    assert built.id is not None and given.id is not None
    assert sorted(a for a, t in pairs(rel) if t == ids["z"]) == sorted([built.id, given.id])
    assert after.id is None and wrap(after).get_entity_manager() is None
    assert rows(rel, "select count(*) from article where title = 'after removal'") == [(0,)]
    before = Article(title="before removal", tags=[x])
    rem.remove(x)
    rem.flush()
    assert before.id is None
    assert rows(rel, "select count(*) from article where title = 'before removal'") == [(0,)]


def test_a_new_article_the_flush_persists_may_not_take_a_tag_after_its_removal(rel, rem):
    """An article enrolled by a managed tag that took another tag after `em.remove()` of
    that one: the flush would insert the article and drop the link with the tag's row.
    The flush is refused instead, nothing written, and goes through once the link is
    taken out (or the removal cancelled). Taken before the removal, the link goes with the
    tag's row (the last call wins), in memory too."""
    ids = seed(rem)
    z = rem.find_one_or_fail(Tag, ids["z"])
    x = rem.find_one_or_fail(Tag, ids["x"])
    y = rem.find_one_or_fail(Tag, ids["y"])
    before = Article(title="before", tags=[z, y])
    rem.remove(y)  # after the link: the link goes with the row
    rem.remove(x)
    after = Article(title="after", tags=[z, x])  # after the removal: refused, not dropped
    with pytest.raises(
        ValidationError,
        match=r"Cannot persist Article .* \(new, persisted by the flush because it holds an "
        r"entity this EntityManager manages, through Cascade\.PERSIST\): Article\.tags holds "
        r"Tag .*label='x'.*, which is marked for removal in this EntityManager",
    ) as raised:
        rem.flush()
    assert raised.value.entity is after and raised.value.property == "tags"
    assert rows(rel, "select count(*) from article where title in ('before', 'after')") == [
        (0,)
    ]
    assert rows(rel, f"select count(*) from tag where id in ({ids['x']}, {ids['y']})") == [(2,)]
    assert after.id is None and before.id is None
    after.tags.remove(x)
    rem.flush()
    assert sorted((a, t) for a, t in pairs(rel) if a in (before.id, after.id)) == sorted(
        [(before.id, ids["z"]), (after.id, ids["z"])]
    )
    assert rows(rel, f"select count(*) from tag where id in ({ids['x']}, {ids['y']})") == [(0,)]
    assert y not in before.tags
    # a removal cancelled by em.persist() keeps a link made while it stood
    w = Tag(label="w")
    rem.persist(w).flush()
    rem.remove(w)
    kept = Article(title="kept", tags=[z, w])
    rem.persist(w)
    rem.flush()
    assert sorted(t for a, t in pairs(rel) if a == kept.id) == sorted([ids["z"], w.id])


def test_a_link_taken_again_after_the_removal_is_refused_too(rel, rem):
    """A link noted at the removal stops counting as made before it once it is let go:
    taken again (add, set), it is refused like any link made after the removal; so is
    one made after a removal cancelled and made again, or after a second `em.remove()`."""
    ids = seed(rem)
    z = rem.find_one_or_fail(Tag, ids["z"])
    x = rem.find_one_or_fail(Tag, ids["x"])
    y = rem.find_one_or_fail(Tag, ids["y"])
    again = Article(title="again", tags=[z, x])
    by_set = Article(title="by set", tags=[z, y])
    rem.remove(x)
    rem.remove(y)
    again.tags.remove(x)
    again.tags.add(x)
    by_set.tags.set([z])
    by_set.tags.set([z, y])
    for bad, tag in ((again, x), (by_set, y)):
        with pytest.raises(ValidationError, match=r"Article\.tags holds Tag") as raised:
            rem.flush()
        assert raised.value.entity is bad
        bad.tags.remove(tag)
    rem.persist(x)  # cancelled: its links are kept, then it is removed again
    again.tags.add(x)
    rem.remove(x)
    rem.flush()
    assert rows(rel, f"select count(*) from tag where id in ({ids['x']}, {ids['y']})") == [(0,)]
    w = Tag(label="w")
    rem.persist(w).flush()
    rem.remove(w)
    twice = Article(title="twice", tags=[z, w])
    rem.remove(w)  # marked already: the link stays one made after the removal
    with pytest.raises(ValidationError, match=r"Article\.tags holds Tag"):
        rem.flush()
    assert rows(rel, "select count(*) from article where title = 'twice'") == [(0,)]
    assert twice.id is None


def crate_models(**sticker_side: Any) -> tuple[type, type, type]:
    """Fresh Crate, Label and Sticker classes: a crate's two owning many-to-many sides,
    `labels` and `stickers`; `sticker_side` the options of `Sticker.crates`."""

    @entity()
    class Crate:
        id: int = PrimaryKey()
        labels: Collection[Label] = ManyToMany(inversed_by="crates")
        stickers: Collection[Sticker] = ManyToMany(inversed_by="crates")

    @entity()
    class Label:
        id: int = PrimaryKey()
        crates: Collection[Crate] = ManyToMany(mapped_by="labels")

    @entity()
    class Sticker:
        id: int = PrimaryKey()
        crates: Collection[Crate] = ManyToMany(mapped_by="stickers", **sticker_side)

    return Crate, Label, Sticker


def test_a_link_made_after_a_removal_through_any_collection_is_refused(connect):
    """The flush persists an enrolled entity whole: a removed entity in a collection it
    was not enrolled through (whose inverse side does not cascade) is refused too."""
    Crate, Label, Sticker = crate_models(cascade=[])
    orm = connect([Crate, Label, Sticker])
    em = orm.em.fork()
    label, sticker, kept = Label(), Sticker(), Sticker()
    em.persist([label, sticker, kept]).flush()
    before = Crate(labels=[label], stickers=[kept])
    em.remove(kept)  # after the link: it goes with the row
    em.remove(sticker)
    crate = Crate(labels=[label], stickers=[sticker])
    with pytest.raises(ValidationError, match=r"Crate\.stickers holds Sticker") as raised:
        em.flush()
    assert raised.value.entity is crate
    assert rows(orm, "select count(*) from crate") == [(0,)]
    crate.stickers.remove(sticker)
    em.flush()
    assert before.id is not None and crate.id is not None
    assert rows(orm, "select count(*) from crate_stickers") == [(0,)]
    assert rows(orm, "select count(*) from sticker") == [(0,)]


def test_removals_and_the_flush_events_failing(connect):
    """A flush with handlers that fails after writing keeps what it noted at the
    removals: the retry drops the link made before the removal, as the first try would
    have. A flush refused after `on_flush` built an article drops that article: the
    retry's handler builds it again, and it is inserted once."""
    failing: list[bool] = []
    on: list[Tag] = []
    built: list[Article] = []

    class Watcher(EventSubscriber):
        def on_flush(self, args):
            if on:
                built.append(Article(title=f"audit {len(built)}", tags=list(on)))

        def after_flush(self, args):
            if failing:
                failing.clear()
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Watcher()])
    em = orm.em.fork()
    ids = seed(em)
    z = em.find_one_or_fail(Tag, ids["z"])
    x = em.find_one_or_fail(Tag, ids["x"])
    linked = Article(title="linked", tags=[z, x])
    em.remove(x)  # after the link
    failing.append(True)
    with pytest.raises(RuntimeError, match="after_flush failed"):
        em.flush()
    em.flush()
    assert linked.id is not None
    assert sorted(t for a, t in pairs(orm) if a == linked.id) == [ids["z"]]
    y = em.find_one_or_fail(Tag, ids["y"])
    em.remove(y)
    on.extend([z, y])  # the handler links y after its removal: refused
    with pytest.raises(ValidationError, match=r"Article\.tags holds Tag"):
        em.flush()
    em.persist(y)
    em.flush()
    assert rows(orm, "select title from article where title like 'audit%'") == [("audit 1",)]


def test_a_failed_flush_enrolls_the_new_article_again(rel, rem):
    """A flush that fails (here: a duplicate key) leaves an article it persisted through
    a managed tag enrolled as before, not persisted: letting go of the tag before the
    retry leaves it out, as it would have before the first try; keeping it, the retry
    inserts it."""
    ids = seed(rem)
    z = rem.find_one_or_fail(Tag, ids["z"])
    let_go = Article(title="let go", tags=[z])
    kept = Article(title="kept", tags=[z])
    clash = Tag(label="clash")
    clash.id = ids["x"]
    rem.persist(clash)
    with pytest.raises(UniqueConstraintViolationException):
        rem.flush()
    assert wrap(let_go).get_entity_manager() is None
    let_go.tags.remove(z)
    rem.remove(clash)
    rem.flush()
    assert let_go.id is None and kept.id is not None
    assert rows(rel, "select title from article where title in ('let go', 'kept')") == [
        ("kept",)
    ]
    assert (kept.id, ids["z"]) in pairs(rel)


def test_a_link_noted_at_a_removal_is_one_collection_s(connect):
    """A removed entity in two collections of an enrolled entity, both linked before the
    removal: letting go of it in one leaves the other's link noted, dropped with the row;
    taking it again in the first is refused."""

    @entity()
    class Crate:
        id: int = PrimaryKey()
        labels: Collection[Label] = ManyToMany(inversed_by="crates")
        featured: Collection[Label] = ManyToMany(inversed_by="featured_in")

    @entity()
    class Label:
        id: int = PrimaryKey()
        crates: Collection[Crate] = ManyToMany(mapped_by="labels")
        featured_in: Collection[Crate] = ManyToMany(mapped_by="featured")

    orm = connect([Crate, Label])
    em = orm.em.fork()
    z, x = Label(), Label()
    em.persist([z, x]).flush()
    kept = Crate(labels=[z, x], featured=[x])
    again = Crate(labels=[z, x], featured=[x])
    em.remove(x)
    kept.featured.remove(x)  # kept.labels still holds x, linked before the removal
    again.featured.remove(x)
    again.featured.add(x)  # a link made after the removal
    with pytest.raises(ValidationError, match=r"Crate\.featured holds Label") as raised:
        em.flush()
    assert raised.value.entity is again
    again.featured.remove(x)
    em.flush()
    assert kept.id is not None and again.id is not None
    assert sorted(rows(orm, "select crate_id, label_id from crate_labels")) == sorted(
        [(kept.id, z.id), (again.id, z.id)]
    )
    assert rows(orm, "select count(*) from label") == [(1,)]


def test_a_failed_flush_takes_back_what_an_enrolled_article_brought(rel, rem):
    """What the flush persisted by cascade from an article it persisted through a managed
    tag (a new tag, its new reader) is taken back with the article when the flush fails:
    the article letting go of the managed tag before the retry leaves all of it out."""
    ids = seed(rem)
    z = rem.find_one_or_fail(Tag, ids["z"])
    reader = Reader(name="r")
    fresh = Tag(label="fresh", readers=[reader])
    article = Article(title="a", tags=[z, fresh])
    clash = Tag(label="clash")
    clash.id = ids["x"]
    rem.persist(clash)
    with pytest.raises(UniqueConstraintViolationException):
        rem.flush()
    for held in (article, fresh, reader):
        assert wrap(held).get_entity_manager() is None
    article.tags.remove(z)
    rem.remove(clash)
    rem.flush()
    assert rows(rel, "select count(*) from article where title = 'a'") == [(0,)]
    assert rows(rel, "select count(*) from tag where label = 'fresh'") == [(0,)]
    assert rows(rel, "select count(*) from reader") == [(0,)]


def test_adding_to_a_removed_entity_s_collection_is_refused(rel, rem):
    """Adding to the collection of an entity marked for removal (`x.articles.add(a)`)
    would be dropped with its row: refused, nothing changed, as `a.tags.add(x)` is."""
    ids = seed(rem)
    x = rem.find_one_or_fail(Tag, ids["x"], populate=["articles"])
    z = rem.find_one_or_fail(Tag, ids["z"])
    a = Article(title="a", tags=[z])
    rem.remove(x)
    for add in (lambda: x.articles.add(a), lambda: x.articles.add(Article(title="b"))):
        with pytest.raises(
            ValidationError,
            match=r"Cannot add to Tag\.articles of .*: it is marked for removal in this "
            r"EntityManager",
        ) as raised:
            add()
        assert raised.value.entity is x and raised.value.property == "articles"
    assert a not in x.articles and x not in a.tags
    x.articles.remove(*list(x.articles))  # taking out is fine
    rem.flush()
    assert sorted(t for i, t in pairs(rel) if i == a.id) == [ids["z"]]
    assert rows(rel, "select count(*) from article where title = 'b'") == [(0,)]


def test_joining_through_a_kept_tag_lets_a_link_made_before_the_removal_go(rel, rem):
    """An article holding a tag linked before that tag's removal, added to a managed
    tag's inverse side, or brought along by a tag given to `em.persist()`: it joins, as
    through its own side, and the link noted at the removal goes with the row. An
    `em.persist()` of the article itself after the removal is refused."""
    ids = seed(rem)
    x = rem.find_one_or_fail(Tag, ids["x"])
    z = rem.find_one_or_fail(Tag, ids["z"], populate=["articles"])
    a = Article(title="a", tags=[x])
    b = Article(title="b", tags=[x])
    c = Article(title="c", tags=[x])
    d = Article(title="d", tags=[x])
    rem.remove(x)
    with pytest.raises(ValidationError, match=r"Cannot persist Article .*Article\.tags holds"):
        rem.persist(b)
    z.articles.add(a)
    # brought along by a persisted new tag, in whichever order: joins the same way
    rem.persist(Tag(label="t2", articles=[c]))
    t3 = Tag(label="t3")
    rem.persist(t3)
    t3.articles.add(d)
    rem.flush()
    assert a.id is not None and sorted(t for i, t in pairs(rel) if i == a.id) == [ids["z"]]
    assert [len([t for i, t in pairs(rel) if i == e.id]) for e in (c, d)] == [1, 1]
    assert rows(rel, f"select count(*) from tag where id = {ids['x']}") == [(0,)]


@pytest.mark.parametrize("fails", ["on_flush", "after_flush"])
@pytest.mark.parametrize("side", ["owning", "inverse"])
def test_a_new_article_a_handler_links_survives_a_failed_flush(connect, fails, side):
    """An `on_flush` handler links the user's new article (made before the flush) to a
    managed tag; the flush fails and is retried. The handler finds the link made and
    changes nothing, so the article must still be enrolled: it was dropped with what the
    failed flush persisted, and the retry left it out without a word. One the handler
    builds is still dropped (it builds another)."""
    state = {"failing": True, "built": []}
    linked: list[Article] = []

    class Linker(EventSubscriber):
        def on_flush(self, args):
            if not linked:
                return  # the seeding flush
            for article in linked:
                if side == "owning":
                    article.tags.add(z)
                else:
                    z.articles.add(article)
            if state["failing"] and not state["built"]:
                state["built"].append(Article(title="by on_flush", tags=[z]))
            if state["failing"] and fails == "on_flush":
                raise RuntimeError("on_flush failed")

        def after_flush(self, args):
            if linked and state["failing"] and fails == "after_flush":
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Linker()])
    em = orm.em.fork()
    ids = seed(em)
    z = em.find_one_or_fail(Tag, ids["z"], populate=["articles"] if side == "inverse" else [])
    mine = Article(title="mine")
    linked.append(mine)
    with pytest.raises(RuntimeError, match="failed"):
        em.flush()
    assert mine._orm_uow is None and state["built"][0]._orm_uow is None
    assert rows(orm, "select count(*) from article where title in ('mine', 'by on_flush')") == [
        (0,)
    ]
    state["failing"] = False
    em.flush()
    assert mine.id is not None and (mine.id, ids["z"]) in pairs(orm)
    assert rows(orm, "select count(*) from article where title = 'by on_flush'") == [(0,)]


def test_a_new_article_holding_a_managed_tag_and_the_flush_events(connect):
    """The flush persists such an article before `on_flush` (whose change sets list it)
    and before the `before_create` handlers (which run for it, and for one an `on_flush`
    handler builds); a flush with handlers that fails drops what it persisted, and the
    retry persists the article again."""
    seen: list[tuple[str, str]] = []
    failing: list[bool] = []
    handler_built: list[Article] = []

    class Watcher(EventSubscriber):
        def on_flush(self, args):
            seen.extend((cs.type, cs.name) for cs in args.uow.compute_change_sets())
            if failing and not handler_built:
                handler_built.append(Article(title="by on_flush", tags=[z]))

        def before_create(self, args):
            seen.append(("before_create", getattr(args.entity, "title", "")))

        def after_flush(self, args):
            if failing:
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Watcher()])
    em = orm.em.fork()
    ids = seed(em)
    seen.clear()
    z = em.find_one_or_fail(Tag, ids["z"])
    built = Article(title="built", tags=[z])
    failing.append(True)
    with pytest.raises(RuntimeError, match="after_flush failed"):
        em.flush()
    assert seen == [("create", "Article"), ("before_create", "built"),
                    ("before_create", "by on_flush")]
    assert handler_built[0]._orm_uow is None  # dropped: the retry's handlers build again
    assert rows(orm, "select count(*) from article where title = 'built'") == [(0,)]
    failing.clear()
    em.flush()
    assert built.id is not None
    assert (built.id, ids["z"]) in pairs(orm)


def test_a_query_across_the_pivot_flushes_a_new_article_holding_a_managed_tag(rel, rem):
    """FlushMode.AUTO: a query of tags filtered across `articles` reads the pivot table,
    which the pending article's pairs are to join."""
    ids = seed(rem)
    z = rem.find_one_or_fail(Tag, ids["z"])
    built = Article(title="built", tags=[z])
    found = rem.find(Tag, {"articles": {"title": "built"}})
    assert found == [z]
    assert built.id is not None


def test_a_new_entity_enrolled_through_two_collections_keeps_both(connect):
    """An entity enrolled by managed entities through two of its collections stays
    enrolled through the one it still holds after letting go of the other."""
    Crate, Label, Sticker = crate_models()
    orm = connect([Crate, Label, Sticker])
    em = orm.em.fork()
    label, sticker = Label(), Sticker()
    em.persist([label, sticker]).flush()
    crate = Crate(labels=[label], stickers=[sticker])
    crate.labels.remove(label)  # the first to enroll it
    em.flush()
    assert crate.id is not None
    assert rows(orm, "select crate_id, sticker_id from crate_stickers") == [
        (crate.id, sticker.id)
    ]


@pytest.mark.parametrize("owner", ["new", "managed"])
def test_a_tag_a_handler_adds_is_written_once_after_a_retry(connect, owner):
    """A `before_create` / `before_update` handler adds a new tag to the article being
    written (a new one, or a managed one whose title changed); the flush fails and is
    retried. The tag the failed flush made stayed in `article.tags` (as an item, and as a
    pair to write), so the retry wrote it and the one the handler made again."""
    failing: list[bool] = []

    class Tagger(EventSubscriber):
        def get_subscribed_entities(self):
            return [Article]

        def before_create(self, args):
            if args.entity.title == "mine":
                args.entity.tags.add(Tag(label="auto"))

        def before_update(self, args):
            args.entity.tags.add(Tag(label="auto"))

        def after_flush(self, args):
            if failing:
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Tagger()])
    em = orm.em.fork()
    ids = seed(em)
    if owner == "new":
        article = Article(title="mine")
        em.persist(article)
    else:
        article = em.find_one_or_fail(Article, ids["a3"], populate=["tags"])
        article.title = "changed"
    failing.append(True)
    with pytest.raises(RuntimeError, match="after_flush failed"):
        em.flush()
    assert [t.label for t in article.tags] == []
    failing.clear()
    em.flush()
    assert rows(orm, "select count(*) from tag where label = 'auto'") == [(1,)]
    assert [t for a, t in pairs(orm) if a == article.id] == [article.tags[0].id]


def test_refresh_writes_no_pair_pending_on_the_other_side(rel, rem):
    """`em.refresh(tag)` re-reads `tag.articles`; a pair added through another article's
    owning side (`article.tags.add(tag)`) must stay pending, not be written and committed
    by an auto flush of that re-read."""
    ids = seed(rem)
    tag = rem.find_one_or_fail(Tag, ids["z"], populate=["articles"])
    article = rem.find_one_or_fail(Article, ids["a3"], populate=["tags"])
    article.tags.add(tag)
    rem.refresh(tag)
    assert (ids["a3"], ids["z"]) not in pairs(rel)
    assert article in tag.articles, "the pending pair shows on the re-read side"
    rem.flush()
    assert (ids["a3"], ids["z"]) in pairs(rel)


def test_a_pair_referencing_a_missing_row_names_the_collection(rel, rem):
    """A pair written for `Article.tags` whose tag row does not exist: the foreign-key
    error names the collection (it named no entity on SQLite, only the pivot's column on
    PostgreSQL), nothing written."""
    article = Article(title="a", tags=[rem.get_reference(Tag, 999)])
    rem.persist(article)
    with pytest.raises(ForeignKeyConstraintViolationException) as raised:
        rem.flush()
    assert "Article.tags references a row that does not exist" in str(raised.value)
    assert (raised.value.entity, raised.value.property) == ("Article", "tags")
    assert rows(rel, "select count(*) from article") == [(0,)]
