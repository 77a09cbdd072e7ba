"""ManyToOne / OneToOne (owning side) and Ref, on both databases: declarations, loading,
the flush (cascade persist, FK order, generated keys, cycles, change detection, rollback),
the schema, filters, serialization and bad input."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orm import (
    EntitySchema,
    EventArgs,
    EventSubscriber,
    FlushMode,
    ForeignKeyConstraintViolationException,
    ManyToOne,
    MetadataError,
    OptimisticLockError,
    PrimaryKey,
    Property,
    QueryOrder,
    Ref,
    ValidationError,
    entity,
    ref,
    wrap,
)
from tests.core.relation_models import (
    RELATED,
    Article,
    Author,
    Category,
    Comment,
    Image,
    Node,
    Team,
)
from tests.databases import execute, rows


@pytest.fixture
def rel(connect, log):
    instance = connect(RELATED, debug=["query"], logger=log.append)
    log.clear()
    return instance


@pytest.fixture
def rem(rel):
    return rel.em.fork()


def seed(rem):
    """Two authors (one in a team), two articles by the first."""
    team = Team(name="core")
    ann = Author(name="Ann", email="ann@x.io", team=team)
    bob = Author(name="Bob", email="bob@x.io")
    a1 = Article(title="one", author=ann)
    a2 = Article(title="two", author=ann, reviewer=bob)
    rem.persist([a1, a2, bob]).flush()
    return team, ann, bob, a1, a2


# -- declarations -------------------------------------------------------------------------


def test_columns_are_named_and_typed_after_the_target_key(rel, database):
    meta = rel.em.get_metadata(Article)
    assert meta.properties["author"].field_name == "author_id"
    assert meta.properties["cover"].field_name == "cover_id"
    assert meta.properties["author"].relation.target is Author
    assert meta.properties["cover"].relation.ref is True
    assert meta.properties["author"].nullable is False
    assert meta.properties["reviewer"].nullable is True
    live = {c.name: c for c in rel.platform.live_columns(rel.connection, "article")}
    assert live["author_id"].notnull and not live["reviewer_id"].notnull
    # the FK column has the type of the key it holds (a UUID key on PostgreSQL: uuid)
    image_pk = rel.platform.column_type(rel.em.get_metadata(Image).pk)
    assert rel.platform.same_type(image_pk, live["cover_id"].type)
    if database == "postgresql":
        assert live["cover_id"].type == "uuid"
        assert live["author_id"].type == "bigint"


def test_unknown_target_is_a_metadata_error_naming_both_sides(connect):
    class Plain:
        pass

    @entity()
    class Post:
        id: int = PrimaryKey()
        owner: Plain = ManyToOne()

    with pytest.raises(MetadataError, match=r"Post\.owner is a relation to 'Plain'.*Plain"):
        connect([Post], create=False)

    @entity()
    class Orphan:
        id: int = PrimaryKey()
        parent: Missing = ManyToOne()  # noqa: F821 - never defined

    with pytest.raises(MetadataError, match=r"Orphan\.parent is a relation to 'Missing'"):
        connect([Orphan], create=False)

    @entity()
    class Lonely:
        id: int = PrimaryKey()
        team: Team = ManyToOne()

    # an entity class that exists but is not registered with this ORM
    with pytest.raises(MetadataError, match=r"Lonely\.team is a relation to 'Team'.*known"):
        connect([Lonely], create=False)


def test_bad_relation_options_are_metadata_errors(connect):
    @entity()
    class Odd:
        id: int = PrimaryKey()
        team: Team = ManyToOne(on_delete="explode")

    with pytest.raises(MetadataError, match=r"Odd\.team: on_delete='explode'"):
        connect([Odd, Team], create=False)

    @entity()
    class Odder:
        id: int = PrimaryKey()
        team: Team = ManyToOne(colour="red")

    with pytest.raises(MetadataError, match=r"Odder\.team has unknown option\(s\) colour"):
        connect([Odder, Team], create=False)


def test_join_column_entity_option_and_entity_schema(connect, database):
    class Book:
        pass

    schema = EntitySchema(
        name="Book",
        class_=Book,
        properties={
            "id": PrimaryKey(type=int),
            "title": Property(type=str),
            "publisher": ManyToOne("Team", join_column="house", nullable=True),
        },
    )
    orm = connect([schema, Team])
    meta = orm.em.get_metadata(Book)
    assert meta.properties["publisher"].field_name == "house"
    em = orm.em.fork()
    book = Book(title="B", publisher=Team(name="pub"))
    em.persist(book).flush()
    assert rows(orm, "select house from `book`") == [(book.publisher.id,)]
    loaded = orm.em.fork().find_one(Book, book.id)
    assert type(loaded.publisher) is Team and loaded.publisher.id == book.publisher.id


def test_target_from_entity_option_without_annotation(connect):
    @entity()
    class Memo:
        id: int = PrimaryKey()
        text: str
        team = ManyToOne(lambda: Team, nullable=True)  # no annotation: a callable
        lead = ManyToOne(Author, nullable=True)  # no annotation: the class

    orm = connect([Memo, Team, Author])
    meta = orm.em.get_metadata(Memo)
    assert meta.properties["team"].relation.target is Team
    assert meta.properties["lead"].field_name == "lead_id"
    em = orm.em.fork()
    memo = Memo(text="m", team=Team(name="t"))
    em.persist(memo).flush()
    assert orm.em.fork().find_one(Memo, memo.id).team.id == memo.team.id


# -- loading --------------------------------------------------------------------------------


def test_loaded_relation_is_a_reference_from_the_identity_map(rel, log):
    _, ann, _, a1, a2 = seed(rel.em.fork())
    em = rel.em.fork()
    log.clear()
    one, two = em.find(Article, {}, order_by={"id": "asc"})
    assert len(log.sql()) == 1, "no query for the authors"
    assert type(one.author) is Author and one.author is two.author
    assert not wrap(one.author).is_initialized() and one.author.id == ann.id
    assert em.get_reference(Author, ann.id) is one.author
    with pytest.raises(ValidationError, match=r"Author\.name cannot be read: .*uninitialized"):
        _ = one.author.name
    # loading the author fills that very instance
    same = em.find_one(Author, ann.id)
    assert same is one.author and one.author.name == "Ann"
    # an author already loaded is used as it is
    em2 = rel.em.fork()
    loaded_ann = em2.find_one(Author, ann.id)
    assert em2.find_one(Article, a2.id).author is loaded_ann


def test_detached_load_gives_detached_references(rel):
    seed(rel.em.fork())
    em = rel.em.fork()
    found = em.find(Article, {}, disable_identity_map=True)
    assert found and found[0].author._orm_uow is None
    assert em.get_unit_of_work().get_identity_map().get(Author) in (None, {})


def test_ref_property(rel):
    em = rel.em.fork()
    img = Image(url="a.png")
    art = Article(title="t", author=Author(name="A"), cover=img)
    assert type(art.cover) is Ref and art.cover.unwrap() is img  # __init__ wraps
    other = Image(url="b.png")
    art.cover = other  # assignment wraps
    assert type(art.cover) is Ref and art.cover.get_entity() is other
    assert ref(other) == art.cover and ref(art.cover) is art.cover
    em.persist(art).flush()
    em2 = rel.em.fork()
    loaded = em2.find_one(Article, art.id)
    cover = loaded.cover
    assert type(cover) is Ref and cover.id == other.id and not cover.is_initialized()
    with pytest.raises(ValidationError, match=r"Ref<Image>.*not loaded"):
        cover.get_entity()
    assert cover.load().url == "b.png" and cover.is_initialized()
    assert cover.get_entity() is em2.find_one(Image, other.id)
    art2 = em2.find_one(Article, art.id, populate=["cover"], refresh=True)
    assert art2.cover.get_entity().url == "b.png"
    loaded.cover = None
    em2.flush()
    assert rows(rel, "select cover_id from `article`") == [(None,)]


def test_populate_loads_each_level_with_one_query(rel, log):
    team, ann, bob, a1, a2 = seed(rel.em.fork())
    em = rel.em.fork()
    log.clear()
    found = em.find(Article, {}, populate=["author", "reviewer", "author.team"])
    selects = [s for s in log.sql() if s.startswith("select")]
    # articles; authors (author); authors (reviewer); teams
    assert len(selects) == 4, selects
    assert all(wrap(a.author).is_initialized() for a in found)
    assert found[0].author.team.name == "core"
    assert {a.reviewer.name for a in found if a.reviewer} == {"Bob"}
    log.clear()
    em3 = rel.em.fork()
    articles = em3.find(Article, {})
    em3.populate(articles, ["*"])
    assert articles[0].author.team.name == "core"
    with pytest.raises(ValidationError, match=r"Cannot populate Article\.writer"):
        em3.find(Article, {}, populate=["writer"])
    with pytest.raises(ValidationError, match=r"Cannot populate Article\.author\.nope: Author"):
        em3.find(Article, {}, populate=["author.nope"])
    with pytest.raises(ValidationError, match=r"Article\.title is not a relation"):
        em3.populate(articles, ["title"])


def test_populate_many_targets_is_chunked_not_per_row(rel, log, monkeypatch, database):
    from orm.entity import loader

    em = rel.em.fork()
    authors = [Author(name=f"a{i}") for i in range(25)]
    em.persist([Article(title=str(i), author=a) for i, a in enumerate(authors)]).flush()
    monkeypatch.setattr(loader, "CHUNK", 10)
    em2 = rel.em.fork()
    log.clear()
    found = em2.find(Article, {}, populate=["author"])
    selects = [s for s in log.sql() if s.startswith("select")]
    if database == "postgresql":  # the keys are one array parameter, whatever their count
        assert len(selects) == 1 + 1 and "= any(" in selects[1]
    else:
        assert len(selects) == 1 + 3  # 25 keys in chunks of 10
    assert sorted(a.author.name for a in found) == sorted(a.name for a in authors)


# -- flush ----------------------------------------------------------------------------------


def test_cascade_persist_inserts_parents_first_with_their_keys(rel, log, database):
    em = rel.em.fork()
    team = Team(name="t")
    authors = [Author(name=f"n{i}", team=team) for i in range(3)]
    articles = [Article(title=f"x{i}", author=authors[i % 3]) for i in range(6)]
    em.persist(articles).flush()  # only the articles were persisted
    writes = [w for w in log.writes() if w.startswith("insert")]
    tables = [w.split()[2].strip('`"') for w in writes]
    assert tables == ["team", "author", "article"]
    assert writes[2].count("), (") == 5, "the six articles in one statement"
    assert rows(rel, "select a.title, u.name, t.name from `article` a join `author` u on "
                     "u.id = a.author_id join `team` t on t.id = u.team_id order by a.id") == [
        (f"x{i}", f"n{i % 3}", "t") for i in range(6)
    ]
    log.clear()
    em.flush()
    assert log.sql() == [], "the snapshots hold the keys written"


def test_relation_assigned_after_persist_is_cascaded_at_flush(rel):
    em = rel.em.fork()
    art = Article(title="late", author=Author(name="first"))
    em.persist(art)
    art.author = Author(name="second")
    em.flush()
    assert rows(rel, "select name from `author`") == [("second",)]
    # and on a managed entity: assigning a new author inserts it
    art.reviewer = Author(name="third")
    em.flush()
    assert rows(rel, "select a.reviewer_id, u.name from `article` a join `author` u on "
                     "u.id = a.reviewer_id") == [(art.reviewer.id, "third")]


def test_repointing_updates_only_the_fk_and_same_target_is_no_change(rel, log):
    _, ann, bob, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    art = em.find_one(Article, a1.id)
    art.author = em.get_reference(Author, ann.id)  # the same row: no change
    log.clear()
    em.flush()
    assert log.sql() == []
    art.author = em.find_one(Author, bob.id)
    log.clear()
    em.flush()
    updates = [w for w in log.writes() if w.startswith("update")]
    assert len(updates) == 1 and "author_id" in updates[0] and "title" not in updates[0]
    assert rows(rel, "select author_id from `article` where id = ?", (a1.id,)) == [(bob.id,)]
    log.clear()
    em.flush()
    assert log.sql() == []


def test_repointing_to_a_new_entity_writes_its_generated_key(rel):
    _, _, _, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    art = em.find_one(Article, a1.id)
    art.author = Author(name="fresh")
    em.flush()
    assert art.author.id is not None
    assert rows(rel, "select author_id from `article` where id = ?", (a1.id,)) == [
        (art.author.id,)
    ]


def test_self_reference_among_new_entities(rel, log):
    em = rel.em.fork()
    root = Category(name="root")
    mid = Category(name="mid", parent=root)
    leaf = Category(name="leaf", parent=mid)
    em.persist([leaf, mid, root]).flush()
    got = dict(rows(rel, "select name, parent_id from `category`"))
    assert got == {"root": None, "mid": root.id, "leaf": mid.id}
    log.clear()
    em.flush()
    assert log.sql() == []


def test_cycle_through_a_nullable_fk_is_inserted_then_updated(rel, log):
    em = rel.em.fork()
    a = Category(name="a")
    b = Category(name="b", parent=a)
    a.parent = b
    em.persist([a, b]).flush()
    assert dict(rows(rel, "select name, parent_id from `category`")) == {"a": b.id, "b": a.id}
    assert any(w.startswith("update") for w in log.writes())
    log.clear()
    em.flush()
    assert log.sql() == [], "the snapshots hold the keys written by the UPDATE"
    em2 = rel.em.fork()
    assert em2.find_one(Category, a.id).parent.id == b.id


def test_cycle_without_a_nullable_fk_is_refused_before_writing(rel, log):
    em = rel.em.fork()
    n1 = Node(name="n1", next=None)
    n2 = Node(name="n2", next=n1)
    n1.next = n2
    em.persist([n1, n2])
    log.clear()
    with pytest.raises(ValidationError, match=r"cycle of NOT NULL foreign keys \(Node\.next"):
        em.flush()
    assert log.sql() == []
    assert n1.id is None and n2.id is None


def test_deletes_run_children_first(rel, log):
    _, ann, _, a1, a2 = seed(rel.em.fork())
    em = rel.em.fork()
    author = em.find_one(Author, ann.id)
    em.remove(author)  # removed first, deleted last
    em.remove(em.find(Article, {"author": author}))
    log.clear()
    em.flush()
    deletes = [w.split()[2].strip('`"') for w in log.writes() if w.startswith("delete")]
    assert deletes == ["article", "author"]
    assert rows(rel, "select count(*) from `article`") == [(0,)]


def test_rollback_restores_relation_changes(rel):
    _, ann, bob, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    art = em.find_one(Article, a1.id)
    carl = Author(name="Carl")
    with pytest.raises(RuntimeError), em.transaction():
        art.author = carl
        em.flush()
        assert carl.id is not None
        raise RuntimeError("undo")
    # the update is pending again; the new author is new again (its key removed)
    assert art.author is carl and carl.id is None
    assert rows(rel, "select author_id from `article` where id = ?", (a1.id,)) == [(ann.id,)]
    em.flush()
    assert rows(rel, "select author_id from `article` where id = ?", (a1.id,)) == [(carl.id,)]


# -- schema ---------------------------------------------------------------------------------


def test_foreign_keys_are_enforced_and_indexed(rel, database):
    seed(rel.em.fork())
    with pytest.raises(ForeignKeyConstraintViolationException,
                       match="Article.* references a row that does not exist"):
        execute(rel, "insert into `article` (title, author_id) values ('x', 9999)")
    indexes = {i.columns for i in rel.platform.live_indexes(rel.connection, "article")}
    assert ("author_id",) in indexes and ("reviewer_id",) in indexes
    # a OneToOne's key is unique
    unique = {i.columns for i in rel.platform.live_indexes(rel.connection, "article") if i.unique}
    assert ("cover_id",) in unique
    sql = rel.schema.get_create_schema_sql()
    assert "on update cascade" in sql and "on delete set null" in sql
    assert "on delete cascade" in sql
    # tables in dependency order
    assert sql.index("table `team`" if database == "sqlite" else 'table "team"') < sql.index(
        "table `author`" if database == "sqlite" else 'table "author"'
    )


def test_on_delete_rules(rel):
    _, ann, bob, a1, a2 = seed(rel.em.fork())
    em = rel.em.fork()
    em.persist(Comment(body="c", article=em.get_reference(Article, a1.id))).flush()
    em.native_delete(Article, a1.id)  # on delete cascade: its comment goes with it
    assert rows(rel, "select count(*) from `comment`") == [(0,)]
    em.native_delete(Article, {"author": ann.id, "id": {"$ne": a2.id}})
    em.native_delete(Author, bob.id)  # a2's reviewer: on delete set null
    assert rows(rel, "select reviewer_id from `article` where id = ?", (a2.id,)) == [(None,)]


def test_update_schema_adds_a_fk_column(connect, database):
    @entity(table_name="post")
    class PostV1:
        id: int = PrimaryKey()
        title: str

    first = connect([PostV1, Team])
    execute(first, "insert into `team` (name) values ('t')")
    execute(first, "insert into `post` (title) values ('p')")

    @entity(table_name="post")
    class PostV2:
        id: int = PrimaryKey()
        title: str
        team: Team | None = ManyToOne(nullable=True)

    second = connect([PostV2, Team], create=False)
    dump = second.schema.get_update_schema_sql()
    assert "team_id" in dump and "references" in dump
    second.schema.update_schema()
    assert second.schema.get_update_schema_sql() == ""
    with pytest.raises(ForeignKeyConstraintViolationException):
        execute(second, "update `post` set team_id = 77")
    em = second.em.fork()
    post = em.find_one(PostV2, 1)
    assert post.team is None
    post.team = em.find_one(Team, {"name": "t"})
    em.flush()
    assert rows(second, "select team_id from `post`") == [(post.team.id,)]


@entity(table_name="post")
class PlainPost:
    id: int = PrimaryKey()
    title: str
    team_id: int | None = None


@entity(table_name="post")
class TeamPost:
    id: int = PrimaryKey()
    title: str
    team: Team | None = ManyToOne(nullable=True)


@entity(table_name="post")
class TeamPostSetNull:
    id: int = PrimaryKey()
    title: str
    team: Team | None = ManyToOne(nullable=True, on_delete="set null")


def foreign_keys(instance, table="post"):
    return [
        (k.column, k.table, k.target_column, k.on_update, k.on_delete)
        for k in instance.platform.live_foreign_keys(instance.connection, table)
    ]


def test_update_schema_adds_the_foreign_key_of_a_column_that_becomes_a_relation(connect):
    first = connect([PlainPost, Team])
    execute(first, "insert into `team` (name) values ('t')")
    execute(first, "insert into `post` (title, team_id) values ('p', 1), ('q', null)")
    assert foreign_keys(first) == []

    second = connect([TeamPost, Team], create=False)
    second.schema.update_schema()
    assert foreign_keys(second) == [("team_id", "team", "id", "cascade", "no action")]
    assert second.schema.get_update_schema_sql() == ""
    assert rows(second, "select id, title, team_id from `post` order by id") == [
        (1, "p", 1), (2, "q", None),
    ]
    with pytest.raises(ForeignKeyConstraintViolationException):
        execute(second, "update `post` set team_id = 77 where id = 2")
    assert second.em.fork().find_one(TeamPost, 1).team.id == 1


def test_update_schema_refuses_a_foreign_key_the_rows_would_break(connect):
    first = connect([PlainPost, Team])
    execute(first, "insert into `team` (name) values ('t')")
    execute(first, "insert into `post` (title, team_id) values ('p', 1), ('q', 77), ('r', 78)")

    second = connect([TeamPost, Team], create=False)
    for attempt in (second.schema.get_update_schema_sql, second.schema.update_schema):
        with pytest.raises(ValidationError) as info:
            attempt()
        message = str(info.value)
        assert "TeamPost" in message and "team" in message and "Team" in message
        assert "2 rows" in message and "nothing was changed" in message
    assert foreign_keys(second) == []
    assert rows(second, "select title, team_id from `post` order by id") == [
        ("p", 1), ("q", 77), ("r", 78),
    ]
    execute(second, "update `post` set team_id = null where team_id > 1")
    second.schema.update_schema()
    assert foreign_keys(second) == [("team_id", "team", "id", "cascade", "no action")]


def test_update_schema_changes_on_delete_and_drops_a_foreign_key(connect):
    first = connect([TeamPost, Team])
    execute(first, "insert into `team` (name) values ('t'), ('u')")
    execute(first, "insert into `post` (title, team_id) values ('p', 1), ('q', 2)")

    second = connect([TeamPostSetNull, Team], create=False)
    assert second.schema.get_update_schema_sql() != ""
    second.schema.update_schema()
    assert foreign_keys(second) == [("team_id", "team", "id", "cascade", "set null")]
    assert second.schema.get_update_schema_sql() == ""
    execute(second, "delete from `team` where id = 1")
    assert rows(second, "select title, team_id from `post` order by id") == [
        ("p", None), ("q", 2),
    ]

    third = connect([PlainPost, Team], create=False)
    third.schema.update_schema()
    assert foreign_keys(third) == []
    assert third.schema.get_update_schema_sql() == ""
    execute(third, "update `post` set team_id = 77 where id = 2")  # no constraint left
    assert rows(third, "select title, team_id from `post` order by id") == [
        ("p", None), ("q", 77),
    ]


# -- filters --------------------------------------------------------------------------------


def test_filters_on_relations(rel):
    _, ann, bob, a1, a2 = seed(rel.em.fork())
    em = rel.em.fork()

    def titles(where, **options):
        return sorted(a.title for a in em.find(Article, where, **options))

    assert titles({"author": ann}) == ["one", "two"]
    assert titles({"author": ann.id}) == ["one", "two"]
    assert titles({"author": str(ann.id)}) == ["one", "two"]
    assert titles({"reviewer": {"$in": [bob, 12345]}}) == ["two"]
    assert titles({"reviewer": None}) == ["one"]
    assert titles({"reviewer": ref(em.get_reference(Author, bob.id))}) == ["two"]
    assert titles({"author": {"email": "ann@x.io"}}) == ["one", "two"]
    assert titles({"author": {"team": {"name": "core"}}}) == ["one", "two"]
    assert titles({"reviewer": {"name": {"$like": "B%"}}}) == ["two"]
    assert titles({"author": {"email": "nobody"}}) == []
    em.persist(Article(title="three", author=em.get_reference(Author, bob.id))).flush()
    found = em.find(Article, {}, order_by={"author": "desc", "id": "asc"})
    by_ann = ["one", "two"]
    expected = ["three", *by_ann] if bob.id > ann.id else [*by_ann, "three"]
    assert [a.title for a in found] == expected
    assert em.count(Article, {"author": {"name": "Ann"}}) == 2
    with pytest.raises(ValidationError, match=r"Author has no property 'nope'"):
        em.find(Article, {"author": {"nope": 1}})
    with pytest.raises(ValidationError, match=r"Article\.author.*expected a Author entity"):
        em.find(Article, {"author": Team(name="x")})
    with pytest.raises(ValidationError, match=r"Article\.author.*expected a Author entity"):
        em.find(Article, {"author": "abc"})


def test_create_assign_and_native_queries_take_keys_or_entities(rel):
    _, ann, bob, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    art = em.create(Article, {"title": "made", "author": ann.id})
    assert art.author is em.get_reference(Author, ann.id)
    em.assign(art, {"reviewer": str(bob.id)})
    assert art.reviewer.id == bob.id
    em.flush()
    assert rows(rel, "select author_id, reviewer_id from `article` where id = ?", (art.id,)) == [
        (ann.id, bob.id)
    ]
    with pytest.raises(ValidationError, match=r"not a valid primary key for Author\.id"):
        em.create(Article, {"title": "bad", "author": "abc"})
    new_id = em.native_insert(Article, {"title": "native", "author": bob})
    em.native_update(Article, {"id": new_id}, {"author": ann.id})
    assert rows(rel, "select author_id from `article` where id = ?", (new_id,)) == [(ann.id,)]
    with pytest.raises(ValidationError, match=r"Article\.author"):
        em.native_update(Article, {"id": new_id}, {"author": Team(name="x")})
    with pytest.raises(ValidationError, match=r"Article\.author: the Author given is not stored"):
        em.native_insert(Article, {"title": "n", "author": Author(name="unsaved")})
    up = em.upsert(Article, {"id": 500, "title": "up", "author": bob.id})
    assert up.author.id == bob.id
    assert rows(rel, "select author_id from `article` where id = 500") == [(bob.id,)]


# -- serialization --------------------------------------------------------------------------


def test_to_object_shows_references_as_keys_and_loaded_targets_nested(rel):
    team, ann, _, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    art = em.find_one(Article, a1.id)
    assert wrap(art).to_object()["author"] == ann.id
    em.populate(art, ["author.team"])
    obj = wrap(art).to_object()
    assert obj["author"] == {"id": ann.id, "name": "Ann", "email": "ann@x.io",
                             "team": {"id": team.id, "name": "core"}}
    assert wrap(art).to_json()["author"]["team"]["name"] == "core"
    # a cycle: a repeated entity is shown as its key
    em2 = rel.em.fork()
    a = Category(name="a")
    b = Category(name="b", parent=a)
    a.parent = b
    em2.persist([a, b]).flush()
    assert wrap(a).to_object() == {
        "id": a.id, "name": "a", "parent": {"id": b.id, "name": "b", "parent": a.id}
    }
    assert repr(a) == f"Category(id={a.id}, name='a', parent=<Category {b.id}>)"


# -- bad input ------------------------------------------------------------------------------


def test_wrong_class_or_non_entity_is_refused_at_flush(rel, log):
    em = rel.em.fork()
    art = Article(title="t", author=Team(name="not an author"))
    em.persist(art)
    log.clear()
    with pytest.raises(ValidationError, match=r"Article\.author: expected a Author entity"):
        em.flush()
    assert log.sql() == []
    art.author = 3
    with pytest.raises(ValidationError, match=r"Article\.author: expected a Author entity"):
        em.flush()
    art.cover = Author(name="x")  # a Ref around the wrong class
    art.author = Author(name="ok")
    with pytest.raises(ValidationError, match=r"Article\.cover: expected Ref\[Image\]"):
        em.flush()
    assert log.sql() == []
    art.cover = None
    em.flush()
    assert rows(rel, "select count(*) from `article`") == [(1,)]


def test_non_nullable_relation_left_none_is_refused_at_flush(rel, log):
    em = rel.em.fork()
    em.persist(Article(title="t", author=None))
    with pytest.raises(ValidationError, match=r"Article\.author.*not nullable"):
        em.flush()
    assert log.sql() == []


def test_new_target_without_cascade_is_refused(rel, log):
    em = rel.em.fork()
    em.persist(Comment(body="c", article=Article(title="t", author=Author(name="a"))))
    with pytest.raises(ValidationError, match=r"Comment\.article references a new Article"):
        em.flush()
    assert log.sql() == []


def test_removing_a_referenced_parent_fails_and_can_be_retried(rel):
    _, ann, _, a1, a2 = seed(rel.em.fork())
    em = rel.em.fork()
    author = em.find_one(Author, ann.id)
    em.remove(author)
    with pytest.raises(ForeignKeyConstraintViolationException, match="Nothing of this flush"
                       ) as failed:
        em.flush()
    assert "still referenced" in str(failed.value)
    assert "remove or reassign the rows that reference it first" in str(failed.value)
    if rel.platform.name == "sqlite":  # the statement's table names the entity
        assert "an Author row is still referenced" in str(failed.value)
    assert rows(rel, "select count(*) from `author` where id = ?", (ann.id,)) == [(1,)]
    # fix the cause: the Unit of Work still holds the removal
    for art in em.find(Article, {"author": author}):
        em.remove(art)
    em.flush()
    assert rows(rel, "select count(*) from `author` where id = ?", (ann.id,)) == [(0,)]


# -- larger flushes, reloads, events --------------------------------------------------------


def test_many_new_parents_get_their_keys_in_bulk_paths(rel, log, database):
    """150 rows: PostgreSQL reserves the authors' keys and COPYs the articles; SQLite
    derives them from last_insert_rowid. Each article must get its own author's key."""
    em = rel.em.fork()
    authors = [Author(name=f"w{i}") for i in range(150)]
    articles = [Article(title=f"t{i}", author=authors[i]) for i in range(150)]
    em.persist(articles).flush()
    got = rows(rel, "select a.title, u.name from `article` a join `author` u on "
                    "u.id = a.author_id")
    assert sorted(got) == sorted((f"t{i}", f"w{i}") for i in range(150))
    # re-pointed to 150 new authors at once: the updates wait for their keys
    fresh = [Author(name=f"v{i}") for i in range(150)]
    for art, author in zip(articles, fresh, strict=True):
        art.author = author
    em.flush()
    got = rows(rel, "select a.title, u.name from `article` a join `author` u on "
                    "u.id = a.author_id")
    assert sorted(got) == sorted((f"t{i}", f"v{i}") for i in range(150))
    log.clear()
    em.flush()
    assert log.sql() == []


