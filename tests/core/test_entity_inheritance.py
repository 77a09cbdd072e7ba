"""Entity inheritance, on both databases: an @entity() class extending another @entity()
class is an entity of its own, stored in its own table (the inherited columns plus its
own), with keys of its own. A relation to the base entity therefore never holds one of the
sub-entity's (its key names a row of another table): refused on assignment, in collections,
filters, native writes and the flush, with nothing written. Relations the sub-entity
inherits work on its own column and pivot table; an inherited inverse side, which would
read the base's keys as its own, is a MetadataError; a plain (non-@entity) base class
shares properties without any of this."""

from __future__ import annotations

import pytest

from orm import (
    Cascade,
    Collection,
    FlushMode,
    ManyToMany,
    ManyToOne,
    MetadataError,
    OneToMany,
    OneToOne,
    PrimaryKey,
    ValidationError,
    _diff_py,
    entity,
    ref,
    wrap,
)
from orm._backend import core
from orm.entity.reference import Ref
from tests.databases import rows

# -- models -------------------------------------------------------------------------------


@entity()
class Guild:
    id: int = PrimaryKey()
    name: str
    scribes: Collection[Scribe] = OneToMany(
        mapped_by="guild", cascade=[Cascade.PERSIST, Cascade.REMOVE]
    )
    #: the sub-entity's own inverse side of the ManyToOne it inherits
    stars: Collection[Star] = OneToMany(mapped_by="guild")


@entity()
class Topic:
    id: int = PrimaryKey()
    label: str
    scribes: Collection[Scribe] = ManyToMany(mapped_by="topics")
    stars: Collection[Star] = ManyToMany(mapped_by="topics")


@entity()
class Scribe:
    id: int = PrimaryKey()
    name: str
    guild: Guild | None = ManyToOne(nullable=True, on_delete="set null", inversed_by="scribes")
    topics: Collection[Topic] = ManyToMany(inversed_by="scribes")
    scrolls: Collection[Scroll] = OneToMany(mapped_by="scribe")


@entity()
class Star(Scribe):
    rank: int = 0
    #: redeclared: the inherited one would list the scrolls of the Scribe with its key
    scrolls: Collection[Scroll] = OneToMany(mapped_by="star")


@entity()
class Scroll:
    id: int = PrimaryKey()
    title: str
    #: a ManyToOne to the base entity with an inverse side (checked on assignment)
    scribe: Scribe | None = ManyToOne(nullable=True)
    #: a ManyToOne to the sub-entity
    star: Star | None = ManyToOne(nullable=True)
    #: a ManyToOne to the base entity without an inverse side (checked by the flush)
    editor: Scribe | None = ManyToOne(nullable=True)


@entity()
class Folio(Scroll):
    """Inherits three owning ManyToOnes, two of them with an inverse side (on Scribe and
    Star) that lists Scroll rows; no collection of its own."""

    pages: int = 1


MODELS = [Guild, Topic, Scribe, Star, Scroll, Folio]
TABLES = (
    "guild", "topic", "scribe", "star", "scroll", "folio", "scribe_topics", "star_topics"
)


@entity()
class Member:
    id: int = PrimaryKey()
    name: str
    card: Card | None = OneToOne(mapped_by="member")


@entity()
class Card:
    id: int = PrimaryKey()
    code: str
    member: Member | None = OneToOne(nullable=True, inversed_by="card")


@entity()
class GoldCard(Card):
    level: int = 1


CARDS = [Member, Card, GoldCard]


@pytest.fixture
def inh(connect):
    return connect(MODELS)


@pytest.fixture
def em(inh):
    return inh.em.fork()


def counts(orm, tables=TABLES):
    return {table: rows(orm, f"select count(*) from `{table}`")[0][0] for table in tables}


def stored_pair(em):
    """A Scribe and a Star stored with the same key (each table numbers its own rows)."""
    scribe, star = Scribe(name="plain"), Star(name="shiny", rank=2)
    em.persist([scribe, star]).flush()
    assert scribe.id == star.id
    return scribe, star


# -- a sub-entity is not a value of a relation to its base ---------------------------------


