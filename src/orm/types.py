"""Mapped types: how a Python value becomes a database value and back.

A mapped type answers four questions for the change detector and the schema generator: which
Python values it accepts (checked at flush), how to convert to and from the database
(`to_db` / `to_python`), what column type it wants, and when two database values are the same
(`compare`). The per-entity plans built in `orm.metadata.plan` read `converts`, `compares` and
`mutable` once, so that types that need no work cost nothing per row.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time

from ._typing import TYPE_CHECKING, get_args, get_origin
from .errors import _short

if TYPE_CHECKING:
    import enum
    from typing import Any

__all__ = [
    "Type",
    "StringType",
    "TextType",
    "CheckedStringType",
    "CheckedIntegerType",
    "IntegerType",
    "SmallIntType",
    "BigIntType",
    "FloatType",
    "DoubleType",
    "DecimalType",
    "BooleanType",
    "DateTimeType",
    "DateType",
    "TimeType",
    "JsonType",
    "UuidType",
    "BlobType",
    "EnumType",
    "t",
    "types",
    "INT64_MIN",
    "INT64_MAX",
    "unstorable",
    "value_problem",
]

# decimal, json and uuid are imported by the first column of their type (a mapped type reads
# its `python_types` when the entity's plans are built): `import orm` loads none of them,
# and an entity without such a column never does. The module globals below are bound then;
# the types' methods check for that first, a global read against microseconds of conversion.
Decimal: Any = None
uuid: Any = None
json: Any = None
_FLOAT_RANGE: tuple[Any, Any] = (None, None)


def _import_value_modules() -> None:
    global Decimal, uuid, json, _FLOAT_RANGE
    import json
    import uuid
    from decimal import Decimal

    #: the magnitudes a 64-bit float holds with 15 significant digits exactly: beyond them a
    #: value becomes an infinity, below them zero or a subnormal that has lost digits
    _FLOAT_RANGE = (Decimal("1E-307"), Decimal("1E+308"))


class _ImportedClasses:
    """A `python_types` naming a class of decimal or uuid: read once (when plans are built),
    it imports them and replaces itself on the class with the plain tuple."""

    def __init__(self, name: str, *more: type) -> None:
        self.name = name
        self.more = more

    def __set_name__(self, owner: type, attr: str) -> None:
        self.owner = owner
        self.attr = attr

    def __get__(self, obj: object, owner: type | None = None) -> tuple[type, ...]:
        if Decimal is None:
            _import_value_modules()
        value = (Decimal if self.name == "Decimal" else uuid.UUID, *self.more)
        setattr(self.owner, self.attr, value)
        return value


#: the integers SQLite stores (64-bit signed); sqlite3 cannot bind a larger Python int
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def unstorable(value: Any) -> str | None:
    """Why SQLite cannot store a plain (unconverted) value faithfully, or None.

    NaN is bound as NULL by sqlite3 (it would come back as None), and an int beyond 64 bits
    raises OverflowError at binding. The diff cores make the same check in their `_check`,
    for columns without a `to_db` converter."""
    if isinstance(value, float):
        if value != value:
            return (
                "NaN is refused (SQLite would store NULL, and NaN never equals itself, so it "
                "would always look changed); use None for no value"
            )
    elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return "the database stores only 64-bit integers"
    return None


class Type:
    """Base of every mapped type; subclass it for a custom type.

    Override `to_db` / `to_python` to convert, `column_type` to choose the DDL type, and
    `compare(a, b)` if two *database* values that differ as Python objects mean the same thing
    (change detection compares the converted current value with the snapshot, which holds what
    was read from or written to the database).
    """

    #: Python types accepted on flush; empty means "anything".
    python_types: tuple[type, ...] = ()
    #: True when values can be changed in place (dicts, lists): compared at every flush.
    #: A custom type that leaves it unset is compared at every flush where an entity holds
    #: a value of a mutable class, unless each of its `python_types` is an immutable
    #: built-in (see `presumed_in_place`); set it to False to say its values never change
    #: in place.
    mutable: bool = False
    #: the accepted value types that can change in place when the rest cannot (bytearray
    #: among bytes): only entities holding one are compared at every flush
    mutable_values: tuple[type, ...] = ()
    #: name used in `Property(type="...")` and in messages
    name: str = "custom"

    def to_db(self, value: Any) -> Any:
        return value

    def to_python(self, value: Any) -> Any:
        return value

    def column_type(self, prop: Any, dialect: str) -> str:
        return "text"

    def compare(self, a: Any, b: Any) -> bool:
        return bool(a == b)

    @property
    def for_filters(self) -> Type:
        """The type a filter value goes through: this one, unless its `to_db` refuses values
        only because the column could not store them (too long, too many decimal places),
        which in a comparison simply match no row or compare as numbers."""
        return self

    # -- used by the plans, computed from what the subclass overrides --------------------
    @property
    def converts(self) -> bool:
        cls = type(self)
        return cls.to_db is not Type.to_db or cls.to_python is not Type.to_python

    @property
    def compares(self) -> bool:
        return type(self).compare is not Type.compare

    def accepts(self, value: Any) -> bool:
        return not self.python_types or isinstance(value, self.python_types)

    def describe(self) -> str:
        if not self.python_types:
            return self.name
        return " | ".join(t.__name__ for t in self.python_types)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(type(self))


#: classes whose values cannot change in place (a custom type holding only these needs no
#: comparison of the values nobody assigned); Enum, Decimal and UUID are added by name below
_IMMUTABLE = (str, int, float, bool, bytes, datetime, date, time, tuple, frozenset, type(None))
_IMMUTABLE_BY_NAME = (("enum", "Enum"), ("decimal", "Decimal"), ("uuid", "UUID"))


def _immutable_class(kind: Any) -> bool:
    if not isinstance(kind, type):
        return False
    if issubclass(kind, _IMMUTABLE):
        return True
    for module, name in _IMMUTABLE_BY_NAME:
        # a class of a module not imported yet cannot be a subclass of it
        found = sys.modules.get(module)
        if found is not None and issubclass(kind, getattr(found, name)):
            return True
    return False


def declares_in_place(mapped: Type) -> bool:
    """Whether values of `mapped` are said to change in place (a JSON document appended
    to), so that a flush compares every loaded entity's value, not only the assigned ones.
    This package's types answer with `mutable`; a custom type that sets `mutable` itself
    (on the class or the instance) is taken at its word; one that never says is
    `presumed_in_place` or not."""
    return _declared_in_place(mapped) is True


def presumed_in_place(mapped: Type) -> bool:
    """Whether `mapped` is a custom type that never said whether its values change in place
    and may hold values that do. Such a column is compared at a flush only for the entities
    that hold a value of a mutable class (a list), never for those holding a str or a float:
    its `to_db` may not give back what the driver reads (a str for a float column), or not
    the same twice (a salted hash), and comparing those would rewrite rows nobody changed,
    over another writer's change."""
    if _declared_in_place(mapped) is not None:
        return False
    kinds = mapped.python_types
    return not kinds or not all(_immutable_class(kind) for kind in kinds)


