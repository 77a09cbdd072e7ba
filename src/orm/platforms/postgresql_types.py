"""The mapped types as PostgreSQL stores them: native values, bound and read as they are.

On SQLite a boolean is an integer and a datetime ISO text, converted by the types in
`orm.types` (and in C by the compiled core). PostgreSQL has the real column types, and psycopg
binds and loads the Python values directly, so here those types convert nothing, or only to
refuse what the column would change: the value read back equals the value written, and
change detection sees no false changes. `PostgresPlatform.adapt_property` puts them in place
of the built-in types (never of a user's own subclass, which keeps its conversions) before
the per-entity plans are built.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from ..types import (
    _DATETIME_IN_DATE,
    BigIntType,
    BlobType,
    BooleanType,
    DateTimeType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    JsonType,
    SmallIntType,
    TimeType,
    Type,
    UuidType,
)

__all__ = ["native_type", "TIMESTAMPTZ"]

#: how `column_type=` spells a timestamp that keeps its instant (aware datetimes)
TIMESTAMPTZ = ("timestamptz", "timestamp with time zone")


class PgBooleanType(Type):
    name = "boolean"
    python_types = (bool,)

    def column_type(self, prop: Any, dialect: str) -> str:
        return "boolean"


class PgDateTimeType(Type):
    """`timestamp` (naive values, as `datetime.now()` gives) unless the property declares
    `column_type="timestamptz"` (aware values, read back in UTC). Into a `timestamp` an aware
    value is written as its UTC wall-clock time; into a `timestamptz` a naive value is taken
    as UTC. Either way the value read back compares equal to the one written, so a loaded
    entity is never dirty."""

    name = "datetime"
    python_types = (datetime,)

    def __init__(self, aware: bool = False) -> None:
        self.aware = aware

    def to_db(self, value: Any) -> Any:
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=UTC) if self.aware else value
        value = value.astimezone(UTC)
        return value if self.aware else value.replace(tzinfo=None)

    def column_type(self, prop: Any, dialect: str) -> str:
        return "timestamptz" if self.aware else "timestamp"


class PgDateType(Type):
    name = "date"
    python_types = (date,)

    def to_db(self, value: Any) -> Any:
        if isinstance(value, datetime):
            raise ValueError(_DATETIME_IN_DATE % (value.time(),))
        return value

    def column_type(self, prop: Any, dialect: str) -> str:
        return "date"


class PgTimeType(Type):
    """`time`, or `timetz` when the property declares `column_type="timetz"`. A `time`
    column drops an offset (09:00+05:00 would come back 09:00, and no filter would find
    it), so an aware value is refused there with the property's name."""

    name = "time"
    python_types = (time,)

    def __init__(self, aware: bool = False) -> None:
        self.aware = aware

    def to_db(self, value: Any) -> Any:
        if not self.aware and value.tzinfo is not None:
            raise ValueError(
                f"{value} has a UTC offset, which a time column drops; store a naive time, "
                f"or declare column_type='timetz'"
            )
        return value

    def column_type(self, prop: Any, dialect: str) -> str:
        return "timetz" if self.aware else "time"


#: the digits PostgreSQL's numeric holds before and after the decimal point
_NUMERIC_WHOLE, _NUMERIC_PLACES = 131072, 16383


class PgDecimalType(Type):
    """`numeric`, exact at any size, unless the property declares `precision` (and
    `scale`): then `numeric(p,s)`, where PostgreSQL would round a value with more decimal
    places than the scale, silently, and refuse one with too many integer digits; both are
    refused here with the property's name, before any SQL runs, so what is stored is exactly
    what was written."""

    name = "decimal"
    python_types = (Decimal, int)

    def __init__(self, precision: int | None, scale: int) -> None:
        self.precision = precision
        self.scale = scale

    @property
    def for_filters(self) -> Type:
        """`{"price": {"$gt": Decimal("1.234")}}` compares numbers: no precision to keep."""
        return PgDecimalType(None, 0) if self.precision is not None else self

    def to_db(self, value: Any) -> Any:
        if value.__class__ is bool:
            raise TypeError("True and False are not decimal numbers")
        if isinstance(value, int):
            value = Decimal(value)
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number, which a numeric column holds")
        sign, digits, exponent = value.as_tuple()
        exponent = int(exponent)  # an int for every finite value
        places = -exponent if exponent < 0 else 0
        #: digits before the decimal point (1E+300 has 301)
        whole = max(len(digits) + exponent, 0)
        if whole > _NUMERIC_WHOLE or places > _NUMERIC_PLACES:
            raise ValueError(
                f"{value} has more digits than PostgreSQL's numeric holds ({_NUMERIC_WHOLE} "
                f"before the decimal point, {_NUMERIC_PLACES} after it)"
            )
        if self.precision is None:
            return value
        # digits beyond the scale that are not zeros (counted, not quantized: quantize
        # needs the context's precision, and 28 digits do not hold every value)
        if places > self.scale and any(digits[len(digits) - (places - self.scale):]):
            raise ValueError(
                f"{value} has {places} decimal places, more than the column's scale "
                f"{self.scale} (numeric({self.precision},{self.scale})), and PostgreSQL "
                f"would round it; round it first, or raise `scale`"
            )
        if value and whole > self.precision - self.scale:
            raise ValueError(
                f"{value} has {whole} digits before the decimal point, more than "
                f"numeric({self.precision},{self.scale}) holds "
                f"({self.precision - self.scale}); raise `precision`"
            )
        return value

    def column_type(self, prop: Any, dialect: str) -> str:
        if self.precision is None:
            return "numeric"
        return f"numeric({self.precision},{self.scale})"