def test_a_sub_entity_given_for_the_base_is_refused_by_the_flush_with_nothing_written(inh, em):
    """The corruption this guards against: the Star's key, written into a foreign key to
    the scribe table, would name the Scribe that has the same key."""
    scribe, star = Scribe(name="a"), Star(name="s", rank=2)
    good, bad = Scroll(title="x", editor=scribe), Scroll(title="y", editor=star)
    em.persist([scribe, star, good, bad])
    with pytest.raises(ValidationError) as caught:
        em.flush()
    message = str(caught.value)
    assert message.startswith(
        "Invalid value for Scroll.editor: expected a Scribe entity, got Star Star("
    )
    assert "(Star is an entity of its own, stored in its own table, not in Scribe's table " \
        "'scribe': the relation holds Scribe entities only)" in message
    assert "nothing of this flush was written" in message
    assert caught.value.entity is bad and caught.value.property == "editor"
    assert set(counts(inh).values()) == {0}
    uow = em.get_unit_of_work()
    assert all(uow.is_new(e) for e in (scribe, star, good, bad))
    assert scribe.id is None and star.id is None
    bad.editor = scribe  # fixed: the same Unit of Work flushes
    em.flush()
    assert rows(inh, "select title, editor_id from `scroll` order by title") == [
        ("x", scribe.id), ("y", scribe.id)
    ]


def test_a_stored_sub_entity_is_refused_for_a_new_and_for_a_changed_row(inh, em):
    scribe, star = stored_pair(em)
    kept = Scroll(title="kept", editor=scribe)
    em.persist(kept).flush()
    kept.editor = star
    with pytest.raises(ValidationError, match=r"Scroll\.editor: expected a Scribe entity, got "
                       r"Star .*own table"):
        em.flush()
    kept.editor = scribe
    em.persist(Scroll(title="new", editor=ref(star)))  # a Ref around it: the same
    with pytest.raises(ValidationError, match=r"Scroll\.editor: .*got Star .*own table"):
        em.flush()
    assert rows(inh, "select title, editor_id from `scroll`") == [("kept", scribe.id)]


def test_the_base_entity_is_refused_for_a_relation_to_the_sub_entity(inh, em):
    scribe, _ = stored_pair(em)
    with pytest.raises(ValidationError, match=r"Scroll\.star: .*expected a Star entity.*got "
                       r"Scribe .*\(Scribe is an entity of its own, stored in its own table"):
        Scroll(title="t", star=scribe)
    scroll = Scroll(title="t")
    with pytest.raises(ValidationError, match=r"Scroll\.star: .*got Scribe"):
        scroll.star = scribe
    assert scroll.__dict__.get("star") is None


def test_assigning_a_relation_with_an_inverse_side_refuses_at_once(inh, em):
    scribe, star = stored_pair(em)
    em.populate([scribe, star], ["scrolls"])
    with pytest.raises(ValidationError) as caught:
        Scroll(title="t", scribe=star)
    assert str(caught.value).startswith(
        "Invalid value for Scroll.scribe: expected a Scribe entity or None, got Star Star("
    )
    assert "own table" in str(caught.value) and "Nothing was changed." in str(caught.value)
    scroll = Scroll(title="t", scribe=scribe)
    em.persist(scroll)
    with pytest.raises(ValidationError, match=r"Scroll\.scribe: .*got Star"):
        scroll.scribe = star
    assert scroll.scribe is scribe
    assert list(scribe.scrolls) == [scroll] and list(star.scrolls) == []
    em.flush()
    assert rows(inh, "select scribe_id, star_id from `scroll`") == [(scribe.id, None)]


def test_collections_take_entities_of_exactly_their_class(inh, em):
    scribe, star = stored_pair(em)
    guild, topic = Guild(name="g"), Topic(label="t")
    em.persist([guild, topic]).flush()
    em.populate([guild], ["scribes", "stars"])
    em.populate([topic], ["scribes", "stars"])
    em.populate([scribe, star], ["topics"])
    refusals = [
        (lambda: guild.scribes.add(star), r"Guild\.scribes holds Scribe entities, got Star"),
        (lambda: guild.stars.add(scribe), r"Guild\.stars holds Star entities, got Scribe"),
        (lambda: guild.scribes.set([scribe, star]), r"Guild\.scribes holds Scribe entities"),
        (lambda: setattr(guild, "scribes", [star]), r"Guild\.scribes holds Scribe entities"),
        (lambda: topic.scribes.add(star), r"Topic\.scribes holds Scribe entities, got Star"),
        (lambda: topic.stars.add(ref(scribe)), r"Topic\.stars holds Star entities, got Scribe"),
        (lambda: Guild(name="new", scribes=[star]), r"Guild\.scribes holds Scribe entities"),
        (lambda: Topic(label="new", stars=[star, scribe]), r"Topic\.stars holds Star entities"),
    ]
    for call, pattern in refusals:
        with pytest.raises(ValidationError, match=pattern + r".*own table"):
            call()
    assert list(guild.scribes) == [] and list(guild.stars) == []
    assert list(topic.scribes) == [] and list(topic.stars) == []
    assert list(scribe.topics) == [] and list(star.topics) == []
    assert scribe.__dict__.get("guild") is None and star.__dict__.get("guild") is None
    em.flush()
    assert set(counts(inh, ("scribe_topics", "star_topics")).values()) == {0}