def test_refresh_and_partial_loads_turn_keys_into_references(rel):
    _, ann, bob, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    partial = em.find(Article, {"id": a1.id}, fields=["title"])[0]
    with pytest.raises(ValidationError, match=r"Article\.author was not loaded"):
        _ = partial.author
    full = em.find_one(Article, {"title": "one"})  # fills in the rest
    assert full is partial and full.author.id == ann.id
    execute(rel, "update `article` set author_id = ? where id = ?", (bob.id, a1.id))
    em.refresh(full)
    assert full.author is em.get_reference(Author, bob.id)


def test_flush_with_event_listeners_orders_and_patches_too(connect, log):
    from orm import EventSubscriber

    seen = []

    class Spy(EventSubscriber):
        def on_flush(self, args):
            seen.append("on_flush")

    orm = connect(RELATED, subscribers=[Spy()])
    em = orm.em.fork()
    cat = Category(name="child", parent=Category(name="parent"))
    em.persist(Article(title="a", author=Author(name="b", team=Team(name="c"))))
    em.persist(cat).flush()
    assert seen == ["on_flush"]
    assert rows(orm, "select c.name from `category` c join `category` p on p.id = "
                     "c.parent_id") == [("child",)]
    assert rows(orm, "select count(*) from `article` a join `author` u on u.id = a.author_id "
                     "join `team` t on t.id = u.team_id") == [(1,)]