def holds_changeable(value: Any) -> bool:
    """Whether `value` could have been changed in place (see `presumed_in_place`)."""
    return value is not None and not _immutable_class(type(value))


def _declared_in_place(mapped: Type) -> bool | None:
    """`mutable` as this package's type or the custom type says it, or None if unsaid."""
    if "mutable" in vars(mapped):
        return bool(mapped.mutable)
    kinds = mapped.python_types
    for klass in type(mapped).__mro__:
        if klass.__module__.split(".")[0] == "orm":
            if klass is Type:
                break
            # one of this package's types, or a subclass keeping its values: its answer
            if type(mapped) is klass or vars(klass).get("python_types", kinds) is kinds:
                return bool(mapped.mutable)
            break  # a subclass taking other values (python_types = (list,)): by them
        if "mutable" in vars(klass):
            return bool(vars(klass)["mutable"])
    return None


def value_problem(mapped: Type, value: Any) -> str | None:
    """What is wrong with writing the non-None `value` through `mapped`, checked as a flush
    checks it (accepted Python types, the conversion, then what sqlite3 can store), or None.
    Only error paths call it: the message, not the hot loops."""
    if mapped.python_types and not isinstance(value, mapped.python_types):
        return f"got {type(value).__name__} {_short(value, 60)}"
    if value.__class__ is bool and bool not in mapped.python_types and mapped.python_types:
        # an int to isinstance, but PostgreSQL refuses a boolean in a number column, and
        # SQLite would store 1 where the entity holds True
        return f"got bool {value!r}, and True and False are not values of it"
    if mapped.converts:
        try:
            mapped.to_db(value)
        except (TypeError, ValueError, OverflowError) as exc:
            return f"got {type(value).__name__} {_short(value, 60)}, which it cannot convert ({exc})"
        return None
    reason = unstorable(value)
    return f"got {type(value).__name__} {_short(value, 60)}: {reason}" if reason else None