def test_filters_refuse_a_sub_entity_for_the_base(inh, em):
    scribe, star = stored_pair(em)
    em.persist(Scroll(title="s", editor=scribe, scribe=scribe)).flush()
    refusals = [
        (Scroll, {"editor": star}, r"\$eq on Scroll\.editor"),
        (Scroll, {"editor": {"$in": [scribe, star]}}, r"on Scroll\.editor"),
        (Scroll, {"editor": {"$ne": ref(star)}}, r"\$ne on Scroll\.editor"),
        (Scroll, {"star": scribe}, r"\$eq on Scroll\.star"),
        (Scribe, {"id": star}, r"\$eq on Scribe\.id"),
        (Scribe, star, r"\$eq on Scribe\.id"),
        (Guild, {"scribes": {"$in": [star]}}, r"\$in on Guild\.scribes"),
        (Topic, {"scribes": star}, r"\$eq on Topic\.scribes"),
    ]
    for cls, where, pattern in refusals:
        with pytest.raises(ValidationError, match=pattern + r".*got Star|" + pattern
                           + r".*got Scribe") as caught:
            em.find(cls, where)
        assert "is an entity of its own, stored in its own table" in str(caught.value)
    assert em.find(Scroll, {"editor": scribe})[0].title == "s"


def test_native_writes_refuse_a_sub_entity_for_the_base(inh, em):
    _, star = stored_pair(em)
    with pytest.raises(ValidationError, match=r"Scroll\.editor: expected a Scribe entity, got "
                       r"Star .*own table.*call native_insert\(\) again; nothing was written"):
        em.native_insert(Scroll, {"title": "n", "editor": star})
    with pytest.raises(ValidationError, match=r"Scroll\.editor: .*got Star .*own table.*call "
                       r"upsert\(\) again; nothing was written"):
        em.upsert(Scroll, {"id": 7, "title": "u", "editor": star})
    with pytest.raises(ValidationError, match=r"Scroll\.editor: .*got Star .*own table.*call "
                       r"native_update\(\) again; nothing was written"):
        em.native_update(Scroll, {"id": 1}, {"editor": star})
    assert counts(inh, ("scroll",)) == {"scroll": 0}


def test_a_plain_subclass_of_an_entity_is_neither_an_entity_nor_a_relation_value(inh, em):
    """Only @entity() classes have a table: a plain subclass of one is not stored with
    its base's metadata, nor taken for it."""

    class Ghost(Scribe):  # not decorated
        pass

    ghost = Ghost(name="boo")
    with pytest.raises(ValidationError, match=r"Trying to use Ghost .* as an entity, but it is "
                       r"not one"):
        em.persist(ghost)
    with pytest.raises(ValidationError, match=r"Scroll\.scribe: .*got Ghost .*\(Ghost is a "
                       r"subclass of Scribe but not an entity itself: it has no table"):
        Scroll(title="t", scribe=ghost)
    em.persist(Scroll(title="t", editor=ghost))
    with pytest.raises(ValidationError, match=r"Scroll\.editor: .*got Ghost .*not an entity"):
        em.flush()
    assert set(counts(inh).values()) == {0}


# -- relations the sub-entity inherits ---------------------------------------------------


def test_an_inherited_many_to_one_has_its_own_column_and_foreign_key(inh, em, database):
    keys = {
        table: {(k.column, k.table) for k in inh.platform.live_foreign_keys(inh.connection, table)}
        for table in ("scribe", "star", "scroll", "star_topics")
    }
    assert keys["scribe"] == {("guild_id", "guild")}
    assert keys["star"] == {("guild_id", "guild")}
    assert keys["scroll"] == {
        ("scribe_id", "scribe"), ("star_id", "star"), ("editor_id", "scribe")
    }
    assert keys["star_topics"] == {("star_id", "star"), ("topic_id", "topic")}
    meta = inh.em.get_metadata(Star)
    assert meta.table == "star"
    assert meta.properties["guild"].relation.target is Guild
    assert meta.properties["guild"].relation.inversed_by is None  # one-directional copy
    assert meta.properties["topics"].relation.pivot.table == "star_topics"