def test_mixed_cycle_breaks_at_its_nullable_edge(connect, log, database):
    """Person.pet (nullable) -> Pet.owner (NOT NULL) -> Person: the pet needs its owner
    first, the owner's pet is written by an UPDATE. Classes local to a function: their
    string annotations are resolved by entity name."""

    @entity()
    class Person:
        id: int = PrimaryKey()
        name: str
        pet: Pet | None = ManyToOne(nullable=True)

    @entity()
    class Pet:
        id: int = PrimaryKey()
        name: str
        owner: Person = ManyToOne()

    orm = connect([Person, Pet], debug=["query"], logger=log.append)
    ddl = orm.schema.get_create_schema_sql()
    if database == "postgresql":  # the tables reference each other: one FK comes after
        assert ddl.count(" add constraint ") == 1 and "_foreign\" foreign key (" in ddl
    else:
        assert "add constraint" not in ddl
    em = orm.em.fork()
    people = [Person(name=f"p{i}") for i in range(3)]
    for i, person in enumerate(people):
        person.pet = Pet(name=f"pet{i}", owner=person)
    em.persist(people)
    log.clear()
    em.flush()
    got = rows(orm, "select p.name, t.name, o.name from `person` p join `pet` t on t.id = "
                    "p.pet_id join `person` o on o.id = t.owner_id order by p.id")
    assert got == [(f"p{i}", f"pet{i}", f"p{i}") for i in range(3)]
    inserts = [w.split()[2].strip('`"') for w in log.writes() if w.startswith("insert")]
    assert inserts == ["person", "pet"]
    log.clear()
    em.flush()
    assert log.sql() == []


