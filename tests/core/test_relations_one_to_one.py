"""The inverse side of a one-to-one (`OneToOne(mapped_by=...)`), on both databases: the
discovery checks, no column, both sides kept in step in memory (the previous partner
unlinked), the flush writing only the owning foreign key, cascade persist and remove,
select-in populate, the unknown state of a loaded entity, filters across it, to_object."""

from __future__ import annotations

import pytest

from orm import (
    EventSubscriber,
    ManyToOne,
    MetadataError,
    OneToOne,
    PrimaryKey,
    ValidationError,
    entity,
    wrap,
)
from tests.core.cascade_models import MODELS, Author, Member, Profile
from tests.databases import rows


@pytest.fixture
def rel(connect, log):
    instance = connect(MODELS, debug=["query"], logger=log.append)
    log.clear()
    return instance


@pytest.fixture
def rem(rel):
    return rel.em.fork()


def seed(rem) -> tuple[int, int, int]:
    """Ann with a profile, Bob without. Returns (ann, bob, profile) keys, cleared."""
    ann, bob = Member(name="Ann", profile=Profile(bio="hello")), Member(name="Bob")
    rem.persist([ann, bob]).flush()
    rem.clear()
    return ann.id, bob.id, ann.profile.id


# -- declarations -------------------------------------------------------------------------
def test_mapped_by_must_name_the_owning_one_to_one_pointing_back(connect):
    @entity()
    class Car:
        id: int = PrimaryKey()
        plate: Plate | None = OneToOne(mapped_by="carx")

    @entity()
    class Plate:
        id: int = PrimaryKey()
        car: Car | None = OneToOne(nullable=True)

    with pytest.raises(
        MetadataError,
        match=r"Car\.plate = OneToOne\(mapped_by='carx'\) must name the owning OneToOne on "
              r"Plate that points back at Car: Plate\.carx does not exist\.",
    ):
        connect([Car, Plate], create=False)


def test_mapped_by_naming_a_many_to_one_is_refused(connect):
    @entity()
    class Desk:
        id: int = PrimaryKey()
        lamp: Lamp | None = OneToOne(mapped_by="desk")

    @entity()
    class Lamp:
        id: int = PrimaryKey()
        desk: Desk = ManyToOne()

    with pytest.raises(MetadataError, match=r"Desk\.lamp .*Lamp\.desk is not an owning OneToOne"):
        connect([Desk, Lamp], create=False)


def test_the_inverse_side_has_no_column(rel):
    sql, _ = rel.em.sql.select(rel.em.metadata.get(Member), {})
    assert "profile" not in sql
    member = rel.em.metadata.get(Member)
    assert [p.name for p in member.columns] == ["id", "name"]


# -- in memory ----------------------------------------------------------------------------
def test_both_sides_are_kept_in_step_and_the_previous_partner_unlinked():
    p1, p2 = Profile(bio="one"), Profile(bio="two")
    ann = Member(name="Ann", profile=p1)
    assert p1.member is ann and ann.profile is p1
    bob = Member(name="Bob")
    p1.member = bob  # the owning side moves it
    assert bob.profile is p1 and ann.profile is None
    bob.profile = p2  # the inverse side: p1 unlinked, p2 linked
    assert p2.member is bob and p1.member is None and bob.profile is p2
    Profile(bio="three", member=bob)  # built with its owner: p2 unlinked
    assert bob.profile.bio == "three" and p2.member is None
    bob.profile = None
    assert bob.profile is None and p1.member is None


def test_a_wrong_class_is_refused():
    with pytest.raises(ValidationError, match=r"Invalid value for Member\.profile: expected a "
                                              r"Profile entity or None, got Member"):
        Member(name="a").profile = Member(name="b")


# -- flush --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["x", 5, "member of another class"])
def test_a_wrong_value_on_the_owning_side_is_refused_with_nothing_changed(rem, value):
    ann_id, _, profile_id = seed(rem)
    ann = rem.find_one(Member, ann_id, populate=["profile"])
    profile = ann.profile
    if value == "member of another class":
        value = Profile(bio="not a member")
    with pytest.raises(ValidationError, match=r"Invalid value for Profile\.member: expected a "
                       r"Member entity or None, got .* Nothing was changed\.") as info:
        profile.member = value
    assert info.value.property == "member"
    assert profile.member is ann and ann.profile is profile
    with pytest.raises(ValidationError, match=r"Invalid value for Profile\.member"):
        Profile(bio="b", member=value)
    assert ann.profile is profile
    rem.flush()