class CheckedIntegerType(Type):
    """An integer property (or an int-valued enum) stored in a column narrower than 64 bits
    (PostgreSQL's `smallint`, `integer`), whose out-of-range values the database would refuse
    with an error naming nothing. The platform puts it in place of the mapped type at start-up
    for those columns only, so a `bigint` column pays nothing; a value out of range is a
    ValidationError naming the entity and property before any SQL runs, as a value beyond
    64 bits is everywhere, in a flush and in a filter."""

    def __init__(self, mapped: Type, column: str, low: int, high: int) -> None:
        self.mapped = mapped
        self.column = column
        self.low = low
        self.high = high
        self.name = mapped.name
        self.python_types = mapped.python_types
        self._convert = mapped.to_db if mapped.converts else None

    def to_db(self, value: Any) -> Any:
        convert = self._convert
        db = value if convert is None else convert(value)
        if isinstance(db, int) and not self.low <= db <= self.high:
            raise ValueError(
                f"out of the range of the column's type {self.column} ({self.low} to "
                f"{self.high}); declare a wider column: column_type=\"bigint\""
            )
        return db

    def to_python(self, value: Any) -> Any:
        return self.mapped.to_python(value)

    def compare(self, a: Any, b: Any) -> bool:
        return self.mapped.compare(a, b)

    @property
    def compares(self) -> bool:
        return self.mapped.compares

    def column_type(self, prop: Any, dialect: str) -> str:
        return self.mapped.column_type(prop, dialect)

    def describe(self) -> str:
        return self.mapped.describe()

    def __repr__(self) -> str:
        return f"CheckedIntegerType({self.mapped!r}, {self.column!r})"


class StringType(Type):
    name = "string"
    python_types = (str,)

    def column_type(self, prop: Any, dialect: str) -> str:
        length = getattr(prop, "length", None)
        return f"varchar({length})" if length else "text"


class TextType(Type):
    name = "text"
    python_types = (str,)


class CheckedStringType(Type):
    """A string property whose values the database would refuse: longer than the column's
    `length`, or (on PostgreSQL, whose text cannot hold one) holding a NUL character. The
    platform puts it in place of the mapped type at start-up, only where there is something
    to check, so every other string costs nothing per value; a bad value is a
    ValidationError naming the entity and property before any SQL runs, the same on every
    database."""

    name = "string"
    python_types = (str,)

    def __init__(self, mapped: Type, max_length: int | None, refuse_nul: bool) -> None:
        self.mapped = mapped
        self.max_length = max_length
        self.refuse_nul = refuse_nul
        self.name = mapped.name

    def to_db(self, value: Any) -> Any:
        if self.max_length is not None and len(value) > self.max_length:
            raise ValueError(
                f"{len(value)} characters, longer than the column's {self.max_length} "
                f"(length={self.max_length}); shorten it, or raise `length`"
            )
        if self.refuse_nul and "\x00" in value:
            raise ValueError(
                "a NUL character (\\x00), which PostgreSQL text cannot hold; remove it, or "
                "map the property as bytes"
            )
        return value

    def column_type(self, prop: Any, dialect: str) -> str:
        return self.mapped.column_type(prop, dialect)

    @property
    def for_filters(self) -> Type:
        return self.mapped

    def __repr__(self) -> str:
        return f"CheckedStringType({self.mapped!r}, {self.max_length!r}, {self.refuse_nul!r})"


class IntegerType(Type):
    name = "integer"
    python_types = (int,)

    def column_type(self, prop: Any, dialect: str) -> str:
        return "integer"


class SmallIntType(IntegerType):
    name = "smallint"


class BigIntType(IntegerType):
    name = "bigint"


class FloatType(Type):
    """Floating-point numbers (ints accepted). NaN is refused with a ValidationError, since
    SQLite would store it as NULL; +/-inf are stored and read back as they are."""

    name = "float"
    python_types = (float, int)

    def column_type(self, prop: Any, dialect: str) -> str:
        return "real"


class DoubleType(FloatType):
    name = "double"