def test_an_entity_referencing_itself(rel, log):
    em = rel.em.fork()
    lone = Node(name="lone", next=None)
    lone.next = lone
    em.persist(lone)
    with pytest.raises(ValidationError, match=r"Node\.next -> Node"):
        em.flush()
    em.clear()
    me = Category(name="me")
    me.parent = me
    em.persist(me).flush()
    assert rows(rel, "select id, parent_id from `category`") == [(me.id, me.id)]


def test_a_long_chain_of_new_entities(rel):
    em = rel.em.fork()
    chain = [Category(name="c0")]
    for i in range(1, 300):
        chain.append(Category(name=f"c{i}", parent=chain[-1]))
    em.persist(chain[-1]).flush()  # the rest by cascade
    parents = dict(rows(rel, "select id, parent_id from `category`"))
    assert all(parents[c.id] == c.parent.id for c in chain[1:]) and parents[chain[0].id] is None


def test_a_target_new_in_another_entity_manager_is_refused(rel, log):
    other = rel.em.fork()
    author = Author(name="elsewhere")
    other.persist(author)
    em = rel.em.fork()
    em.persist(Article(title="t", author=author))
    log.clear()
    with pytest.raises(ValidationError, match="another EntityManager"):
        em.flush()
    assert log.sql() == []