def test_inherited_many_to_one_persist_populate_and_filters(inh, em):
    guild = Guild(name="g")
    scribe = Scribe(name="plain", guild=guild)
    star = Star(name="shiny", rank=3, guild=Guild(name="h"))  # cascade persist, inherited
    em.persist([scribe, star]).flush()
    assert scribe.id == star.id
    assert rows(inh, "select guild_id from `star`") == [(star.guild.id,)]
    em2 = inh.em.fork()
    [loaded] = em2.find(Star, {}, populate=["guild"])
    assert type(loaded.guild) is Guild and loaded.guild.name == "h"
    assert [s.name for s in em2.find(Star, {"guild": guild.id})] == []
    assert [s.name for s in em2.find(Star, {"guild": {"name": "h"}})] == ["shiny"]
    assert [s.name for s in em2.find(Scribe, {"guild": {"name": "h"}})] == []
    assert em2.count(Guild, {"stars": {"rank": 3}}) == 1
    assert em2.count(Guild, {"scribes": {"name": "shiny"}}) == 0


def test_each_inverse_side_lists_the_rows_of_its_own_table(inh, em):
    guild = Guild(name="g")
    scribe, star = Scribe(name="plain", guild=guild), Star(name="shiny", guild=guild)
    em.persist([scribe, star]).flush()
    # in memory: the star joined the side of its own class only
    assert list(guild.scribes) == [scribe] and list(guild.stars) == [star]
    other = Star(name="moved")
    em.persist(other)
    other.guild = guild
    assert list(guild.scribes) == [scribe] and list(guild.stars) == [star, other]
    em.flush()
    em2 = inh.em.fork()
    [loaded] = em2.find(Guild, {}, populate=["scribes", "stars"])
    assert [s.name for s in loaded.scribes] == ["plain"]
    assert sorted(s.name for s in loaded.stars) == ["moved", "shiny"]
    assert all(type(s) is Star for s in loaded.stars)


def test_an_inherited_many_to_many_writes_its_own_pivot_table(inh, em):
    x, y = Topic(label="x"), Topic(label="y")
    scribe = Scribe(name="plain", topics=[x])
    star = Star(name="shiny", topics=[y])
    em.persist([scribe, star]).flush()
    assert scribe.id == star.id
    assert rows(inh, "select scribe_id, topic_id from `scribe_topics`") == [(scribe.id, x.id)]
    assert rows(inh, "select star_id, topic_id from `star_topics`") == [(star.id, y.id)]
    # in memory: each topic side lists its own class's entities
    assert list(x.scribes) == [scribe] and list(x.stars) == []
    assert list(y.scribes) == [] and list(y.stars) == [star]
    star.topics.add(x)
    assert list(x.stars) == [star] and list(x.scribes) == [scribe]
    em.flush()
    em2 = inh.em.fork()
    [loaded] = em2.find(Star, {}, populate=["topics"])
    assert sorted(t.label for t in loaded.topics) == ["x", "y"]
    [plain] = em2.find(Scribe, {}, populate=["topics"])
    assert [t.label for t in plain.topics] == ["x"]
    assert [s.name for s in em2.find(Star, {"topics": {"label": "y"}})] == ["shiny"]
    assert [s.name for s in em2.find(Scribe, {"topics": {"label": "y"}})] == []
    assert [s.name for s in em2.find(Star, {"topics": y})] == ["shiny"]
    topics = em2.find(Topic, {}, populate=["scribes", "stars"], order_by={"label": "asc"})
    assert [[s.name for s in t.scribes] for t in topics] == [["plain"], []]
    assert [[s.name for s in t.stars] for t in topics] == [["shiny"], ["shiny"]]


def test_unflushed_pairs_show_on_the_inverse_side_of_their_own_class_only(inh):
    """FlushMode.COMMIT: populate shows the owning sides' unwritten pairs on the inverse
    sides it fills, those of the star's own pivot table on Topic.stars, not Topic.scribes
    (whose pivot table holds scribes)."""
    scribe, star = stored_pair(inh.em.fork())
    x = Topic(label="x")
    inh.em.fork().persist(x).flush()
    em = inh.em.fork(flush_mode=FlushMode.COMMIT)
    loaded = em.find_one(Star, star.id)
    em.populate([loaded], ["topics"])
    topic = em.find_one(Topic, x.id)
    loaded.topics.add(topic)
    em.populate([topic], ["scribes", "stars"])
    assert list(topic.scribes) == [] and list(topic.stars) == [loaded]
    assert rows(inh, "select count(*) from `star_topics`") == [(0,)]


