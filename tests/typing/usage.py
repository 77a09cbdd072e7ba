"""What a user writes, checked by mypy --strict and pyright (tests/test_typing.py): it must
type-check with no error, and `assert_type` pins what the checkers infer. Not run by pytest."""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_type
from uuid import UUID, uuid4

from orm import (
    ORM,
    BaseEntity,
    Cascade,
    EntityManager,
    EntitySchema,
    EventArgs,
    EventSubscriber,
    FlushEventArgs,
    ManyToOne,
    OneToOne,
    PrimaryKey,
    Property,
    Ref,
    TransactionEventArgs,
    before_create,
    before_update,
    entity,
    on_load,
    ref,
    t,
    wrap,
)


@entity()
class User:
    id: int = PrimaryKey()
    full_name: str
    email: str = Property(unique=True)
    password: str = Property(hidden=True)
    bio: str = Property(type=t.text, default="")
    nickname: str | None = None
    created_at: datetime = Property(default_factory=datetime.now)


@entity(table_name="tokens")
class Token(BaseEntity):
    id: UUID = PrimaryKey(type=t.uuid, default_factory=uuid4)
    owner: str
    scopes: list[str] = Property(type=t.json, default_factory=list)


@entity
class Base:
    id: int = PrimaryKey()
    name: str


@entity()
class Derived(Base):
    extra: int = Property(default=0)


def stamp(entity: Any) -> str:
    return "created"


@entity()
class Versioned:
    """Optional for the ORM without a default; `default=` makes checkers agree."""

    code: str = PrimaryKey()
    version: int = Property(version=True, default=1)
    note: str | None = Property(nullable=True, default=None)
    made: str | None = Property(on_create=stamp, default=None)


class Plain:
    title: str


@entity()
class Article:
    """Lifecycle hooks: with and without parentheses, with and without the args."""

    id: int = PrimaryKey()
    title: str
    slug: str = Property(default="")

    @before_create
    def make_slug(self) -> None:
        self.slug = self.title.lower()

    @before_update()
    def touched(self, args: EventArgs[Article]) -> None:
        assert_type(args.entity, Article)

    @on_load
    def loaded(self) -> None:
        pass


class ArticleSubscriber(EventSubscriber[Article]):
    def get_subscribed_entities(self) -> list[Any] | None:
        return [Article]

    def after_create(self, args: EventArgs[Article]) -> None:
        assert_type(args.entity.slug, str)
        assert_type(args.em, EntityManager)

    def on_flush(self, args: FlushEventArgs) -> None:
        args.em.persist(Article(title="audit"))

    def after_transaction_commit(self, args: TransactionEventArgs) -> None:
        assert_type(args.em, EntityManager)


book_schema = EntitySchema(
    name="Plain", class_=Plain, properties={"id": PrimaryKey(type=int), "title": str}
)

# required arguments only; everything the database or the ORM fills is optional
user = User(full_name="Foo Bar", email="foo@bar.com", password="123456")
User(id=7, full_name="A", email="a@b", password="x", bio="...", nickname=None,
     created_at=datetime(2024, 1, 1))
token = Token(owner="foo")
derived = Derived(name="d", extra=2)
Derived(name="d")
Versioned(code="v1")
assert_type(user.id, int)
assert_type(user.nickname, str | None)
assert_type(token.id, UUID)
assert_type(derived.name, str)
assert_type(token.init(), Token)
assert_type(token.assign({"owner": "bar"}), Token)
users = {user}  # entities stay hashable (identity)


@entity()
class Post:
    id: int = PrimaryKey()
    title: str
    owner: User = ManyToOne()
    editor: User | None = ManyToOne(nullable=True, cascade=[Cascade.PERSIST])
    cover: Ref[Token] | None = OneToOne(nullable=True, on_delete="set null")


def relations(em: EntityManager, user: User, token: Token) -> None:
    post = Post(title="t", owner=user, cover=ref(token))
    assert_type(post.owner, User)
    assert_type(post.editor, User | None)
    cover = post.cover
    if cover is not None:
        assert_type(cover.get_entity(), Token)
        assert_type(cover.load(), Token)
        assert_type(cover.unwrap(), Token)
        assert_type(cover.is_initialized(), bool)
    found = em.find(Post, {"owner": user, "editor": {"email": "a@b.c"}}, populate=["owner"])
    assert_type(found, list[Post])
    em.populate(found, ["owner", "cover"])


def unit_of_work(em: EntityManager) -> None:
    assert_type(em.persist(user), EntityManager)
    em.persist([user, derived]).flush()
    assert_type(em.find(User, {"email": {"$like": "%@bar.com"}}, limit=10), list[User])
    assert_type(em.find_one(User, 1), User | None)
    assert_type(em.find_one_or_fail(User, {"email": "foo@bar.com"}).email, str)
    assert_type(em.find_all(Derived), list[Derived])
    assert_type(em.find_and_count(User, {}, limit=5), tuple[list[User], int])
    assert_type(em.count(User), int)
    assert_type(em.create(User, {"full_name": "B", "email": "b@b", "password": "x"}), User)
    assert_type(em.get_reference(User, 1), User)
    assert_type(em.upsert(User, {"id": 1, "full_name": "C"}), User)
    assert_type(em.upsert(user), User)
    assert_type(em.refresh(user), User | None)
    assert_type(em.assign(user, {"bio": "x"}), User)
    assert_type(em.transactional(lambda tx: tx.count(User)), int)
    assert_type(em.fork(), EntityManager)
    with em.transaction() as tx:
        assert_type(tx, EntityManager)
    # an entity named by a string: the checkers cannot know its class (Any), nor that it is
    # always None
    assert_type(em.find_one("User", 1), Any | None)
    assert_type(em.find("User"), list[Any])
    assert_type(em.find_one_or_fail("User", 1), Any)
    assert_type(em.upsert("User", {"id": 1}), Any)
    found = em.find_one(User, {"email": "foo@bar.com"})
    if found is not None:
        found.bio = "..."
    assert_type(wrap(user).to_json(), dict[str, Any])


def start() -> None:
    with ORM.init(db_name=":memory:", entities=[User, Token, Base, Derived, Versioned, book_schema]) as orm:
        orm.schema.update_schema()
        unit_of_work(orm.em.fork())
    with ORM.init(db_name=":memory:", entities=[Article],
                  subscribers=[ArticleSubscriber()]) as orm:
        orm.em.get_event_manager().register_subscriber(ArticleSubscriber())
        article = Article(title="Hello")
        article.make_slug()