def test_auto_flush_sees_entities_a_flush_would_persist_by_cascade(rel):
    em = rel.em.fork()
    em.persist(Article(title="t", author=Author(name="a", team=Team(name="deep"))))
    assert [t.name for t in em.find(Team, {})] == ["deep"]
    assert em.count(Author) == 1


def test_auto_flush_before_a_query_whose_filter_or_order_reads_a_changed_target(rel, log):
    """FlushMode.AUTO: a filter or an ordering through a ManyToOne reads the target's
    table, so unflushed changes of the target type are written first (the query returned
    what the rows said before them: no article by the renamed author)."""
    seed(rel.em.fork())
    em = rel.em.fork()
    ann = em.find_one(Author, {"name": "Ann"})
    ann.name = "Anne"
    assert [a.title for a in em.find(Article, {"author": {"name": "Anne"}})] == ["one", "two"]
    em.find_one(Author, {"name": "Bob"}).team = Team(name="new")
    assert em.count(Article, {"reviewer": {"team": {"name": "new"}}}) == 1
    em.find_one(Author, {"name": "Bob"}).name = "Aaron"
    by_reviewer = em.find(Article, {"$or": [{"reviewer": {"name": "Aaron"}}]})
    assert [a.title for a in by_reviewer] == ["two"]
    ann.name = "Zed"
    ordered = em.find(Article, {}, order_by=[{"author": {"name": "desc"}}, {"title": "asc"}])
    assert [a.title for a in ordered] == ["one", "two"]
    assert rows(rel, "select name from `author` order by name") == [("Aaron",), ("Zed",)]
    # nothing changed, or a filter by key: no flush, no extra statement
    log.clear()
    em.find(Article, {"author": ann.id})
    em.find(Article, {"author": {"name": "Zed"}})
    assert [line for line in log.sql() if not line.startswith("select")] == []
    # any Mapping is a filter, an OrderedDict too (it was taken for no filter to walk)
    ann.name = "Ola"
    by_ordered = em.find(Article, OrderedDict(author=OrderedDict(name="Ola")))
    assert [a.title for a in by_ordered] == ["one", "two"]