class PgUuidType(UuidType):
    """`uuid`: psycopg binds and loads `uuid.UUID` as it is; text is still accepted where a
    key is looked up (a subclass of UuidType for that)."""

    def to_db(self, value: Any) -> Any:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))

    def column_type(self, prop: Any, dialect: str) -> str:
        return "uuid"


class PgJsonType(JsonType):
    """`jsonb`, travelling as JSON text both ways (the connection loads jsonb as text), so
    that snapshots and change detection work on the same text as on SQLite. PostgreSQL
    refuses the NUL character in jsonb (`\\u0000`), so it is refused here first."""

    def to_db(self, value: Any) -> Any:
        text = super().to_db(value)
        if "\\u0000" in text:
            raise ValueError(
                "a NUL character (\\u0000), which PostgreSQL's jsonb cannot hold; remove it"
            )
        return text

    def column_type(self, prop: Any, dialect: str) -> str:
        return "jsonb"


#: built-in types whose column type alone differs; an int is 64-bit, as SQLite stores it
#: (PostgreSQL's `integer` holds 32 bits)
_COLUMN_TYPES: dict[type, str] = {
    IntegerType: "bigint",
    BigIntType: "bigint",
    SmallIntType: "smallint",
    FloatType: "double precision",
    DoubleType: "double precision",
    BlobType: "bytea",
}


#: a declared `column_type` with limits PostgreSQL enforces: `numeric(p,s)`, `decimal(p)`
_DECLARED_NUMERIC = re.compile(r"^\s*(?:numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\s*$", re.I)


#: the column types (as `column_type=` may declare them) whose values psycopg binds and
#: loads natively, per built-in type
_NATIVE_COLUMNS: dict[type, tuple[str, ...]] = {
    BooleanType: ("bool",),
    DateTimeType: ("timestamp",),
    DateType: ("date",),
    TimeType: ("time",),
    DecimalType: ("numeric", "decimal"),
    UuidType: ("uuid",),
    JsonType: ("json",),
}


def native_type(prop: Any) -> Type | None:
    """The PostgreSQL stand-in for a property's built-in mapped type, or None to keep it.

    A property that declares another column type (`column_type="text"` for a datetime or a
    decimal, "integer" for a boolean) keeps its built-in type, which writes and reads that
    column's form (ISO text, the decimal's text, 0/1) exactly as on SQLite."""
    mapped = prop.type
    kind = type(mapped)
    declared = (prop.column_type or "").strip().lower()
    if declared and not declared.startswith(_NATIVE_COLUMNS.get(kind, ("",))):
        return None
    if kind is BooleanType:
        return PgBooleanType()
    if kind is DateTimeType:
        declared = (prop.column_type or "").strip().lower()
        return PgDateTimeType(aware=declared in TIMESTAMPTZ)
    if kind is DateType:
        return PgDateType()
    if kind is TimeType:
        return PgTimeType(aware=declared in ("timetz", "time with time zone"))
    if kind is DecimalType:
        precision = getattr(prop, "precision", None)
        scale = getattr(prop, "scale", None)
        declared = _DECLARED_NUMERIC.match(prop.column_type or "")
        if precision is None and scale is None and declared:
            # column_type="decimal(10,2)": the same limits as precision=10, scale=2
            precision = int(declared.group(1))
            scale = int(declared.group(2) or 0)
        if precision is None and scale is not None:
            precision = 38  # a scale alone: numeric(38, scale)
        return PgDecimalType(precision, 0 if scale is None else scale)
    if kind is UuidType:
        return PgUuidType()
    if kind is JsonType:
        return PgJsonType()
    return None


def column_type_of(mapped: Type, prop: Any) -> str:
    """The PostgreSQL column type of a (possibly adapted) mapped type."""
    fixed = _COLUMN_TYPES.get(type(mapped))
    return fixed if fixed is not None else mapped.column_type(prop, "postgresql")