def test_the_flush_writes_only_the_owning_foreign_key(rel, rem):
    ann_id, bob_id, profile_id = seed(rem)
    assert rows(rel, "select member_id from profile") == [(ann_id,)]
    ann, bob = rem.find(Member, {}, populate=["profile"], order_by={"id": "asc"})
    bob.profile = ann.profile  # moved: one UPDATE of profile.member_id
    assert ann.profile is None
    rem.flush()
    assert rows(rel, "select id, member_id from profile") == [(profile_id, bob_id)]
    fresh = Profile(bio="new")
    ann.profile = fresh  # a new entity linked to a managed one: persisted (Cascade.PERSIST)
    bob.profile = None
    rem.flush()
    assert rows(rel, "select bio, member_id from profile order by id") == [
        ("hello", None), ("new", ann_id)
    ]


def test_cascade_remove_from_the_inverse_side(rel, rem):
    ann_id, bob_id, _ = seed(rem)
    rem.remove(rem.find_one(Member, {"id": ann_id}))  # profile not loaded: loaded to go
    rem.remove(rem.find_one(Member, {"id": bob_id}, populate=["profile"]))
    rem.flush()
    assert rows(rel, "select count(*) from profile") == [(0,)]
    assert rows(rel, "select count(*) from member") == [(0,)]


# -- loading ------------------------------------------------------------------------------
def test_reading_it_before_populate_is_a_validation_error(rem):
    ann_id, *_ = seed(rem)
    ann = rem.find_one(Member, {"id": ann_id})
    with pytest.raises(
        ValidationError,
        match=r"Member\.profile is not loaded: the Profile on the other side of this "
              r"one-to-one holds the foreign key.*populate=\['profile'\]",
    ):
        ann.profile  # noqa: B018
    assert "profile" not in wrap(ann).to_object()


def test_populate_is_one_select_in_query(rel, rem, log):
    ann_id, bob_id, profile_id = seed(rem)
    log.clear()
    ann, bob = rem.find(Member, {}, populate=["profile"], order_by={"id": "asc"})
    selects = [s for s in log.sql() if s.startswith("select")]
    assert len(selects) == 2 and "member_id" in selects[1] and " in (" in selects[1], selects
    assert ann.profile.id == profile_id and ann.profile.member is ann
    assert bob.profile is None
    assert wrap(ann).to_object() == {
        "id": ann_id, "name": "Ann", "profile": {"id": profile_id, "bio": "hello", "member": ann_id}
    }
    assert wrap(bob).to_object()["profile"] is None


def test_populate_keeps_a_link_not_flushed_yet(rem):
    ann_id, bob_id, _ = seed(rem)
    bob = rem.find_one(Member, {"id": bob_id})
    bob.profile = Profile(bio="draft")
    rem.populate([bob], ["profile"])
    assert bob.profile.bio == "draft"


def test_filters_reach_across_it(rem):
    ann_id, bob_id, _ = seed(rem)
    assert [m.id for m in rem.find(Member, {"profile": {"bio": "hello"}})] == [ann_id]
    assert rem.find(Member, {"profile": {"bio": "nope"}}) == []
    assert [m.id for m in rem.find(Member, {"$not": {"profile": {"id": {"$gt": 0}}}})] == [bob_id]
    with pytest.raises(ValidationError, match=r"Member\.profile \(the inverse one-to-one of "
                                              r"Profile\) takes conditions on Profile"):
        rem.find(Member, {"profile": 3})


@pytest.mark.parametrize("taker", [0, 1])
def test_taking_over_another_members_profile_in_one_flush(rel, rem, taker):
    """The profile moved onto a member whose own profile is unlinked in the same flush:
    the unique foreign key never holds the same member twice, whatever order the rows
    are written in."""
    ann, bob = Member(name="Ann", profile=Profile(bio="a")), Member(name="Bob")
    Profile(bio="b", member=bob)
    rem.persist([ann, bob]).flush()
    rem.clear()
    members = rem.find(Member, {}, populate=["profile"], order_by={"id": "asc"})
    took, lost = members[taker], members[1 - taker]
    took.profile = lost.profile
    rem.flush()
    assert rows(rel, "select member_id from profile where member_id is not null") == [
        (took.id,)
    ]
    assert rows(rel, "select count(*) from profile where member_id is null") == [(1,)]