def test_a_relation_to_the_sub_entity_loads_and_filters_its_rows(inh, em):
    scribe, star = stored_pair(em)
    em.persist([Scroll(title="a", scribe=scribe), Scroll(title="b", star=star)]).flush()
    em2 = inh.em.fork()
    by_title = {s.title: s for s in em2.find(Scroll, {}, populate=["scribe", "star"])}
    assert type(by_title["b"].star) is Star and by_title["b"].star.rank == 2
    assert by_title["b"].scribe is None
    assert [s.title for s in em2.find(Scroll, {"star": star.id})] == ["b"]
    assert [s.title for s in em2.find(Scroll, {"scribe": scribe.id})] == ["a"]
    [loaded_star] = em2.find(Star, {}, populate=["scrolls"])
    [loaded_scribe] = em2.find(Scribe, {}, populate=["scrolls"])
    assert [s.title for s in loaded_star.scrolls] == ["b"]
    assert [s.title for s in loaded_scribe.scrolls] == ["a"]
    assert [s.name for s in em2.find(Star, {"scrolls": {"title": "b"}})] == ["shiny"]
    assert em2.find(Scribe, {"scrolls": {"title": "b"}}) == []


def test_inherited_many_to_ones_with_an_inverse_side_are_one_directional(inh, em):
    """Folio inherits Scroll's ManyToOnes (and Scroll's `__setattr__`, which keeps
    Scribe.scrolls and Star.scrolls in step for scrolls): a folio is in the folio table,
    which those sides never list, so it joins none of them."""
    scribe, star = stored_pair(em)
    em.populate([scribe, star], ["scrolls"])
    folio = Folio(title="f", pages=9)
    em.persist(folio)
    folio.scribe = scribe
    folio.star = star
    assert list(scribe.scrolls) == [] and list(star.scrolls) == []
    scroll = Scroll(title="s", scribe=scribe)
    assert list(scribe.scrolls) == [scroll]
    em.persist(scroll).flush()
    assert rows(inh, "select scribe_id, star_id, pages from `folio`") == [(scribe.id, star.id, 9)]
    em2 = inh.em.fork()
    [loaded] = em2.find(Folio, {"scribe": {"name": "plain"}}, populate=["scribe", "star"])
    assert loaded.scribe.name == "plain" and type(loaded.star) is Star
    [plain] = em2.find(Scribe, {}, populate=["scrolls"])
    assert [s.title for s in plain.scrolls] == ["s"]
    folio.scribe = star  # no assignment check for the copy: the flush refuses it
    with pytest.raises(ValidationError, match=r"Folio\.scribe: expected a Scribe entity, got "
                       r"Star .*own table"):
        em.flush()


def test_cascade_remove_takes_the_base_entities_only(inh, em):
    """Guild.scribes cascades removal: the Scribe rows pointing at the guild go, the Star
    rows (another table, whose Guild.stars does not cascade) stay, also a star pointed at
    the guild in memory only."""
    guild = Guild(name="g")
    scribe, star, loose = Scribe(name="plain", guild=guild), Star(name="s"), Star(name="l")
    em.persist([scribe, star, loose]).flush()
    star.guild = guild
    em.flush()
    em2 = inh.em.fork()
    guild2 = em2.find_one(Guild, guild.id)
    loose2 = em2.find_one(Star, loose.id)
    loose2.guild = guild2  # pointed at it in memory, not flushed
    em2.remove(guild2).flush()
    assert rows(inh, "select count(*) from `scribe`") == [(0,)]
    assert sorted(rows(inh, "select name, guild_id from `star`")) == [("l", None), ("s", None)]


def test_cascade_persist_through_an_inherited_relation_and_the_own_inverse_side(inh, em):
    guild = Guild(name="g")
    em.persist(guild).flush()
    em.populate([guild], ["stars"])
    newcomer = Star(name="new")
    guild.stars.add(newcomer)  # Cascade.PERSIST (the default) on Guild.stars
    assert em.get_unit_of_work().is_new(newcomer)
    em.flush()
    assert rows(inh, "select name, guild_id from `star`") == [("new", guild.id)]