def test_a_reference_pointed_at_a_new_entity(rel, log):
    _, ann, _, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    art = em.get_reference(Article, a1.id)
    art.author = Author(name="via reference")
    em.flush()
    assert art.author.id is not None
    assert rows(rel, "select author_id from `article` where id = ?", (a1.id,)) == [
        (art.author.id,)
    ]
    log.clear()
    em.flush()
    assert log.sql() == []


def test_rollback_of_a_cycle_written_with_a_later_update(rel):
    em = rel.em.fork()
    a = Category(name="a")
    b = Category(name="b", parent=a)
    a.parent = b
    with pytest.raises(RuntimeError), em.transaction():
        em.persist([a, b]).flush()
        raise RuntimeError("undo")
    assert a.id is None and b.id is None and a.parent is b and b.parent is a
    assert rows(rel, "select count(*) from `category`") == [(0,)]
    em.persist([a, b]).flush()
    assert dict(rows(rel, "select name, parent_id from `category`")) == {"a": b.id, "b": a.id}


# -- random graphs of new entities ------------------------------------------------------------

_GRAPHS = st.tuples(
    st.lists(st.integers(-1, 5), min_size=1, max_size=6),  # category i -> parent index / None
    st.lists(st.integers(-1, 4), min_size=0, max_size=5),  # node i -> next index / the base
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=_GRAPHS)
def test_random_graphs_of_new_entities_are_written_as_built(rel, graph):
    """Whatever the references among new entities (chains, cycles, self-references; the
    nullable Category.parent and the NOT NULL Node.next), the flush writes exactly the object
    graph, or refuses a cycle of NOT NULL keys and writes nothing; a second flush writes
    nothing."""
    parents, nexts = graph
    execute(rel, "delete from `category`")
    execute(rel, "delete from `node`")
    execute(rel, "insert into `node` (id, name, next_id) values (1000, 'base', 1000)")
    em = rel.em.fork()
    base = em.get_reference(Node, 1000)
    cats = [Category(name=f"c{i}") for i in range(len(parents))]
    for cat, p in zip(cats, parents, strict=True):
        cat.parent = cats[p] if 0 <= p < len(cats) else None
    nodes = [Node(name=f"n{i}", next=None) for i in range(len(nexts))]
    for node, n in zip(nodes, nexts, strict=True):
        node.next = nodes[n] if 0 <= n < len(nodes) else base
    em.persist(cats + nodes)

    def cyclic(start):
        seen, node = set(), start
        while node is not base and id(node) not in seen:
            seen.add(id(node))
            node = node.next
        return node is not base

    if any(cyclic(n) for n in nodes):
        with pytest.raises(ValidationError, match="cycle of NOT NULL foreign keys"):
            em.flush()
        assert rows(rel, "select count(*) from `category`") == [(0,)]
        return
    em.flush()
    assert dict(rows(rel, "select id, parent_id from `category`")) == {
        c.id: (c.parent.id if c.parent else None) for c in cats
    }
    stored = dict(rows(rel, "select id, next_id from `node` where id <> 1000"))
    assert stored == {n.id: n.next.id for n in nodes}
    assert em.get_unit_of_work().compute_change_sets() == [], "snapshots hold the keys"