class DecimalType(Type):
    """Written as text into a `numeric(p,s)` column, so SQL compares numbers. SQLite keeps
    15 significant digits of such a value (it stores it as a 64-bit float unless it is a
    plain integer), so there a longer value is refused rather than silently rounded; for
    more digits use `column_type="text"` (exact, but compared as text in SQL)."""

    name = "decimal"
    python_types = _ImportedClasses("Decimal", int)  # type: ignore[assignment]
    #: significant digits the column keeps exactly (set by the platform; None: all)
    max_digits: int | None = None

    def to_db(self, value: Any) -> Any:
        if Decimal is None:
            _import_value_modules()
        if value.__class__ is bool:
            raise TypeError("True and False are not decimal numbers")  # str(True) is 'True'
        text = str(value)
        if isinstance(value, Decimal) and not value.is_finite():
            raise ValueError(f"{text} is not a finite number, which a numeric column holds")
        if self.max_digits is not None and _rounded_by_float(value, text, self.max_digits):
            raise ValueError(
                f"{text} has more significant digits than the column keeps exactly, or is "
                f"too large or too small for it ({self.max_digits} digits, magnitudes "
                f"from 1E-307 to below 1E+308: SQLite stores a non-integer numeric value as a "
                f"64-bit float); round it, or map the property with column_type='text'"
            )
        return text

    def to_python(self, value: Any) -> Any:
        if Decimal is None:
            _import_value_modules()
        if isinstance(value, Decimal):
            return value
        try:
            return Decimal(str(value))
        except ArithmeticError:  # decimal.InvalidOperation says only "ConversionSyntax"
            raise ValueError(f"{value!r} is not a decimal number") from None

    def compare(self, a: Any, b: Any) -> bool:
        if a == b:
            return True
        if a is None or b is None:
            return False
        if Decimal is None:
            _import_value_modules()
        return Decimal(str(a)) == Decimal(str(b))

    def column_type(self, prop: Any, dialect: str) -> str:
        precision = getattr(prop, "precision", None) or 10
        scale = getattr(prop, "scale", None)
        scale = 0 if scale is None else scale
        return f"numeric({precision},{scale})"




def _rounded_by_float(value: Any, text: str, digits: int) -> bool:
    """Whether SQLite's numeric affinity would store `text` as a float and lose digits: a
    plain integer literal within 64 bits is stored exactly, anything else keeps `digits`,
    within the float's range. (No context arithmetic here: `normalize()` or `abs()` of
    1E+1000000 raise decimal.Overflow.)"""
    if isinstance(value, int):
        return not -(2**63) <= value < 2**63
    if text.lstrip("-").isdigit():
        return not -(2**63) <= int(text) < 2**63
    significant = "".join(map(str, value.as_tuple().digits)).rstrip("0")
    if len(significant) > digits:
        return True
    low, high = _FLOAT_RANGE
    return bool(significant) and not low <= value.copy_abs() < high


class BooleanType(Type):
    name = "boolean"
    python_types = (bool,)

    def to_db(self, value: Any) -> Any:
        return 1 if value else 0

    def to_python(self, value: Any) -> Any:
        """0 and 1 (as stored); anything else in the column (text another program wrote)
        is not silently read as True."""
        if value == 1 and type(value) in (int, bool):
            return True
        if value == 0 and type(value) in (int, bool):
            return False
        raise ValueError(f"{value!r} is not a stored boolean (0 or 1)")

    def column_type(self, prop: Any, dialect: str) -> str:
        return "integer"


class _IsoType(Type):
    """Dates and times travel as ISO-8601 text, which sorts and compares correctly in SQL."""

    _cls: Any = None

    def to_db(self, value: Any) -> Any:
        return value.isoformat()

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._cls.fromisoformat(value)
        return value

    def compare(self, a: Any, b: Any) -> bool:
        if a == b:
            return True
        if not isinstance(a, str) or not isinstance(b, str):
            return False
        try:
            return bool(self._cls.fromisoformat(a) == self._cls.fromisoformat(b))
        except ValueError:
            return False


class DateTimeType(_IsoType):
    """Datetimes as ISO-8601 text, so that SQL compares them as text.

    A timezone-aware value is converted to UTC on the way to the database
    ("2024-01-02 03:04:05+00:00") and read back aware, in UTC: the same instant in any offset
    is the same text, so `$eq`, `$gt` and `order_by` follow instants (and the value read back
    equals the one written, as aware datetimes compare by instant). A naive value is stored as
    it is ("2024-01-02 03:04:05") and read back naive. Filter values are converted the same
    way. Keep one kind per column: naive values sort among aware ones as if they were UTC
    (the UTC text extends the naive text), but never equal one, so `$eq` does not match
    across the two kinds, and the same wall-clock time sorts naive first.
    """

    name = "datetime"
    python_types = (datetime,)
    _cls = datetime
    _utc = UTC

    def to_db(self, value: Any) -> Any:
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(self._utc)
        return value.isoformat(" ")

    def column_type(self, prop: Any, dialect: str) -> str:
        return "datetime"