def test_a_sub_entity_calling_the_base_init_joins_no_inverse_side_of_the_base(connect):
    """`super().__init__()` runs the base class's `__init__`, which links a new entity to
    the inverse sides of its relations: for the base's own entities only."""

    @entity()
    class Rack:
        id: int = PrimaryKey()
        bins: Collection[Bin] = OneToMany(mapped_by="rack")

    @entity()
    class Bin:
        id: int = PrimaryKey()
        rack: Rack | None = ManyToOne(nullable=True)

    @entity()
    class Crate(Bin):
        def __init__(self, **values):
            super().__init__(**values)

    @entity()
    class PlatinumCard(Card):
        def __init__(self, **values):
            super().__init__(**values)

    orm = connect([Rack, Bin, Crate, *CARDS, PlatinumCard])
    rack, member = Rack(), Member(name="m")
    crate, card = Crate(rack=rack), PlatinumCard(code="p", member=member)
    assert list(rack.bins) == [] and member.card is None
    assert crate.rack is rack and card.member is member
    orm.em.fork().persist([crate, card]).flush()
    assert rows(orm, "select rack_id from `crate`") == [(rack.id,)]
    assert rows(orm, "select member_id from `platinum_card`") == [(member.id,)]


def test_a_relation_redeclared_as_a_column_on_the_sub_entity_is_a_column(connect):
    @entity()
    class Bag:
        id: int = PrimaryKey()
        things: Collection[Thing] = ManyToMany()

    @entity()
    class Pouch(Bag):
        things: str = ""  # not a collection here

    @entity()
    class Thing:
        id: int = PrimaryKey()

    @entity()
    class Guest(Member):
        card: str = ""  # not the inverse one-to-one here

    orm = connect([Bag, Pouch, Thing, *CARDS, Guest])
    pouch, guest = Pouch(things="a"), Guest(name="g", card="gold")
    pouch.things = "b"
    guest.card = "silver"
    orm.em.fork().persist([pouch, guest]).flush()
    assert rows(orm, "select things from `pouch`") == [("b",)]
    assert rows(orm, "select card from `guest`") == [("silver",)]


def test_a_plain_base_class_shares_properties_between_entities(connect):
    """The pattern for entities that only share properties: a plain (non-@entity) base
    class declaring them. Each entity has them in its own table (its own pivot table); an
    inherited `inversed_by` naming another entity's inverse side makes a one-directional
    copy."""

    class Staff:
        id: int = PrimaryKey()
        name: str
        office: Office | None = ManyToOne(nullable=True, inversed_by="clerks")
        skills: Collection[Skill] = ManyToMany()

    @entity()
    class Clerk(Staff):
        pass

    @entity()
    class Boss(Staff):
        budget: int = 0

    @entity()
    class Office:
        id: int = PrimaryKey()
        clerks: Collection[Clerk] = OneToMany(mapped_by="office")

    @entity()
    class Skill:
        id: int = PrimaryKey()
        label: str

    orm = connect([Clerk, Boss, Office, Skill])
    assert orm.em.get_metadata(Boss).properties["office"].relation.inversed_by is None
    em = orm.em.fork()
    office, typing = Office(), Skill(label="typing")
    clerk = Clerk(name="c", office=office, skills=[typing])
    boss = Boss(name="b", budget=5, office=office, skills=[typing])
    assert list(office.clerks) == [clerk]
    em.persist([clerk, boss]).flush()
    assert clerk.id == boss.id
    assert rows(orm, "select office_id, budget from `boss`") == [(office.id, 5)]
    assert rows(orm, "select boss_id, skill_id from `boss_skills`") == [(boss.id, typing.id)]
    em2 = orm.em.fork()
    [loaded] = em2.find(Office, {}, populate=["clerks"])
    assert [c.name for c in loaded.clerks] == ["c"]
    [boss2] = em2.find(Boss, {"skills": {"label": "typing"}}, populate=["office", "skills"])
    assert boss2.office is loaded and [s.label for s in boss2.skills] == ["typing"]
    with pytest.raises(ValidationError, match=r"Office\.clerks holds Clerk entities, got Boss"):
        loaded.clerks.add(boss2)


# -- inverse sides that cannot be right are metadata errors --------------------------------


