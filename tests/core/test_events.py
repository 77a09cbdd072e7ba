"""Events and lifecycle hooks (SPEC section 12, docs/events.md): entity hooks and
subscribers run at the documented moments, what before_* handlers change is written by the
same flush, a failing handler rolls the flush back with nothing written and the Unit of Work
retryable, and entity types nobody listens to pay nothing."""

from __future__ import annotations

import sys
import threading
import uuid

import pytest

from orm import (
    ORM,
    EntitySchema,
    EventArgs,
    EventSubscriber,
    FlushEventArgs,
    MetadataError,
    PrimaryKey,
    Property,
    TransactionEventArgs,
    UniqueConstraintViolationException,
    ValidationError,
    after_create,
    after_delete,
    after_update,
    after_upsert,
    before_create,
    before_delete,
    before_update,
    before_upsert,
    define_config,
    entity,
    on_init,
    on_load,
    t,
    wrap,
)
from tests.databases import rows

#: what the hooks and subscribers saw, in order: (event, entity class name, name)
EVENTS: list[tuple] = []
#: "Class.event" of the hooks that raise Boom (set by a test)
FAILING: set[str] = set()


class Boom(Exception):
    pass


def note(event: str, entity: object, *extra: object) -> None:
    if isinstance(entity, dict):
        name = entity.get("name")
    else:
        try:
            name = entity.name  # type: ignore[attr-defined]
        except ValidationError:  # an uninitialized reference
            name = None
    EVENTS.append((event, type(entity).__name__, name, *extra))
    if f"{type(entity).__name__}.{event}" in FAILING:
        raise Boom(f"{type(entity).__name__}.{event} failed")


@pytest.fixture(autouse=True)
def _clean():
    EVENTS.clear()
    FAILING.clear()
    yield
    EVENTS.clear()
    FAILING.clear()


class Slugged:
    """A plain base class (no entity) whose hooks its entity subclasses inherit."""

    @before_create
    def make_slug(self) -> None:
        note("before_create", self)
        self.slug = self.name.lower().replace(" ", "-")

    @after_create()
    def created(self) -> None:
        note("after_create", self, self.id)


@entity()
class Author(Slugged):
    id: int = PrimaryKey()
    name: str = ""
    slug: str = ""
    edits: int = 0

    @before_update
    def count_edit(self, args: EventArgs) -> None:
        note("before_update", self, dict(args.change_set.payload))
        self.edits += 1

    @after_update
    def updated(self) -> None:
        note("after_update", self)

    @before_delete
    def removing(self) -> None:
        note("before_delete", self)

    @after_delete
    def removed(self) -> None:
        note("after_delete", self)

    @on_init
    def initialized(self) -> None:
        note("on_init", self)

    @on_load
    def loaded(self) -> None:
        note("on_load", self)


@entity()
class Post(Slugged):
    id: int = PrimaryKey()
    name: str
    slug: str = ""

    @before_create
    def make_slug(self) -> None:  # overrides the base's: runs instead of it, once
        note("before_create", self)
        self.slug = "post-" + self.name.lower()

    @before_update
    def touched(self) -> None:
        note("before_update", self)


@entity()
class Plain:
    """Nobody listens to it (unless a test's subscriber does)."""

    id: int = PrimaryKey()
    name: str
    n: int = 0


@entity()
class Note:
    id: int = PrimaryKey()
    name: str = ""
    message: str = ""


@entity()
class Keyed:
    """Upserts (a unique name) with hooks."""

    id: int = PrimaryKey()
    name: str = Property(unique=True, default="")
    score: int = 0

    @before_upsert
    def before(self) -> None:
        note("before_upsert", self)
        self.score += 100

    @after_upsert
    def after(self) -> None:
        note("after_upsert", self, self.id)


@entity()
class Doc:
    """A JSON document changed in place is an update too."""

    id: int = PrimaryKey()
    data: dict = Property(default_factory=dict)
    revision: int = 0

    @before_update
    def bump(self) -> None:
        self.revision += 1


ENTITIES = [Author, Post, Plain, Note, Keyed, Doc]


class Recorder(EventSubscriber):
    """Notes every event it gets."""

    def __init__(self, entities: list | None = None) -> None:
        self.entities = entities

    def get_subscribed_entities(self) -> list | None:
        return self.entities

    def before_create(self, args: EventArgs) -> None:
        note("sub.before_create", args.entity)

    def after_create(self, args: EventArgs) -> None:
        note("sub.after_create", args.entity)

    def before_update(self, args: EventArgs) -> None:
        note("sub.before_update", args.entity)

    def after_update(self, args: EventArgs) -> None:
        note("sub.after_update", args.entity)

    def before_delete(self, args: EventArgs) -> None:
        note("sub.before_delete", args.entity)

    def after_delete(self, args: EventArgs) -> None:
        note("sub.after_delete", args.entity)

    def before_flush(self, args: FlushEventArgs) -> None:
        EVENTS.append(("before_flush",))

    def on_flush(self, args: FlushEventArgs) -> None:
        EVENTS.append(("on_flush",))

    def after_flush(self, args: FlushEventArgs) -> None:
        EVENTS.append(("after_flush",))
        if "after_flush" in FAILING:
            raise Boom("after_flush failed")

    def before_transaction_start(self, args: TransactionEventArgs) -> None:
        EVENTS.append(("before_transaction_start",))

    def after_transaction_commit(self, args: TransactionEventArgs) -> None:
        EVENTS.append(("after_transaction_commit",))

    def after_transaction_rollback(self, args: TransactionEventArgs) -> None:
        EVENTS.append(("after_transaction_rollback",))