@pytest.mark.parametrize("populated", [False, True])
@pytest.mark.parametrize("size", [2, 3])
def test_partners_swapped_or_rotated_in_one_flush(rel, rem, populated, size):
    """Each profile takes the member another profile gives up in the same flush: the rows
    giving theirs up are released (NULL) first, so the unique key never holds a member
    twice, whichever row is written first. A rotation of three the same."""
    members = [Member(name=f"m{i}", profile=Profile(bio=f"p{i}")) for i in range(size)]
    rem.persist(members).flush()
    rem.clear()
    populate = ["member"] if populated else []
    profiles = rem.find(Profile, {}, order_by={"bio": "asc"}, populate=populate)
    before = [p.member for p in profiles]
    for k, profile in enumerate(profiles):
        profile.member = before[(k + 1) % size]
    rem.flush()
    wanted = [(f"p{k}", f"m{(k + 1) % size}") for k in range(size)]
    assert rows(rel, "select p.bio, m.name from profile p join member m on m.id = "
                     "p.member_id order by p.bio") == wanted
    rem.clear()
    assert [
        (p.bio, p.member.name)
        for p in rem.find(Profile, {}, order_by={"bio": "asc"}, populate=["member"])
    ] == wanted
    assert rem.get_unit_of_work().compute_change_sets() == []


def test_a_swap_that_keeps_a_value_twice_is_still_refused(rel, rem):
    """Releasing is for values another row gives up; two rows ending on one member is
    the database's unique error, nothing written."""
    from orm import UniqueConstraintViolationException

    members = [Member(name=f"m{i}", profile=Profile(bio=f"p{i}")) for i in range(2)]
    rem.persist(members).flush()
    rem.clear()
    first, second = rem.find(Profile, {}, order_by={"bio": "asc"})
    taken = second.member
    first.member = taken  # second is not populated from the member's side: it keeps it too
    with pytest.raises(UniqueConstraintViolationException, match=r"Profile\.member"):
        rem.flush()
    assert rows(rel, "select p.bio, m.name from profile p join member m on m.id = "
                     "p.member_id order by p.bio") == [("p0", "m0"), ("p1", "m1")]


@pytest.mark.parametrize("side", ["inverse", "owning"])
def test_a_profile_taken_over_and_a_new_one_for_its_member_in_one_flush(rel, rem, side):
    """Bob takes over Ann's profile and Ann gets a new one: the new row takes the member
    the moved row gives up, so the moved row is released (NULL) before the insert (the
    insert ran first and failed on the unique key, every time)."""
    ann_id, bob_id, old_id = seed(rem)
    ann, bob = rem.find(Member, {}, populate=["profile"], order_by={"id": "asc"})
    if side == "inverse":
        bob.profile = ann.profile
        ann.profile = Profile(bio="new")
    else:
        ann.profile.member = bob
        Profile(bio="new", member=ann)
    rem.flush()
    new_id = ann.profile.id
    assert rows(rel, "select id, member_id from profile order by id") == [
        (old_id, bob_id), (new_id, ann_id),
    ]  # fmt: skip
    assert bob.profile.id == old_id and ann.profile.bio == "new"
    assert rem.get_unit_of_work().compute_change_sets() == []


def test_a_new_profile_replaces_the_loaded_one_in_one_flush(rel, rem):
    ann_id, _, old_id = seed(rem)
    ann = rem.find_one(Member, {"id": ann_id}, populate=["profile"])
    old = ann.profile
    ann.profile = Profile(bio="new")  # the old one is unlinked before the new row goes in
    assert old.member is None
    rem.flush()
    assert rows(rel, "select id, member_id from profile order by id") == [
        (old_id, None), (ann.profile.id, ann_id)
    ]


def test_populate_star_reaches_the_inverse_side(rem):
    ann_id, _, profile_id = seed(rem)
    ann = rem.find_one(Member, {"id": ann_id}, populate=["*"])
    assert ann.profile.id == profile_id
    with pytest.raises(ValidationError, match=r"relations of Member: profile"):
        rem.find(Member, {}, populate=["nope"])