#: a datetime is a date to isinstance, but a date column would drop its time of day while the
#: entity kept it (what the identity map says would differ from the row)
_DATETIME_IN_DATE = "a date column would drop its time of day (%s); give a date (value.date())"


class DateType(_IsoType):
    name = "date"
    python_types = (date,)
    _cls = date

    def to_db(self, value: Any) -> Any:
        if isinstance(value, datetime):
            raise ValueError(_DATETIME_IN_DATE % (value.time(),))
        return value.isoformat()

    def column_type(self, prop: Any, dialect: str) -> str:
        return "date"


class TimeType(_IsoType):
    name = "time"
    python_types = (time,)
    _cls = time

    def column_type(self, prop: Any, dialect: str) -> str:
        return "time"


def _same_json(a: Any, b: Any) -> bool:
    """Equal JSON documents, told apart by type as JSON tells them (Python's `True == 1`
    and `1 == 1.0` would hide a change from `true` to `1`)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class JsonType(Type):
    """JSON documents. Mutable: a dict changed in place is found at flush."""

    name = "json"
    python_types = (dict, list, str, int, float, bool)
    mutable = True

    def to_db(self, value: Any) -> Any:
        # NaN and the infinities are not JSON: json.dumps would write them as NaN and
        # Infinity, which PostgreSQL's jsonb (and every other JSON reader) refuses
        if json is None:
            _import_value_modules()
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    def to_python(self, value: Any) -> Any:
        if json is None:
            _import_value_modules()
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    def compare(self, a: Any, b: Any) -> bool:
        if a == b:
            return True
        if a is None or b is None:
            return False
        if json is None:
            _import_value_modules()
        try:
            return _same_json(json.loads(a), json.loads(b))
        except (TypeError, ValueError):
            return False

    def column_type(self, prop: Any, dialect: str) -> str:
        # SQLite gives a column declared `json` NUMERIC affinity, which turns the text of a
        # top-level number into a number (12345678901234567890123 became 1.23e22, 1.0
        # became 1): `text` keeps the document exactly as written
        return "text" if dialect == "sqlite" else "json"


class UuidType(Type):
    name = "uuid"
    python_types = _ImportedClasses("UUID")  # type: ignore[assignment]

    def to_db(self, value: Any) -> Any:
        return str(value)

    def to_python(self, value: Any) -> Any:
        if uuid is None:
            _import_value_modules()
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))

    def column_type(self, prop: Any, dialect: str) -> str:
        return "text"


class BlobType(Type):
    """Binary data. A `bytearray` or `memoryview` value can change in place: an entity
    holding one is compared at every flush (one holding `bytes`, as every loaded one does,
    is not), and the type writes (and so snapshots) an immutable `bytes` copy of it; a
    `bytes` value is written as is (the compiled core does not even call `to_db` for it)
    and an unchanged one is skipped by identity."""

    name = "blob"
    python_types = (bytes, bytearray, memoryview)
    mutable_values = (bytearray, memoryview)

    def to_db(self, value: Any) -> Any:
        return value if type(value) is bytes else bytes(value)

    def column_type(self, prop: Any, dialect: str) -> str:
        return "blob"


class EnumType(Type):
    """Stores the member's value; the column is integer for int-valued enums, text otherwise."""

    name = "enum"

    def __init__(self, enum_class: type[enum.Enum] | None = None) -> None:
        self.enum_class = enum_class
        self.python_types = (enum_class,) if enum_class is not None else ()

    def to_db(self, value: Any) -> Any:
        enum = sys.modules.get("enum")  # see _is_enum_class
        return value.value if enum is not None and isinstance(value, enum.Enum) else value

    def to_python(self, value: Any) -> Any:
        return self.enum_class(value) if self.enum_class is not None else value

    def column_type(self, prop: Any, dialect: str) -> str:
        if self.enum_class is not None and all(
            isinstance(m.value, int) for m in self.enum_class
        ):
            return "integer"
        return "text"

    def __repr__(self) -> str:
        name = self.enum_class.__name__ if self.enum_class else None
        return f"EnumType({name})"