class AuditOnFlush(EventSubscriber):
    """on_flush: one Note per Author written, in the same flush."""

    def on_flush(self, args: FlushEventArgs) -> None:
        for cs in args.uow.compute_change_sets():
            if cs.name == "Author":
                args.em.persist(Note(message=f"{cs.type} {cs.entity.name}"))


@pytest.fixture
def open_orm(connect, log):
    def make(*subscribers: EventSubscriber):
        instance = connect(ENTITIES, subscribers=list(subscribers), debug=["query"],
                           logger=log.append)
        log.clear()
        return instance

    return make


def table(orm, name: str, columns: str = "name") -> list[tuple]:
    return rows(orm, f"select {columns} from `{name}` order by id")


def entity_events() -> list[tuple]:
    return [e for e in EVENTS if e[0] not in ("on_init", "on_load")]


# -- before_* changes are written by the same flush -------------------------------------------


def test_a_before_create_value_is_in_the_insert(open_orm, log):
    orm = open_orm()
    em = orm.em.fork()
    em.persist(Author(name="Ada Lovelace")).flush()
    inserts = [s for s in log.writes() if s.startswith("insert")]
    assert len(inserts) == 1 and "'ada-lovelace'" in inserts[0]
    assert table(orm, "author", "name, slug") == [("Ada Lovelace", "ada-lovelace")]


def test_a_before_update_that_changes_another_column_writes_it_in_the_same_update(
    open_orm, log
):
    orm = open_orm()
    em = orm.em.fork()
    ada = Author(name="Ada")
    em.persist(ada).flush()
    ada.name = "Ada L"
    log.clear()
    em.flush()
    updates = [s for s in log.writes() if s.startswith("update")]
    assert len(updates) == 1, updates
    assert "'Ada L'" in updates[0] and "= 1" in updates[0]  # edits = 1, one statement
    assert ("before_update", "Author", "Ada L", {"name": "Ada L"}) in EVENTS
    assert table(orm, "author", "name, edits") == [("Ada L", 1)]
    log.clear()
    em.flush()
    assert log.writes() == [], "the hook's change was stored: nothing left to write"


def test_a_json_document_changed_in_place_runs_before_update(open_orm, log):
    orm = open_orm()
    em = orm.em.fork()
    doc, other = Doc(data={"a": 1}), Doc()
    em.persist([doc, other]).flush()
    doc.data["a"] = 2  # no assignment: only the comparison with the snapshot sees it
    log.clear()
    em.flush()
    assert [s for s in log.writes() if s.startswith("update")] != []
    assert (doc.revision, other.revision) == (1, 0)
    stored = rows(orm, "select revision from `doc` order by id")
    assert stored == [(1,), (0,)]


def test_a_before_update_runs_only_for_entities_that_changed(open_orm):
    orm = open_orm()
    em = orm.em.fork()
    a, b = Author(name="a"), Author(name="b")
    em.persist([a, b]).flush()
    EVENTS.clear()
    b.name = "b2"
    em.flush()
    assert [e[:3] for e in EVENTS if e[0] == "before_update"] == [("before_update", "Author", "b2")]
    assert table(orm, "author", "name, edits") == [("a", 0), ("b2", 1)]


# -- order ------------------------------------------------------------------------------------


def test_hooks_and_subscribers_run_in_flush_order_across_entities_and_types(open_orm, log):
    orm = open_orm(Recorder())
    em = orm.em.fork()
    old = Author(name="old")
    gone = Post(name="gone")
    em.persist([old, gone]).flush()
    EVENTS.clear()
    a1, p1, a2 = Author(name="a1"), Post(name="p1"), Author(name="a2")
    em.persist([a1, p1, a2])
    old.name = "old2"
    em.remove(gone)
    log.clear()
    em.flush()
    assert entity_events() == [
        ("before_flush",),
        ("on_flush",),
        # creates: per type in the order first persisted, hooks then subscribers per entity
        ("before_create", "Author", "a1"), ("sub.before_create", "Author", "a1"),
        ("before_create", "Author", "a2"), ("sub.before_create", "Author", "a2"),
        ("before_create", "Post", "p1"), ("sub.before_create", "Post", "p1"),
        ("before_update", "Author", "old2", {"name": "old2"}),
        ("sub.before_update", "Author", "old2"),
        ("sub.before_delete", "Post", "gone"),  # Post has no delete hooks of its own
        ("before_transaction_start",),
        # the statements ran; the entities have their keys
        ("after_create", "Author", "a1", a1.id), ("sub.after_create", "Author", "a1"),
        ("after_create", "Author", "a2", a2.id), ("sub.after_create", "Author", "a2"),
        ("after_create", "Post", "p1", p1.id), ("sub.after_create", "Post", "p1"),
        ("after_update", "Author", "old2"), ("sub.after_update", "Author", "old2"),
        ("sub.after_delete", "Post", "gone"),
        ("after_flush",),
        ("after_transaction_commit",),
    ]  # fmt: skip
    writes = log.writes()
    assert writes[0] == "begin" and writes[-1] == "commit"
    assert a1.id is not None and a2.id is not None and p1.id is not None