def test_an_owning_side_holding_a_ref_is_kept_in_step(connect):
    from orm import Ref

    @entity()
    class Nest:
        id: int = PrimaryKey()
        egg: Egg | None = OneToOne(mapped_by="nest")

    @entity()
    class Egg:
        id: int = PrimaryKey()
        nest: Ref[Nest] | None = OneToOne(nullable=True, inversed_by="egg")

    orm = connect([Nest, Egg])
    em = orm.em.fork()
    nest = Nest()
    egg = Egg(nest=nest)
    assert nest.egg is egg and egg.nest.unwrap() is nest
    em.persist(nest).flush()
    assert rows(orm, "select nest_id from egg") == [(nest.id,)]
    nest.egg = None
    assert egg.nest is None
    em.flush()
    assert rows(orm, "select nest_id from egg") == [(None,)]


def test_a_deleted_profile_leaves_its_member_and_is_not_inserted_again(rel, rem):
    ann_id, _, profile_id = seed(rem)
    ann = rem.find_one(Member, {"id": ann_id}, populate=["profile"])
    profile = ann.profile
    rem.remove(profile).flush()
    assert ann.profile is None
    ann.name = "Ann B."
    rem.flush()
    assert rows(rel, f"select count(*) from profile where id = {profile_id}") == [(0,)]
    bob = rem.find_one(Member, {"name": "Bob"}, populate=["profile"])
    for link in (lambda: setattr(profile, "member", bob), lambda: setattr(bob, "profile", profile)):
        with pytest.raises(ValidationError, match=r"the row of Profile .* was deleted by a flush"):
            link()
    assert bob.profile is None



def test_a_new_partner_of_a_member_marked_for_removal_is_refused(rel, rem):
    """The flush deletes the member (and, by cascade, what it holds then): a new profile
    linked to it, from either side, would be dropped without a word. Refused, nothing
    changed; re-linking the partner it has is not new; after `em.persist()` of the member
    the link is kept."""
    member, other = Member(name="m"), Member(name="o")
    kept = Profile(bio="kept", member=other)
    rem.persist([member, other]).flush()
    rem.remove(member)
    message = r"Cannot link .*: Member .* is marked for removal in this EntityManager"
    fresh = Profile(bio="fresh")
    for link in (
        lambda: Profile(bio="built", member=member),
        lambda: setattr(member, "profile", fresh),
        lambda: setattr(fresh, "member", member),
        lambda: setattr(kept, "member", member),
    ):
        with pytest.raises(ValidationError, match=message):
            link()
    assert member.profile is None and fresh.member is None
    assert kept.member is other and other.profile is kept
    rem.persist(member)
    member.profile = fresh
    rem.flush()
    assert sorted(rows(rel, "select bio, member_id from profile")) == [
        ("fresh", member.id), ("kept", other.id)
    ]


def test_a_member_marked_for_removal_keeps_its_profile_link_and_assign_changes_nothing(
    rel, rem
):
    """Re-linking the profile a member has, its inverse side not loaded, is not a new
    link: accepted. `em.assign` of a new partner to a member marked for removal is
    refused before any property changes."""
    ann, bob, cat = Member(name="ann"), Member(name="bob"), Member(name="cat")
    p, q, r = Profile(bio="p", member=ann), Profile(bio="q"), Profile(bio="r", member=cat)
    rem.persist([ann, bob, cat, q]).flush()
    rem.clear()
    ann = rem.find_one_or_fail(Member, {"name": "ann"})  # ann.profile not loaded
    cat = rem.find_one_or_fail(Member, {"name": "cat"})
    p = rem.find_one_or_fail(Profile, {"bio": "p"})
    q = rem.find_one_or_fail(Profile, {"bio": "q"})
    r = rem.find_one_or_fail(Profile, {"bio": "r"})
    bob = rem.find_one_or_fail(Member, {"name": "bob"})
    rem.remove(ann)
    rem.remove(cat)
    ann.profile = p
    rem.assign(cat, {"profile": r})
    with pytest.raises(
        ValidationError,
        match=r"Cannot assign Member\.profile of .*: Member .* is marked for removal",
    ):
        rem.assign(ann, {"name": "changed", "profile": q})
    assert ann.name == "ann" and q.member is None
    rem.remove(p)
    with pytest.raises(ValidationError, match=r"Cannot assign Profile\.member of .*: Profile"):
        rem.assign(p, {"bio": "changed", "member": bob})
    assert p.bio == "p"