class _TypeMap:
    """`t.string`, `t.text`, ...: the mapped types by name, as MikroORM's `t` map."""

    string = StringType
    text = TextType
    integer = IntegerType
    smallint = SmallIntType
    bigint = BigIntType
    float = FloatType
    double = DoubleType
    decimal = DecimalType
    boolean = BooleanType
    datetime = DateTimeType
    date = DateType
    time = TimeType
    json = JsonType
    uuid = UuidType
    blob = BlobType
    enum = EnumType

    def names(self) -> list[str]:
        return [n for n in vars(_TypeMap) if not n.startswith("_") and n != "names"]


t = _TypeMap()
types = t

_ALIASES: dict[str, type[Type]] = {name: getattr(t, name) for name in t.names()}
_ALIASES.update(
    {
        "str": StringType,
        "varchar": StringType,
        "int": IntegerType,
        "bool": BooleanType,
        "bytes": BlobType,
        "number": IntegerType,
        "datetime": DateTimeType,
        "real": FloatType,
    }
)

_BY_PYTHON_TYPE: dict[Any, type[Type]] = {
    bool: BooleanType,
    int: IntegerType,
    str: StringType,
    float: FloatType,
    bytes: BlobType,
    bytearray: BlobType,
    datetime: DateTimeType,
    date: DateType,
    time: TimeType,
    dict: JsonType,
    list: JsonType,
}


#: mapped by module and name: `import orm` has not imported these classes (the user has)
_BY_CLASS_NAME: dict[tuple[str, str], type[Type]] = {
    ("decimal", "Decimal"): DecimalType,
    ("uuid", "UUID"): UuidType,
}


#: `types.UnionType` (what `X | None` is), without importing `types`
_UNION_TYPE = type(int | None)


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """`X | None` / `Optional[X]` -> (X, True); anything else -> (annotation, False)."""
    origin = get_origin(annotation)
    # typing.Union (Optional[X]) exists only once a module has imported typing
    typing = sys.modules.get("typing")
    if origin is _UNION_TYPE or (typing is not None and origin is typing.Union):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        if len(args) == 1:
            return args[0], nullable
        import typing

        return typing.Union[tuple(args)], nullable  # noqa: UP007
    if annotation is type(None):
        return None, True
    return annotation, False


def _is_enum_class(obj: Any) -> bool:
    """Whether `obj` is an Enum class, without importing `enum`: `import orm` does not need
    it, and an Enum class can exist only once `enum` is imported."""
    enum = sys.modules.get("enum")
    return enum is not None and isinstance(obj, type) and issubclass(obj, enum.Enum)


def type_from_annotation(annotation: Any) -> Type | None:
    """The mapped type for a (non-optional) Python annotation, or None if there is none."""
    if _is_enum_class(annotation):
        return EnumType(annotation)
    origin = get_origin(annotation)
    typing = sys.modules.get("typing")  # as for Union: Annotated[X, ...] needs typing
    if typing is not None and origin is typing.Annotated:
        return type_from_annotation(get_args(annotation)[0])
    key = origin if origin is not None else annotation
    mapped = _BY_PYTHON_TYPE.get(key)
    if mapped is None and isinstance(key, type):  # Decimal, UUID: their modules load later
        mapped = _BY_CLASS_NAME.get((key.__module__, key.__qualname__))
    return mapped() if mapped is not None else None


def resolve_type(spec: Any, annotation: Any = None) -> Type:
    """Turn what `Property(type=...)` was given (instance, class or alias string) into an
    instance. Raises LookupError with the known names when a string alias is unknown."""
    if isinstance(spec, Type):
        return spec
    if isinstance(spec, str):
        cls = _ALIASES.get(spec.lower())
        if cls is None:
            raise LookupError(
                f"unknown type alias {spec!r}; known: {', '.join(sorted(_ALIASES))}"
            )
        spec = cls
    if isinstance(spec, type) and issubclass(spec, Type):
        if spec is EnumType:
            enum_class = annotation if isinstance(annotation, type) else None
            return EnumType(enum_class)
        return spec()
    if _is_enum_class(spec):
        return EnumType(spec)
    mapped = type_from_annotation(spec)
    if mapped is None:
        raise LookupError(f"{spec!r} is not a mapped type; use one of t.{', t.'.join(t.names())}")
    return mapped