def test_after_hooks_see_keys_and_run_before_the_commit(open_orm, log):
    seen = []

    class Check(EventSubscriber):
        def after_create(self, args: EventArgs) -> None:
            seen.append((args.entity.id, args.change_set.type, args.change_set.payload["name"],
                         wrap(args.entity).is_managed(), log.writes()[-1]))

    orm = open_orm(Check())
    em = orm.em.fork()
    p = Post(name="x")
    em.persist(p).flush()
    (key, kind, name, managed, last) = seen[0]
    assert (key, kind, name, managed) == (p.id, "create", "x", True)
    assert last.startswith("insert"), "inside the transaction: no commit yet"
    assert log.writes()[-1] == "commit"


def test_hooks_are_inherited_and_an_override_runs_instead(open_orm):
    orm = open_orm()
    em = orm.em.fork()
    post = Post(name="Hello")
    em.persist(post).flush()
    assert post.slug == "post-hello", "the subclass's make_slug, not the base's"
    assert [e[:2] for e in EVENTS] == [("before_create", "Post"), ("after_create", "Post")]
    meta = orm.em.get_metadata(Author)
    assert [fn.__name__ for fn, _ in meta.hooks["before_create"]] == ["make_slug"]
    assert [fn.__name__ for fn, _ in meta.hooks["after_create"]] == ["created"]


# -- on_flush ---------------------------------------------------------------------------------


def test_entities_persisted_in_on_flush_join_the_same_flush(open_orm, log):
    orm = open_orm(AuditOnFlush())
    em = orm.em.fork()
    ada = Author(name="Ada")
    em.persist([ada, Plain(name="p")])
    em.flush()
    writes = log.writes()
    assert writes.count("begin") == 1 and writes.count("commit") == 1
    assert table(orm, "note", "message") == [("create Ada",)]
    ada.name = "Ada L"
    em.flush()
    assert table(orm, "note", "message") == [("create Ada",), ("update Ada L",)]
    assert em.get_unit_of_work().get_persist_stack() == []


# -- failures ---------------------------------------------------------------------------------


def _released(orm) -> None:
    """No transaction left open: another EntityManager writes and reads at once."""
    assert not orm.connection.in_transaction
    other = orm.em.fork()
    other.persist(Plain(name="probe")).flush()
    other.remove(other.find_one_or_fail(Plain, {"name": "probe"})).flush()


def test_an_exception_in_before_create_writes_nothing_and_the_flush_can_be_retried(open_orm):
    orm = open_orm(AuditOnFlush())
    em = orm.em.fork()
    ok, bad = Author(name="Ok"), Post(name="Bad")
    em.persist([Plain(name="plain"), ok, bad])
    FAILING.add("Post.before_create")
    with pytest.raises(Boom, match="Post.before_create failed"):
        em.flush()
    for name in ("author", "post", "plain", "note"):
        assert table(orm, name) == [], name
    assert ok.slug == "", "the value the hook assigned is put back"
    assert ok.id is None and len(em.get_unit_of_work().get_persist_stack()) == 3
    _released(orm)
    FAILING.clear()
    EVENTS.clear()
    em.flush()
    assert table(orm, "author", "name, slug") == [("Ok", "ok")]
    assert table(orm, "post", "name, slug") == [("Bad", "post-bad")]
    assert table(orm, "plain") == [("plain",)]
    assert table(orm, "note", "message") == [("create Ok",)], "once: the retry's on_flush"


@pytest.mark.parametrize("where", ["Author.before_create", "Author.after_create"])
@pytest.mark.parametrize("by", ["flush", "query"])
def test_a_handlers_exception_says_nothing_was_written_and_which_flush(open_orm, where, by):
    """The application's own exception keeps its type and message; a note says that the flush
    wrote nothing, and for the flush a query ran first, that it was that one."""
    orm = open_orm()
    em = orm.em.fork()
    em.persist(Author(name="new"))
    FAILING.add(where)
    with pytest.raises(Boom) as caught:
        if by == "flush":
            em.flush()
        else:
            em.find(Author, {"name": "new"})
    assert str(caught.value) == f"{where} failed", "its message as the handler raised it"
    notes = getattr(caught.value, "__notes__", [])
    assert notes[0] == "Nothing of this flush was written; fix the cause and call flush() again."
    if by == "query":
        assert notes[1].startswith("This was the flush FlushMode.AUTO runs before a query")
    assert len(notes) == (2 if by == "query" else 1)
    assert table(orm, "author") == []


