"""PostgreSQL session settings the ORM relies on hold whatever the client environment says:
timestamptz values come back in UTC even when libpq's PGTZ names another zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from orm import PrimaryKey, Property, ValidationError, entity
from tests import databases

pytestmark = pytest.mark.skipif(
    not databases.PG_URL, reason="PostgreSQL tests run when ORM_TEST_PG_URL is set"
)


@pytest.fixture
def database() -> str:
    return "postgresql"


@entity()
class Meeting:
    id: int = PrimaryKey()
    at: datetime = Property(column_type="timestamptz")
    local: datetime | None = None


def test_timestamptz_reads_back_in_utc_when_pgtz_names_another_zone(connect, monkeypatch):
    monkeypatch.setenv("PGTZ", "America/New_York")
    em = connect([Meeting]).em.fork()
    written = datetime(2024, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    meeting = Meeting(at=written, local=datetime(2024, 1, 1, 12, 0))
    em.persist(meeting).flush()
    loaded = em.fork().find_one_or_fail(Meeting, meeting.id)
    assert loaded.at == written and loaded.at.utcoffset() == timedelta(0)
    assert loaded.at.tzinfo == UTC or loaded.at.tzname() == "UTC"
    assert loaded.local == datetime(2024, 1, 1, 12, 0)
    assert databases.rows(em._orm, "select cast(at as text) from `meeting`") == [
        ("2024-01-01 12:00:00+00",)
    ]


@entity()
class Shift:
    id: int = PrimaryKey()
    starts: time | None = None
    zoned: time | None = Property(column_type="timetz", nullable=True)


def test_an_aware_time_is_refused_in_a_time_column_and_kept_in_timetz(connect):
    em = connect([Shift]).em.fork()
    nine_plus5 = time(9, 0, tzinfo=timezone(timedelta(hours=5)))
    em.persist(Shift(starts=nine_plus5))
    with pytest.raises(ValidationError, match="Shift.starts.*timetz"):
        em.flush()
    em.clear()
    shift = Shift(starts=time(9, 0), zoned=nine_plus5)
    em.persist(shift).flush()
    loaded = em.fork().find_one_or_fail(Shift, shift.id)
    assert loaded.zoned == nine_plus5 and loaded.zoned.utcoffset() == timedelta(hours=5)
    assert em.fork().count(Shift, {"zoned": nine_plus5}) == 1