def test_an_inherited_one_to_many_is_a_metadata_error_saying_what_to_do(connect):
    @entity()
    class Shelf:
        id: int = PrimaryKey()
        volumes: Collection[Volume] = OneToMany(mapped_by="shelf")

    @entity()
    class TallShelf(Shelf):
        height: int = 2

    @entity()
    class Volume:
        id: int = PrimaryKey()
        shelf: Shelf | None = ManyToOne(nullable=True)

    with pytest.raises(MetadataError) as caught:
        connect([Shelf, TallShelf, Volume], create=False)
    assert str(caught.value) == (
        "TallShelf.volumes = OneToMany(mapped_by='shelf') (inherited from Shelf) cannot be "
        "read: Volume.shelf points at Shelf and holds keys of Shelf rows, while TallShelf is "
        "an entity of its own, stored in its own table 'tall_shelf' with keys of its own, so "
        "TallShelf.volumes would list the Volume entities of other rows. Declare volumes on "
        "TallShelf with mapped_by naming a ManyToOne on Volume that points at TallShelf, or, "
        "if TallShelf only shares Shelf's properties, declare them on a plain (non-@entity) "
        "base class that both entity classes extend."
    )
    assert caught.value.entity == "TallShelf" and caught.value.property == "volumes"
    # whatever the order the entities are listed in
    with pytest.raises(MetadataError, match=r"^TallShelf\.volumes = OneToMany"):
        connect([Volume, TallShelf, Shelf], create=False)


def test_an_inherited_inverse_many_to_many_is_a_metadata_error(connect):
    @entity()
    class Label:
        id: int = PrimaryKey()
        boxes: Collection[Box] = ManyToMany(mapped_by="labels")

    @entity()
    class Sticker(Label):
        pass

    @entity()
    class Box:
        id: int = PrimaryKey()
        labels: Collection[Label] = ManyToMany()

    with pytest.raises(MetadataError, match=(
        r"^Sticker\.boxes = ManyToMany\(mapped_by='labels'\) \(inherited from Label\) cannot "
        r"be read: Box\.labels points at Label .* own table 'sticker' .*naming an owning "
        r"ManyToMany on Box that points at Sticker, or, .*plain \(non-@entity\) base class"
    )):
        connect([Label, Sticker, Box], create=False)


def test_an_inherited_inverse_one_to_one_is_a_metadata_error(connect):
    with pytest.raises(MetadataError, match=(
        r"^GoldMember\.card = OneToOne\(mapped_by='member'\) \(inherited from Member\) "
        r"cannot be read: Card\.member points at Member .*an owning OneToOne on Card that "
        r"points at GoldMember"
    )):

        @entity()
        class GoldMember(Member):
            pass

        connect([*CARDS, GoldMember], create=False)


def test_an_inverse_side_declared_on_the_sub_entity_must_point_at_it(connect):
    @entity()
    class Desk:
        id: int = PrimaryKey()

    @entity()
    class Bench(Desk):
        # declared here, but mapped by a relation to the base entity
        pens: Collection[Pen] = OneToMany(mapped_by="desk")

    @entity()
    class Pen:
        id: int = PrimaryKey()
        desk: Desk | None = ManyToOne(nullable=True)

    with pytest.raises(MetadataError, match=(
        r"^Bench\.pens = OneToMany\(mapped_by='desk'\) cannot be read: Pen\.desk points at "
        r"Desk"
    )):
        connect([Desk, Bench, Pen], create=False)


def test_inversed_by_declared_on_the_sub_entity_must_name_its_own_inverse_side(connect):
    @entity()
    class Owner:
        id: int = PrimaryKey()
        pets: Collection[Pet] = OneToMany(mapped_by="owner")

    @entity()
    class Pet:
        id: int = PrimaryKey()
        owner: Owner | None = ManyToOne(nullable=True, inversed_by="pets")

    @entity()
    class Dog(Pet):
        # declared again: Owner.pets lists Pet rows, not Dog ones
        owner: Owner | None = ManyToOne(nullable=True, inversed_by="pets")

    with pytest.raises(MetadataError, match=(
        r"^Dog\.owner = ManyToOne\(inversed_by='pets'\) must name a OneToMany"
        r"\(mapped_by='owner'\) on Owner; Owner\.pets is the inverse side of Pet\.owner and "
        r"lists Pet entities, not Dog ones \(Dog is stored in its own table 'dog'\)"
    )):
        connect([Owner, Pet, Dog], create=False)

    @entity()
    class Cat(Pet):
        pass  # inherits `owner` with inversed_by="pets": its copy is one-directional

    orm = connect([Owner, Pet, Cat], create=False)
    assert orm.em.get_metadata(Cat).properties["owner"].relation.inversed_by is None
    assert orm.em.get_metadata(Pet).properties["owner"].relation.inversed_by == "pets"


def test_an_inherited_pivot_table_name_is_refused(connect):
    @entity()
    class Crate:
        id: int = PrimaryKey()
        items: Collection[Item] = ManyToMany(pivot_table="crate_items")

    @entity()
    class BigCrate(Crate):
        pass

    @entity()
    class Item:
        id: int = PrimaryKey()

    with pytest.raises(MetadataError, match=(
        r"BigCrate\.items: its pivot table 'crate_items' is also the table of Crate\.items; "
        r"give it another pivot_table="
    )):
        connect([Crate, BigCrate, Item], create=False)