@pytest.mark.parametrize("where", ["after_flush", "Author.after_create", "Author.after_update"])
def test_an_exception_after_the_statements_rolls_the_flush_back(open_orm, where):
    orm = open_orm(Recorder(), AuditOnFlush())
    em = orm.em.fork()
    old = Author(name="old")
    em.persist(old).flush()
    old.name = "changed"
    new = Author(name="new")
    em.persist(new)
    EVENTS.clear()
    FAILING.add(where)
    with pytest.raises(Boom):
        em.flush()
    assert ("after_transaction_rollback",) in EVENTS
    assert ("after_transaction_commit",) not in EVENTS
    assert table(orm, "author", "name, edits") == [("old", 0)], "nothing written"
    assert table(orm, "note", "message") == [("create old",)]
    assert new.id is None and not wrap(new).is_managed(), "new again"
    assert old.edits == 0 and old.name == "changed", "the hook's value back; the user's kept"
    uow = em.get_unit_of_work()
    assert uow.get_persist_stack() == [new], "the Note of the failed on_flush is dropped"
    FAILING.clear()
    _released(orm)
    em.flush()
    assert table(orm, "author", "name, edits") == [("changed", 1), ("new", 0)]
    assert table(orm, "note", "message") == [
        ("create old",), ("create new",), ("update changed",)
    ]
    em.flush()
    assert len(table(orm, "author")) == 2


def test_an_exception_in_a_subscriber_writes_nothing(open_orm):
    class Refuse(EventSubscriber):
        def get_subscribed_entities(self) -> list:
            return [Plain]

        def before_update(self, args: EventArgs) -> None:
            if args.entity.n < 0:
                raise ValueError("n must not be negative")

    orm = open_orm(Refuse())
    em = orm.em.fork()
    p, q = Plain(name="p"), Plain(name="q")
    em.persist([p, q]).flush()
    p.n, q.n = 5, -1
    with pytest.raises(ValueError, match="negative"):
        em.flush()
    assert table(orm, "plain", "name, n") == [("p", 0), ("q", 0)]
    _released(orm)
    q.n = 1
    em.flush()
    assert table(orm, "plain", "name, n") == [("p", 5), ("q", 1)]


def test_a_failing_statement_after_the_hooks_ran_rolls_their_values_back(open_orm):
    orm = open_orm()
    em = orm.em.fork()
    em.persist(Keyed(name="taken")).flush()
    a = Author(name="A")
    dup = Keyed(name="taken")
    em.persist([a, dup])
    with pytest.raises(UniqueConstraintViolationException, match="Nothing of this flush"):
        em.flush()
    assert a.slug == "" and a.id is None
    assert table(orm, "author") == []
    dup.name = "free"
    em.flush()
    assert table(orm, "author", "name, slug") == [("A", "a")]


def test_a_flush_inside_a_handler_is_refused(open_orm):
    class Nested(EventSubscriber):
        def after_flush(self, args: FlushEventArgs) -> None:
            args.em.flush()

    orm = open_orm(Nested())
    em = orm.em.fork()
    em.persist(Plain(name="x"))
    with pytest.raises(ValidationError, match="while this EntityManager is flushing"):
        em.flush()
    assert table(orm, "plain") == []


def test_queries_in_hooks_do_not_flush(open_orm, log):
    found = []

    class Lookup(EventSubscriber):
        def get_subscribed_entities(self) -> list:
            return [Plain]

        def before_create(self, args: EventArgs) -> None:
            found.append(len(args.em.find(Plain, {})))

    orm = open_orm(Lookup())
    em = orm.em.fork()
    em.persist([Plain(name="a"), Plain(name="b")]).flush()
    assert found == [0, 0], "the pending entities were not flushed by the query"
    assert table(orm, "plain") == [("a",), ("b",)]


# -- subscribers ------------------------------------------------------------------------------


def test_subscribers_only_get_the_entities_they_subscribed_to(open_orm):
    only_posts = Recorder([Post])
    orm = open_orm(only_posts)
    em = orm.em.fork()
    em.persist([Author(name="a"), Post(name="p"), Plain(name="x")]).flush()
    subscribed = {e[1] for e in EVENTS if e[0].startswith("sub.")}
    assert subscribed == {"Post"}
    assert ("before_flush",) in EVENTS and ("after_flush",) in EVENTS, "flush events: all"


def test_a_subscriber_can_be_registered_later_and_gets_every_entity_by_default(open_orm):
    orm = open_orm()
    em = orm.em.fork()
    em.persist(Plain(name="before")).flush()
    assert EVENTS == []
    recorder = Recorder()
    orm.em.get_event_manager().register_subscriber(recorder)
    orm.em.get_event_manager().register_subscriber(recorder)  # once
    assert orm.em.get_event_manager().get_subscribers() == [recorder]
    em.persist(Plain(name="after")).flush()
    assert [e for e in EVENTS if e[0].startswith("sub.")] == [
        ("sub.before_create", "Plain", "after"), ("sub.after_create", "Plain", "after")
    ]


def test_an_orm_nobody_listens_to_gets_its_event_manager_on_first_use(connect):
    """Entities without hooks and no subscriber in the config: the EventManager is created
    when asked for, and a subscriber registered then reaches the EntityManagers forked
    before it, for entity, flush and transaction events alike."""
    orm = connect([Plain, Note])
    em = orm.em.fork()
    with em.transaction() as tx:
        tx.persist(Plain(name="before"))
    assert EVENTS == []
    recorder = Recorder()
    events = em.get_event_manager()
    assert events is orm.events and events is orm.em.get_event_manager()
    events.register_subscriber(recorder)
    em.persist(Plain(name="after")).flush()
    assert [e for e in EVENTS if e[0].startswith("sub.")] == [
        ("sub.before_create", "Plain", "after"), ("sub.after_create", "Plain", "after")
    ]
    assert any(e[0] == "after_flush" for e in EVENTS)
    EVENTS.clear()
    with em.transaction() as tx:
        tx.persist(Plain(name="in a transaction"))
    assert _tx_events() == ["before_transaction_start", "after_transaction_commit"]


