"""Names longer than PostgreSQL keeps (63 bytes): the index names the schema generator makes
are shortened with a hash so that two long names stay two indexes and an applied update finds
nothing left to do; a table or column name that long is refused when the ORM starts, since
the server would truncate it without a word."""

from __future__ import annotations

import pytest

from orm import MetadataError, PrimaryKey, Property, UniqueConstraintViolationException, entity
from orm.platforms.postgresql import PostgresPlatform
from orm.platforms.sqlite import SqlitePlatform


@entity()
class CustomerSubscriptionInvoice:
    id: int = PrimaryKey()
    external_payment_provider_reference_primary: str = Property(unique=True)
    external_payment_provider_reference_secondary: str = Property(unique=True)
    external_payment_provider_reference_tertiary: str = Property(index=True, default="")
    code: str = Property(unique=True, default_factory=lambda: "c")


LONG_PRIMARY = "customer_subscription_invoice_external_payment_provider_reference_primary_unique"


def index_names(o):
    return sorted(
        i.name for i in o.platform.live_indexes(o.connection, "customer_subscription_invoice")
    )


def test_long_index_names_get_distinct_names_that_fit(connect, database):
    o = connect([CustomerSubscriptionInvoice], create=False)
    o.schema.drop_schema()
    o.schema.create_schema()  # two names sharing a 63-byte prefix: no TableExistsException
    names = index_names(o)
    assert len(names) == 4 and len(set(names)) == 4
    assert "customer_subscription_invoice_code_unique" in names  # a short name is unchanged
    if database == "postgresql":
        assert all(len(n.encode()) <= 63 for n in names)
        assert LONG_PRIMARY not in names
        assert any(n.startswith(LONG_PRIMARY[:54]) for n in names)
    else:
        assert LONG_PRIMARY in names
    assert o.schema.get_update_schema_sql() == ""

    em = o.em.fork()
    em.persist(CustomerSubscriptionInvoice(
        external_payment_provider_reference_primary="p1",
        external_payment_provider_reference_secondary="s1", code="a",
    )).flush()
    # both unique indexes exist and each holds its own column
    for primary, secondary in (("p1", "s2"), ("p2", "s1")):
        with pytest.raises(UniqueConstraintViolationException) as info:
            o.em.fork().persist(CustomerSubscriptionInvoice(
                external_payment_provider_reference_primary=primary,
                external_payment_provider_reference_secondary=secondary, code=primary + secondary,
            )).flush()
        assert info.value.entity == "CustomerSubscriptionInvoice"


def test_an_applied_update_finds_no_change_afterwards(connect, database):
    o = connect([CustomerSubscriptionInvoice])
    before = index_names(o)
    for name in before:
        o.connection.execute(f"drop index {o.platform.quote(name)}")
    assert o.schema.get_update_schema_sql() != ""
    o.schema.update_schema()
    assert index_names(o) == before
    assert o.schema.get_update_schema_sql() == ""
    o.schema.update_schema()
    assert index_names(o) == before


def test_fit_identifier_keeps_short_names_and_hashes_long_ones():
    pg = PostgresPlatform()
    assert pg.fit_identifier("user_email_unique") == "user_email_unique"
    exact = "x" * 63
    assert pg.fit_identifier(exact) == exact
    a, b = pg.fit_identifier("y" * 70 + "a"), pg.fit_identifier("y" * 70 + "b")
    assert a != b and len(a) == len(b) == 63
    assert pg.fit_identifier("y" * 70 + "a") == a  # stable from one run to the next
    wide = pg.fit_identifier("é" * 40)  # 80 bytes: cut on a character boundary
    assert len(wide.encode()) <= 63
    assert SqlitePlatform().fit_identifier("y" * 200) == "y" * 200


def test_a_table_or_column_name_too_long_for_postgresql_is_refused(connect, database):
    @entity()
    class AVeryLongEntityNameForTestingIdentifierTruncationInPostgres:
        id: int = PrimaryKey()

    @entity(table_name="short")
    class Short:
        id: int = PrimaryKey()
        a_column_name_that_is_longer_than_the_sixty_three_bytes_postgres_keeps: int = 0

    for cls, prop, kind in (
        (AVeryLongEntityNameForTestingIdentifierTruncationInPostgres, None, "table"),
        (Short, "a_column_name_that_is_longer_than_the_sixty_three_bytes_postgres_keeps",
         "column"),
    ):
        if database == "sqlite":
            o = connect([cls])
            assert o.schema.get_update_schema_sql() == ""
            continue
        with pytest.raises(MetadataError) as info:
            connect([cls], create=False)
        assert info.value.entity == cls.__name__
        assert info.value.property == prop
        assert f"the {kind} name" in str(info.value)
        assert "more than the 63 bytes PostgreSQL keeps" in str(info.value)