@pytest.mark.parametrize(
    ("call", "prop", "what"),
    [
        (lambda em, ids: em.native_update(Member, {"id": ids[0]}, {"profile": ids[2]}),
         "Member.profile", "the inverse side of a one-to-one"),
        (lambda em, ids: em.upsert(Member, {"id": ids[0], "name": "Ann", "profile": None}),
         "Member.profile", "the inverse side of a one-to-one"),
        (lambda em, ids: em.native_insert(Author, {"name": "x", "articles": []}),
         "Author.articles", "a collection"),
        (lambda em, ids: em.native_update(Author, {}, {"articles": []}),
         "Author.articles", "a collection"),
    ],
    ids=["native_update", "upsert", "native_insert", "native_update_collection"],
)  # fmt: skip
def test_calls_that_write_columns_refuse_a_relation_without_one(rel, rem, log, call, prop,
                                                                 what):
    """A collection or an inverse one-to-one has no column: named, before any SQL (the
    error named another property, or the SQL held an empty column name and the advice was
    to update the schema)."""
    ids = seed(rem)
    log.clear()
    with pytest.raises(ValidationError) as info:
        call(rem, ids)
    message = str(info.value)
    assert f"writes {prop.split('.')[0]}'s columns only, and {prop} is {what}" in message
    assert message.endswith("set it on the entity before a flush; nothing was written.")
    assert info.value.property == prop.split(".")[1]
    assert [line for line in log if "insert" in line or "update" in line] == []


def test_a_profile_a_handler_gives_is_written_once_after_a_retry(connect):
    """A `before_update` handler gives a member without one a new profile
    (`member.profile = Profile(member=member)`); the flush fails and is retried. The
    profile the failed flush made stayed on `member.profile`, so the retry's handler took
    it from there (setting its member to None) and every retry failed on it, until
    `em.clear()`."""
    failing: list[bool] = []

    class Giver(EventSubscriber):
        def get_subscribed_entities(self):
            return [Member]

        def before_update(self, args):
            if args.entity.profile is None:
                args.entity.profile = Profile(bio="auto", member=args.entity)

        def after_flush(self, args):
            if failing:
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Giver()])
    em = orm.em.fork()
    _, bob_id, _ = seed(em)
    bob = em.find_one_or_fail(Member, bob_id, populate=["profile"])
    bob.name = "Robert"
    failing.append(True)
    with pytest.raises(RuntimeError, match="after_flush failed"):
        em.flush()
    assert bob.profile is None
    failing.clear()
    em.flush()
    assert rows(orm, f"select bio from profile where member_id = {bob_id}") == [("auto",)]
    assert rows(orm, "select count(*) from profile") == [(2,)]


def test_order_by_an_inverse_one_to_one_is_refused_naming_it(rem):
    """The inverse side holds no column: ordering by it with a plain direction sent
    `order by ""` to the database."""
    seed(rem)
    with pytest.raises(ValidationError, match=r"^order_by on Member: profile is the inverse "
                       r"side of a one-to-one, which holds no column \(order from the other "
                       r"side\)"):
        rem.find(Member, {}, order_by={"profile": "asc"})


def test_a_one_to_one_a_handler_repoints_survives_a_failed_flush(connect):
    """A `before_update` handler points Ann's profile at Bob (`profile.member = bob`); the
    flush fails and is retried. Putting back only `profile.member` left Bob's inverse side
    on it, and every retry failed on the unique key until `em.clear()`. A relation a
    handler assigned stays as the handler left it, both sides in step: the retry writes it."""
    failing: list[bool] = []
    held: list = []

    class Repointer(EventSubscriber):
        def before_update(self, args):
            if isinstance(args.entity, Member) and args.entity.name == "go" and held:
                profile, bob = held
                profile.member = bob

        def after_flush(self, args):
            if failing:
                raise RuntimeError("after_flush failed")

    orm = connect(MODELS, subscribers=[Repointer()])
    em = orm.em.fork()
    ann_id, bob_id, profile_id = seed(em)
    ann = em.find_one_or_fail(Member, ann_id, populate=["profile"])
    bob = em.find_one_or_fail(Member, bob_id, populate=["profile"])
    profile = ann.profile
    held[:] = [profile, bob]
    ann.name = "go"
    failing.append(True)
    with pytest.raises(RuntimeError, match="after_flush failed"):
        em.flush()
    assert profile.member is bob and bob.profile is profile and ann.profile is None
    failing.clear()
    held.clear()
    em.flush()
    assert rows(orm, f"select member_id from profile where id = {profile_id}") == [(bob_id,)]