# -- the one-to-one sides ------------------------------------------------------------------


def test_an_inherited_owning_one_to_one_is_one_directional(connect):
    orm = connect(CARDS)
    em = orm.em.fork()
    member, other = Member(name="m"), Member(name="o")
    card, gold = Card(code="c", member=member), GoldCard(code="g", member=other)
    assert member.card is card
    assert other.card is None  # Member.card lists Card rows: not the gold card
    with pytest.raises(ValidationError, match=(
        r"Invalid value for Member\.card: expected a Card entity or None, got GoldCard "
        r".*\(GoldCard is an entity of its own, stored in its own table"
    )):
        member.card = gold
    assert member.card is card and card.member is member
    gold.member = member  # GoldCard inherits Card's __setattr__ with the relation: no link
    assert member.card is card and card.member is member
    gold.member = other
    em.persist([card, gold]).flush()
    assert card.id == gold.id
    assert rows(orm, "select member_id from `gold_card`") == [(other.id,)]
    em2 = orm.em.fork()
    members = em2.find(Member, {}, populate=["card"], order_by={"name": "asc"})
    assert [(m.name, m.card and m.card.code) for m in members] == [("m", "c"), ("o", None)]
    [loaded] = em2.find(GoldCard, {"member": {"name": "o"}}, populate=["member"])
    assert loaded.member.name == "o"
    assert em2.find(Card, {"member": {"name": "o"}}) == []


def test_a_sub_entity_persisted_again_stays_off_the_base_entitys_inverse_side(connect):
    """A GoldCard whose row was deleted, persisted again, is a new entity: it rejoins the
    inverse sides of its own class (none), not Member.card, which lists Card rows."""
    orm = connect(CARDS)
    em = orm.em.fork()
    member = Member(name="m")
    gold = GoldCard(code="g", member=member)
    em.persist(gold).flush()
    em.populate([member], ["card"])
    assert member.card is None
    em.remove(gold).flush()
    em.persist(gold)
    assert member.card is None
    em.flush()
    assert rows(orm, "select member_id from `gold_card`") == [(member.id,)]


def test_the_unit_of_work_inserts_an_entity_into_its_own_table_only(inh, em):
    """What every cascade goes through: a relation's target metadata handed with an entity
    of another class (which the relations' checks keep from happening) is refused."""
    star = Star(name="s")
    with pytest.raises(ValidationError, match=(
        r"^Cannot persist Star Star\(.*\) as a Scribe \(Star is an entity of its own, stored in "
        r"its own table, not in Scribe's table 'scribe'"
    )):
        em.get_unit_of_work().persist(star, inh.em.get_metadata(Scribe))
    assert not em.get_unit_of_work().is_new(star) and star._orm_uow is None


# -- the diff cores ------------------------------------------------------------------------

CORES = [pytest.param(_diff_py, id="twin")]
if core is not _diff_py:
    CORES.append(pytest.param(core, id="compiled"))


@pytest.mark.parametrize("backend", CORES)
def test_the_cores_take_entities_of_exactly_the_target_class(backend):
    scribe, star = Scribe(name="a"), Star(name="s")
    found, wrong = backend.checked_items([scribe, Ref(scribe)], Scribe, Ref)
    assert list(found.values()) == [scribe] and wrong is None
    found, wrong = backend.checked_items([scribe, Ref(star)], Scribe, Ref)
    assert list(found.values()) == [scribe] and wrong is star
    found, wrong = backend.checked_items([scribe], Star, Ref)
    assert found == {} and wrong is scribe
    scrolls = [Scroll(title="a", editor=star), Scroll(title="b", editor=scribe),
               Scroll(title="c", editor=Ref(star))]
    assert backend.new_targets(scrolls, "editor", Scribe, Ref) == ([1], [scribe], [])
    assert backend.new_targets(scrolls, "editor", Star, Ref) == ([0, 2], [star, star], [])


def test_wrap_shows_the_relation_of_a_sub_entity(inh, em):
    """(to_object reads an inherited relation as any other)"""
    star = Star(name="s", guild=Guild(name="g"))
    em.persist(star).flush()
    assert wrap(star).to_object()["guild"] == {
        "id": star.guild.id, "name": "g", "scribes": [], "stars": [star.id]
    }