def test_entities_persisted_by_cascade_get_their_create_hooks(connect):
    from orm import EventSubscriber

    created = []

    class Spy(EventSubscriber):
        def get_subscribed_entities(self):
            return [Author, Team]

        def before_create(self, args):
            created.append(("before", type(args.entity).__name__, args.entity.id))

        def after_create(self, args):
            created.append(("after", type(args.entity).__name__, args.entity.id is not None))

    orm = connect(RELATED, subscribers=[Spy()])
    em = orm.em.fork()
    em.persist(Article(title="a", author=Author(name="b", team=Team(name="c")))).flush()
    assert sorted(created) == [
        ("after", "Author", True), ("after", "Team", True),
        ("before", "Author", None), ("before", "Team", None),
    ]


def test_populate_keeps_what_was_written_to_a_reference_and_fills_the_rest(rel):
    em = rel.em.fork()
    _, ann, *_ = seed(em)
    fresh = rel.em.fork(flush_mode=FlushMode.COMMIT)  # no flush before the query
    ref = fresh.get_reference(Author, ann.id)
    ref.email = "new@x.io"  # written while only the key was known
    articles = fresh.find(Article, {}, populate=["author"])
    assert {a.author for a in articles if a.author.name == "Ann"} == {ref}
    assert (ref.name, ref.email) == ("Ann", "new@x.io"), "the write wins, the rest is read"
    fresh.flush()
    assert rows(rel, "select name, email from author where id = ?", [ann.id]) == [
        ("Ann", "new@x.io")
    ]


def test_populate_leaves_the_garbage_collector_as_it_found_it(rel):
    import gc

    em = rel.em.fork()
    seed(em)
    fresh = rel.em.fork()
    assert gc.isenabled()
    fresh.find(Article, {}, populate=["author", "author.team"])
    assert gc.isenabled(), "paused while populating, resumed after"
    gc.disable()
    try:
        rel.em.fork().find(Article, {}, populate=["author"])
        assert not gc.isenabled(), "a collector the program paused stays paused"
    finally:
        gc.enable()
    with pytest.raises(ValidationError):
        fresh.populate(fresh.find(Article, {}), ["title"])
    assert gc.isenabled()


def test_a_reference_made_for_a_relation_gets_on_init_once_when_first_loaded(rel, rem):
    """A relation's value is an uninitialized reference the ORM created: its on_init fires
    when it is first filled (by populate, `init()` or a query), just before its on_load,
    and never twice; a `get_reference` fires it at once."""
    events = []

    class Hooks(EventSubscriber):
        def get_subscribed_entities(self) -> list:
            return [Author]

        def on_init(self, args: EventArgs) -> None:
            events.append(("on_init", args.entity.id))

        def on_load(self, args: EventArgs) -> None:
            events.append(("on_load", args.entity.id))

    _, ann, _, _, _ = seed(rem)
    rel.em.get_event_manager().register_subscriber(Hooks())
    reader = rel.em.fork()
    reader.find(Article, {"author": ann.id}, populate=["author"])
    assert events == [("on_init", ann.id), ("on_load", ann.id)]
    events.clear()
    reader = rel.em.fork()
    article = reader.find(Article, {"author": ann.id})[0]
    assert events == [], "a reference: created, not loaded yet"
    wrap(article.author).init()
    reader.find(Author, {})
    assert events[:2] == [("on_init", ann.id), ("on_load", ann.id)]
    assert events.count(("on_init", ann.id)) == 1
    events.clear()
    reader = rel.em.fork()
    ref = reader.get_reference(Author, ann.id)
    wrap(ref).init()
    assert events == [("on_init", ann.id), ("on_load", ann.id)]


def test_order_by_through_a_many_to_one(rem, log):
    """`{"author": {"name": "desc"}}` orders by the author's column (nested too), one
    statement, each article once; a collection or a column given a dict is refused."""
    _, ann, bob, a1, a2 = seed(rem)
    a3 = Article(title="three", author=bob)
    rem.persist(a3).flush()
    reader = rem.fork()
    log.clear()
    found = reader.find(Article, {}, order_by=[{"author": {"name": "desc"}}, {"id": "asc"}])
    assert [a.title for a in found] == ["three", "one", "two"]
    assert len(log.sql()) == 1
    found = reader.find(
        Article, {}, order_by={"author": {"team": {"name": QueryOrder.ASC_NULLS_FIRST}}, "id": "desc"}
    )
    assert [a.title for a in found] == ["three", "two", "one"]
    with pytest.raises(ValidationError, match=r"order_by on Article: title is not a relation; "
                       r"order by a column, or through a ManyToOne"):
        reader.find(Article, {}, order_by={"title": {"x": "asc"}})
    with pytest.raises(ValidationError, match=r"order_by on Article: author is given no column "
                       r"to order by; name one"):
        reader.find(Article, {}, order_by={"author": {}})
    with pytest.raises(ValidationError, match=r"order_by on Team: name is not a relation"):
        reader.find(Article, {}, order_by={"author": {"team": {"name": {"x": "asc"}}}})


def test_a_long_value_in_a_message_is_cut_between_properties_never_inside_a_quote():
    from orm.errors import _short

    class Shown:
        def __init__(self, text: str) -> None:
            self.text = text

        def __repr__(self) -> str:
            return self.text

    assert _short(Shown("Tag(id=2, label='b', articles=<Collection Tag.articles (not loaded)>)")) \
        == "Tag(id=2, label='b', ...)"
    assert _short(Shown("Tag(id=None, label='a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p')")) \
        == "Tag(id=None, ...)"
    assert _short(Shown("short")) == "short"