def test_subscribers_registered_by_several_threads_at_once_all_get_their_events():
    """Threads share one ORM: four that make its first use of `orm.events` at the same moment
    (the manager is created then) each register a subscriber, and every one of them is
    kept and called; before the creation and the registrations were serialized, one
    thread's manager or listener table replaced another's and a subscriber was silently
    lost (in about 2% and 18% of the rounds here)."""
    lost = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for round_ in range(300):
            called: list[str] = []

            class Audit(EventSubscriber):
                def __init__(self, tag: str, called: list[str]) -> None:
                    self.tag = tag
                    self.called = called

                def after_create(self, args: EventArgs) -> None:
                    self.called.append(self.tag)

            orm = ORM.init(db_name=":memory:", entities=[Plain])
            try:
                orm.schema.create_schema()
                barrier = threading.Barrier(4)

                def register(audit: Audit, orm=orm, barrier=barrier) -> None:
                    em = orm.em.fork()
                    barrier.wait()
                    em.get_event_manager().register_subscriber(audit)

                threads = [
                    threading.Thread(target=register, args=(Audit(tag, called),))
                    for tag in "abcd"
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                orm.em.fork().persist(Plain(name="x")).flush()
                kept = sorted(s.tag for s in orm.events.get_subscribers())
                if kept != list("abcd") or sorted(called) != list("abcd"):
                    lost.append((round_, kept, sorted(called)))
            finally:
                orm.close()
    finally:
        sys.setswitchinterval(interval)
    assert lost == []


def test_a_subscriber_may_register_another_while_it_is_registered(open_orm):
    """Registrations hold a lock (see the test above); a subscriber's own
    `get_subscribed_entities()` registering another one must not wait on it forever."""
    orm = open_orm()

    class Inner(EventSubscriber):
        def after_create(self, args: EventArgs) -> None:
            note("sub.inner", args.entity)

    class Outer(EventSubscriber):
        def get_subscribed_entities(self) -> list:
            orm.events.register_subscriber(Inner())
            return [Plain]

        def after_create(self, args: EventArgs) -> None:
            note("sub.outer", args.entity)

    registering = threading.Thread(
        target=orm.events.register_subscriber, args=(Outer(),), daemon=True
    )
    registering.start()
    registering.join(timeout=30)
    assert not registering.is_alive(), "register_subscriber() deadlocked"
    orm.em.fork().persist(Plain(name="p")).flush()
    assert sorted(e[0] for e in EVENTS if e[0].startswith("sub.")) == ["sub.inner", "sub.outer"]


def test_event_args_carry_the_entity_manager_and_the_change_set(open_orm):
    got: list[EventArgs] = []

    class Keep(EventSubscriber):
        def get_subscribed_entities(self) -> list:
            return [Plain]

        def before_create(self, args: EventArgs) -> None:
            got.append(args)

        def after_update(self, args: EventArgs) -> None:
            got.append(args)

        def after_delete(self, args: EventArgs) -> None:
            got.append(args)

    orm = open_orm(Keep())
    em = orm.em.fork()
    p = Plain(name="p")
    em.persist(p).flush()
    p.n = 3
    em.flush()
    em.remove(p).flush()
    assert [a.em for a in got] == [em, em, em] and [a.entity for a in got] == [p, p, p]
    assert [(a.change_set.type, a.change_set.payload) for a in got] == [
        ("create", {"name": "p", "n": 0}), ("update", {"n": 3}), ("delete", {})
    ]


def test_subscriber_registration_mistakes_are_validation_errors(open_orm):
    orm = open_orm()
    events = orm.em.get_event_manager()
    with pytest.raises(ValidationError, match=r"instance.*register Recorder\(\)"):
        events.register_subscriber(Recorder)  # type: ignore[arg-type]

    class Camel(EventSubscriber):
        def beforeCreate(self, args: EventArgs) -> None:  # noqa: N802
            pass

    with pytest.raises(ValidationError, match="beforeCreate -> before_create"):
        events.register_subscriber(Camel())

    class Nothing(EventSubscriber):
        def before_craete(self, args: EventArgs) -> None:
            pass

    with pytest.raises(ValidationError, match="handles no event"):
        events.register_subscriber(Nothing())
    with pytest.raises(ValidationError, match="'Nope', which is not an entity"):
        events.register_subscriber(Recorder(["Nope"]))

    class NotMapped:  # a plain class (a DTO): no entity of this ORM is one
        pass

    with pytest.raises(ValidationError, match="NotMapped.*which is not an entity of this ORM"):
        events.register_subscriber(Recorder([NotMapped]))
    assert events.get_subscribers() == []


def test_the_subscribers_option_takes_a_list_of_instances():
    with pytest.raises(ValidationError, match="subscribers must be a list"):
        define_config(subscribers=Recorder())
    with pytest.raises(ValidationError, match=r"register Recorder\(\)"):
        ORM.init(db_name=":memory:", entities=ENTITIES, subscribers=[Recorder])


def test_a_hook_that_cannot_be_called_is_a_metadata_error(connect):
    @entity()
    class BadHook:
        id: int = PrimaryKey()

        @before_create
        def needs_two(self, a, b) -> None:  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(MetadataError, match=r"BadHook.needs_two is a @before_create hook"):
        connect([BadHook])
    with pytest.raises(TypeError, match="marks an entity method"):
        before_create(staticmethod(lambda: None))  # type: ignore[call-overload]


# -- transaction events -----------------------------------------------------------------------


def _tx_events() -> list[str]:
    return [e[0] for e in EVENTS if "transaction" in e[0]]


def test_transaction_events_on_commit_and_rollback(open_orm):
    orm = open_orm(Recorder([Post]))
    em = orm.em.fork()
    with em.transaction() as tx:
        tx.persist(Plain(name="in"))
        tx.flush()  # a savepoint inside: no transaction events of its own
    assert _tx_events() == ["before_transaction_start", "after_transaction_commit"]
    EVENTS.clear()
    with pytest.raises(Boom):
        with em.transaction() as tx:
            tx.persist(Plain(name="out"))
            raise Boom
    assert _tx_events() == ["before_transaction_start", "after_transaction_rollback"]
    EVENTS.clear()
    em.transactional(lambda tx: tx.persist(Plain(name="fn")))
    assert _tx_events() == ["before_transaction_start", "after_transaction_commit"]
    EVENTS.clear()
    em.persist(Plain(name="own")).flush()  # a flush's own transaction
    assert _tx_events() == ["before_transaction_start", "after_transaction_commit"]
    em.persist(Keyed(name="k")).flush()
    em.persist(Keyed(name="k"))
    EVENTS.clear()
    with pytest.raises(UniqueConstraintViolationException):
        em.flush()  # a flush's own transaction, rolled back
    assert _tx_events() == ["before_transaction_start", "after_transaction_rollback"]
    assert table(orm, "plain") == [("in",), ("fn",), ("own",)]


def test_the_transaction_event_args_name_the_transactions_entity_manager(open_orm):
    seen = []

    class Tx(EventSubscriber):
        def before_transaction_start(self, args: TransactionEventArgs) -> None:
            seen.append(args.em)

    orm = open_orm(Tx())
    em = orm.em.fork()
    with em.transaction() as tx:
        pass
    em.persist(Plain(name="x")).flush()
    assert seen == [tx, em]


# -- on_init / on_load ------------------------------------------------------------------------


def test_on_init_and_on_load(open_orm):
    orm = open_orm()
    em = orm.em.fork()
    em.persist([Author(name="a"), Author(name="b")]).flush()
    assert [e for e in EVENTS if e[0] in ("on_init", "on_load")] == [], "not for new entities"
    reader = orm.em.fork()
    found = reader.find(Author, {}, order_by={"id": "asc"})
    assert [e[:3] for e in EVENTS if e[0] in ("on_init", "on_load")] == [
        ("on_init", "Author", "a"), ("on_init", "Author", "b"),
        ("on_load", "Author", "a"), ("on_load", "Author", "b"),
    ]  # fmt: skip
    EVENTS.clear()
    assert reader.find(Author, {}) == found and reader.find_one(Author, found[0].id) is found[0]
    assert EVENTS == [], "entities already loaded are returned untouched"
    reader.refresh(found[0])
    assert [e[:2] for e in EVENTS] == [("on_load", "Author")]
    EVENTS.clear()
    ref = orm.em.fork().get_reference(Author, found[1].id)
    assert [e[0] for e in EVENTS] == ["on_init"], "a reference: created, not loaded"
    EVENTS.clear()
    wrap(ref).init()
    assert [e[:3] for e in EVENTS] == [("on_load", "Author", "b")]
    EVENTS.clear()
    em.create(Author, {"name": "c"}, persist=False)
    assert [e[:3] for e in EVENTS] == [("on_init", "Author", "c")]
    EVENTS.clear()
    orm.em.fork().find(Author, {"name": "a"}, disable_identity_map=True)
    assert [e[:3] for e in EVENTS] == [("on_init", "Author", "a"), ("on_load", "Author", "a")]


def test_on_load_subscriber_for_partial_loads(open_orm):
    class Loads(EventSubscriber):
        def get_subscribed_entities(self) -> list:
            return [Plain]

        def on_load(self, args: EventArgs) -> None:
            EVENTS.append(("sub.on_load", args.entity.id))

    orm = open_orm(Loads())
    orm.em.fork().persist([Plain(name="x"), Plain(name="y")]).flush()
    reader = orm.em.fork()
    reader.find(Plain, {}, fields=["name"])
    reader.find(Plain, {})  # completes the partial entities
    reader.find(Plain, {})  # already complete
    assert EVENTS == [("sub.on_load", 1), ("sub.on_load", 2)] * 2


# -- upsert -----------------------------------------------------------------------------------


def test_upsert_hooks(open_orm):
    data_seen = []

    class Data(EventSubscriber):
        def get_subscribed_entities(self) -> list:
            return [Keyed]

        def before_upsert(self, args: EventArgs) -> None:
            if isinstance(args.entity, dict):
                data_seen.append(dict(args.entity))
                args.entity["score"] = 7

    orm = open_orm(Data())
    em = orm.em.fork()
    k = Keyed(name="k")
    em.upsert(k)
    assert table(orm, "keyed", "name, score") == [("k", 100)], "before_upsert's value written"
    assert [e[:2] for e in EVENTS] == [("before_upsert", "Keyed"), ("after_upsert", "Keyed")]
    assert EVENTS[-1][3] == k.id
    EVENTS.clear()
    em.upsert(Keyed, {"name": "k", "score": 1})
    assert data_seen == [{"name": "k", "score": 1}]
    assert table(orm, "keyed", "name, score") == [("k", 7)]
    assert [e[0] for e in EVENTS] == ["after_upsert"], "no instance yet for the entity hook"


def test_an_exception_in_after_upsert_rolls_the_upsert_back(open_orm):
    orm = open_orm()
    em = orm.em.fork()
    FAILING.add("Keyed.after_upsert")
    k = Keyed(name="k")
    with pytest.raises(Boom):
        em.upsert(k)
    assert table(orm, "keyed") == []
    assert not wrap(k).is_managed() and k.id is None
    _released(orm)
    FAILING.clear()
    em.upsert(Keyed(name="k"))
    assert table(orm, "keyed", "name") == [("k",)]


# -- who pays ---------------------------------------------------------------------------------


def _writes_of_plain_work(orm, log) -> list[str]:
    em = orm.em.fork()
    items = [Plain(name=f"p{i}") for i in range(3)]
    em.persist(items).flush()
    items[0].n = 1
    items[1].name = "renamed"
    em.flush()
    em.remove(items[2]).flush()
    em.fork().find(Plain, {})
    return log.sql()


def test_types_nobody_listens_to_generate_the_same_sql(connect, log):
    quiet = connect([Plain], debug=["query"], logger=log.append)
    log.clear()
    expected = _writes_of_plain_work(quiet, log)
    quiet.close()
    log.clear()
    busy = connect(ENTITIES, subscribers=[Recorder([Post])], debug=["query"],
                   logger=log.append, name="busy.db")
    log.clear()
    assert _writes_of_plain_work(busy, log) == expected
    assert ("before_flush",) in EVENTS and not any(e[1:2] == ("Plain",) for e in EVENTS)


def test_without_listeners_a_flush_takes_the_plain_path(connect, monkeypatch):
    from orm.unit_of_work import lifecycle

    def refuse(*args: object) -> None:
        raise AssertionError("the events path ran")

    monkeypatch.setattr(lifecycle, "commit_with_events", refuse)
    orm = connect([Plain, Note])
    assert not orm.em.get_event_manager().flush_active
    em = orm.em.fork()
    p = Plain(name="x")
    em.persist(p).flush()
    p.n = 2
    em.flush()
    assert table(orm, "plain", "name, n") == [("x", 2)]
    # with listeners elsewhere, an entity type without any fires nothing and copies nothing
    monkeypatch.undo()
    calls: list = []
    monkeypatch.setattr(lifecycle, "fire", lambda *a: calls.append(a[1]))
    monkeypatch.setattr(lifecycle, "_fire_tracked", lambda *a: calls.append(a[3]))
    busy = connect(ENTITIES, name="busy.db")
    assert busy.em.get_event_manager().flush_active
    assert busy.em.get_metadata(Plain).listeners == {}
    assert not busy.em.get_metadata(Plain).loads
    em = busy.em.fork()
    q = Plain(name="y")
    em.persist(q).flush()
    q.n = 3
    em.flush()
    em.remove(q).flush()
    assert calls == []


# -- inside the user's transaction ------------------------------------------------------------


def test_a_failing_after_hook_inside_a_transaction_undoes_only_that_flush(open_orm):
    orm = open_orm()
    em = orm.em.fork()
    with em.transaction():
        em.persist(Plain(name="kept")).flush()
        a = Author(name="A")
        em.persist(a)
        FAILING.add("Author.after_create")
        with pytest.raises(Boom):
            em.flush()
        assert a.id is None and a.slug == "" and not wrap(a).is_managed()
        FAILING.clear()
        em.flush()  # the retry, in the same transaction
        assert a.id is not None
    assert table(orm, "plain") == [("kept",)]
    assert table(orm, "author", "name, slug") == [("A", "a")]


def test_a_rolled_back_transaction_takes_the_hooks_values_back_too(open_orm):
    orm = open_orm()
    em = orm.em.fork()
    ada = Author(name="Ada")
    em.persist(ada).flush()
    with pytest.raises(Boom):
        with em.transaction():
            ada.name = "Ada L"
            em.flush()
            assert ada.edits == 1
            raise Boom
    assert (ada.name, ada.edits) == ("Ada L", 0), "pending again, as before the flush"
    em.flush()
    assert table(orm, "author", "name, edits") == [("Ada L", 1)], "the hook ran once"


# -- other shapes -----------------------------------------------------------------------------


class Tagged:
    def __init__(self, label: str = "") -> None:
        self.label = label

    @before_create
    def upper(self) -> None:
        self.label = self.label.upper()

    @on_load
    def loaded(self) -> None:
        EVENTS.append(("on_load", "Tagged", self.label))


tagged_schema = EntitySchema(
    name="Tagged",
    class_=Tagged,
    properties={"id": PrimaryKey(type=t.uuid, default_factory=uuid.uuid4), "label": str},
)


def test_an_entity_schema_class_has_hooks_and_uuid_keys_load_once(connect):
    orm = connect([tagged_schema])
    em = orm.em.fork()
    em.persist(Tagged("abc")).flush()
    assert rows(orm, "select label from `tagged`") == [("ABC",)]
    reader = orm.em.fork()
    reader.find(Tagged, {})
    reader.find(Tagged, {})
    assert EVENTS == [("on_load", "Tagged", "ABC")]


def test_after_transaction_commit_may_flush_what_after_hooks_changed(open_orm, log):
    class Follow(EventSubscriber):
        def get_subscribed_entities(self) -> list:
            return [Plain]

        def after_create(self, args: EventArgs) -> None:
            args.entity.n = args.entity.id * 10  # pending for the next flush

        def after_transaction_commit(self, args: TransactionEventArgs) -> None:
            args.em.flush()

    orm = open_orm(Follow())
    em = orm.em.fork()
    em.persist(Plain(name="x")).flush()
    assert table(orm, "plain", "name, n") == [("x", 10)]
    assert log.writes().count("commit") == 2, "two transactions; the third flush had nothing"


@entity()
class Tally:
    id: int = PrimaryKey()
    name: str = ""
    count: int = 0
    note: str = ""
    seen: int = 0


@entity()
class Tick:
    """Counts itself on its tally when created: a change to another entity than the one
    the event is about."""

    id: int = PrimaryKey()
    label: str = Property(unique=True)
    tally_id: int = 0

    @before_create
    def count_on_tally(self, args):
        tally = args.em.find_one_or_fail(Tally, self.tally_id, flush_mode="commit")
        tally.count += 1
        tally.name = f"last {self.label}"

    @after_create
    def note_on_tally(self, args):
        # after the statements: pending for the next flush, and the flush's all the same
        tally = args.em.find_one_or_fail(Tally, self.tally_id, flush_mode="commit")
        tally.note = f"after {self.label}"
        tally.seen += 1


@pytest.mark.parametrize("fails", ["statement", "after_flush", "transaction"])
def test_what_a_handler_assigns_to_another_entity_is_put_back_with_a_failed_flush(
    connect, fails
):
    """A `before_create` hook counts each new tick on its (managed) tally, an
    `after_create` one names it; the flush fails (a statement, `after_flush`, or a
    rolled-back transaction around it) and is retried. The counts were left on the tally,
    so the retry's hooks counted them again: 6 for 3 ticks, without an error. Every
    assignment a handler makes, to any entity, is put back with the failed flush."""
    failing: list[bool] = []

    class Failer(EventSubscriber):
        def after_flush(self, args):
            if failing and fails == "after_flush":
                raise RuntimeError("after_flush failed")

    orm = connect([Tally, Tick], subscribers=[Failer()])
    em = orm.em.fork()
    tally = Tally()
    em.persist(tally).flush()
    ticks = [Tick(label=f"t{i}", tally_id=tally.id) for i in range(3)]
    em.persist(ticks)
    failing.append(True)
    if fails == "statement":
        clash = Tick(label="t0", tally_id=tally.id)  # unique label: the insert fails
        em.persist(clash)
        with pytest.raises(UniqueConstraintViolationException):
            em.flush()
        em.remove(clash)
    elif fails == "after_flush":
        with pytest.raises(RuntimeError, match="after_flush failed"):
            em.flush()
    else:
        with pytest.raises(RuntimeError, match="undo"):
            with em.connection.transaction():  # the flush succeeds, its transaction not
                em.flush()
                assert (tally.count, tally.note, tally.seen) == (3, "after t2", 3)
                tally.note = "mine"  # the user's, after the flush: it stays
                raise RuntimeError("undo")
    assert (tally.count, tally.name, tally.seen) == (0, "", 0)
    assert tally.note == ("mine" if fails == "transaction" else "")
    tally.note = ""
    failing.clear()
    em.flush()
    assert rows(orm, "select count, name from tally") == [(3, "last t2")]
    em.flush()  # the after handlers' note: pending, written by the next flush
    assert rows(orm, "select count, name, note, seen from tally") == [(3, "last t2", "after t2", 3)]


def test_a_handler_s_assignment_to_another_entity_manager_s_entity_is_left_alone(connect):
    """A handler of one EntityManager's flush counts on an entity another one manages,
    which writes it itself; the first flush's transaction rolls back. That entity is not
    the rolled-back flush's to put back: it was, so its EntityManager's next flush wrote
    the old count over its own committed row."""
    held: list[Tally] = []

    class Counter(EventSubscriber):
        def get_subscribed_entities(self):
            return [Tick]

        def before_create(self, args):
            held[0].seen += 1

    orm = connect([Tally, Tick], subscribers=[Counter()])
    stats = orm.em.fork()
    tally = Tally()
    stats.persist(tally).flush()
    held.append(tally)
    em = orm.em.fork()
    with pytest.raises(RuntimeError, match="undo"):
        with em.connection.transaction():
            em.persist(Tick(label="a", tally_id=tally.id)).flush()
            raise RuntimeError("undo")
    assert tally.seen == 1, "the other EntityManager's pending change stays"
    stats.flush()
    assert rows(orm, "select seen from tally") == [(1,)]