def test_a_new_child_of_a_parent_whose_key_changes_in_the_same_flush(rel, log):
    """The parent's key UPDATE runs before the child's INSERT, which references the new
    key (it ran after, and failed on the foreign key with advice to persist the parent
    first, on every retry)."""
    _, ann, _, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    article = em.find_one(Article, a1.id)
    article.id = 99
    em.persist(Comment(body="hi", article=article))
    author = em.find_one(Author, ann.id)
    author.id = 50
    em.persist(Article(title="three", author=author))
    em.flush()
    assert rows(rel, "select body, article_id from `comment`") == [("hi", 99)]
    assert rows(rel, "select title, author_id from `article` order by title") == [
        ("one", 50), ("three", 50), ("two", 50),
    ]  # fmt: skip
    assert em.get_unit_of_work().compute_change_sets() == []


def test_create_and_assign_refuse_nested_data_for_a_relation_naming_it(rel, log):
    """MikroORM's nested data (`{"author": {"name": ...}}`) is not taken: the relation is
    named, nothing changes (the error named the target's primary key, as if the dict were
    a key)."""
    _, ann, _, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    log.clear()
    with pytest.raises(ValidationError) as info:
        em.create(Article, {"title": "t", "author": {"name": "Cy"}})
    assert str(info.value).startswith(
        "Article.author takes an Author entity or its primary key, not a dict of data: make "
        "the Author first (em.create(Author, {...}), or find it) and give that."
    )
    assert info.value.property == "author"
    article = em.find_one(Article, a1.id)
    with pytest.raises(ValidationError, match=r"Article\.reviewer takes an Author entity"):
        em.assign(article, {"title": "changed", "reviewer": {"id": ann.id}})
    with pytest.raises(ValidationError, match=r"Article\.reviewer takes an Author entity"):
        em.assign(article, {"reviewer": OrderedDict(id=ann.id)})  # any Mapping
    assert article.title == "one"
    em.flush()
    assert [line for line in log.sql() if not line.startswith("select")] == []


def test_a_new_child_of_a_parent_whose_key_and_author_change_in_the_same_flush(rel, log):
    """The parent's key changes and its author becomes a new one, and a new comment points
    at it: the key UPDATE waited for the new author's key, so it ran after the comment's
    INSERT, which failed on the foreign key (on every retry). The key and the other
    columns are written before the inserts, the new author's key after its insert."""
    _, ann, bob, a1, a2 = seed(rel.em.fork())
    em = rel.em.fork()
    article = em.find_one(Article, a1.id)
    other = em.find_one(Article, a2.id)
    article.id = 99
    article.title = "renamed"
    article.author = Author(name="Cyd")
    other.id = 98  # a key change referencing no new entity, in the same statement group
    em.persist(Comment(body="hi", article=article))
    em.flush()
    cyd = article.author
    assert rows(rel, "select body, article_id from `comment`") == [("hi", 99)]
    assert rows(rel, "select id, title, author_id from `article` order by id") == [
        (98, "two", ann.id), (99, "renamed", cyd.id),
    ]  # fmt: skip
    assert em.get_unit_of_work().compute_change_sets() == []
    assert em.find_one(Article, 99) is article and em.find_one(Article, 98) is other
    article.title = "again"
    em.flush()
    assert rows(rel, "select title from `article` where id = 99") == [("again",)]


def test_populate_of_a_relation_left_out_of_fields_reads_its_column(rel, log):
    """`fields=["title"], populate=["author"]`: the author's column is read too (without it
    the populate found no key and silently loaded nothing: `article.author` was absent)."""
    _, ann, bob, a1, a2 = seed(rel.em.fork())
    em = rel.em.fork()
    found = em.find(Article, {}, fields=["title"], populate=["author", "reviewer"],
                    order_by={"id": "asc"})
    assert [(a.title, a.author.name) for a in found] == [("one", "Ann"), ("two", "Ann")]
    assert [a.reviewer and a.reviewer.name for a in found] == [None, "Bob"]
    one = em.fork().find_one(Article, a1.id, fields=["title"], populate=["*"])
    assert one.author.name == "Ann" and one.author.team.name == "core"


def test_a_versioned_parent_whose_key_and_author_change_with_a_new_child(connect):
    """The same on a versioned table: the key UPDATE (version checked and counted once)
    runs before the child's insert, the new author's key is written after its insert.
    The update waited whole for the author's key, and the child's insert failed on the
    foreign key on every flush."""

    @entity()
    class Writer:
        id: int = PrimaryKey()
        name: str

    @entity()
    class Paper:
        id: int = PrimaryKey()
        title: str
        writer: Writer = ManyToOne()
        version: int = Property(version=True, default=1)

    @entity()
    class Review:
        id: int = PrimaryKey()
        body: str
        paper: Paper = ManyToOne()

    with connect([Writer, Paper, Review]) as o:
        em = o.em.fork()
        paper = Paper(title="p", writer=Writer(name="ann"))
        em.persist(paper).flush()
        paper.id = 500
        paper.writer = Writer(name="bob")
        em.persist(Review(body="r", paper=paper))
        em.flush()
        bob = paper.writer
        assert rows(o, "select id, writer_id, version from paper") == [(500, bob.id, 2)]
        assert rows(o, "select paper_id from review") == [(500,)]
        assert paper.version == 2 and em.get_unit_of_work().compute_change_sets() == []
        other = o.em.fork()
        stale = other.find_one_or_fail(Paper, 500)
        paper.title = "again"
        em.flush()
        assert rows(o, "select title, version from paper") == [("again", 3)]
        stale.title = "stale"  # read at version 2: the optimistic lock still holds
        with pytest.raises(OptimisticLockError):
            other.flush()


def test_a_detached_reference_persisted_again_is_named_as_one(rel):
    """An article loaded with its author as a reference, detached by `em.clear()` and
    persisted again: the cascade takes the author, holding only its key, for a new one.
    The error said only "Invalid value for Author.name: expected str, got None"; it says
    what the author is and how to use its row instead."""
    _, ann, _, a1, _ = seed(rel.em.fork())
    em = rel.em.fork()
    article = em.find_one_or_fail(Article, a1.id)
    em.clear()
    em.persist(article)
    with pytest.raises(ValidationError) as raised:
        em.flush()
    assert str(raised.value).startswith(
        "Invalid value for Author.name: expected str, got None, but the property is not "
        f"nullable; this Author holds only its key {ann.id}: a reference to a stored row, "
        "detached (by em.clear() or from another EntityManager), persisted as a new one. Use "
        "the row through this EntityManager instead (em.get_reference(Author, key) or "
        "em.find_one)."
    )
