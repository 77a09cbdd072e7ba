# cython: language_level=3
"""The hot core, compiled: hydration, snapshots and flush-time change detection.

Same interface and results as `orm._diff_py` (read its docstrings for the contract); this file
only adds what makes it fast: typed plans, attribute access through the C API (no descriptor
or `__setattr__` hooks on our own writes), and tuples built without intermediate lists.
It sees only plain data and the per-type plans, never the EntityManager.
"""

cimport cython
from cpython.object cimport PyObject, PyObject_GenericSetAttr, PyObject_GetAttr, Py_TYPE
from cpython.dict cimport (
    PyDict_GetItem, PyDict_GetItemWithError, PyDict_SetItem, PyDict_Next, PyDict_Size,
)
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport Py_INCREF, Py_DECREF, Py_REFCNT
from cpython.list cimport PyList_New, PyList_SET_ITEM, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.set cimport PySet_Add
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.datetime cimport (
    import_datetime, PyDateTime_CheckExact, PyDateTime_GET_YEAR, PyDateTime_GET_MONTH,
    PyDateTime_GET_DAY, PyDateTime_DATE_GET_HOUR, PyDateTime_DATE_GET_MINUTE,
    PyDateTime_DATE_GET_SECOND, PyDateTime_DATE_GET_MICROSECOND, datetime_tzinfo,
)
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_CheckExact
from cpython.long cimport (
    PyLong_Check, PyLong_CheckExact, PyLong_AsLongLongAndOverflow, PyLong_FromVoidPtr,
)
from cpython.float cimport PyFloat_Check, PyFloat_CheckExact, PyFloat_AS_DOUBLE
from libc.math cimport isnan
from libc.stdio cimport snprintf
from libc.string cimport memset

import_datetime()
from datetime import datetime as _datetime

from orm._markers import DELETED as _DELETED, REFERENCE as _REFERENCE, UNLOADED as _UNLOADED
from orm._markers import MISSING as _MISSING

BACKEND = "cython"

cdef object REFERENCE = _REFERENCE
cdef object DELETED = _DELETED
cdef object UNLOADED = _UNLOADED
cdef str SNAP = "_orm_snap"
cdef str UOW = "_orm_uow"
cdef str DIRTY = "dirty"
cdef str DICT = "__dict__"
cdef str ENTITY = "entity"
cdef object _object_new = object.__new__
cdef tuple _NO_ARGS = ()

cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        object (*tp_new)(PyTypeObject*, PyObject*, PyObject*)
    PyTypeObject PyBaseObject_Type
    PyTypeObject PyMemberDescr_Type

cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    int T_OBJECT_EX

cdef extern from "Python.h":
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member


cdef inline bint _plain_new(object cls):
    """Whether `object.__new__(cls)` is what `cls` itself allocates with: then hydration
    calls that allocator directly (a Python-level call of object.__new__ per row cost more
    than filling the entity). Any other class keeps the checked call."""
    return type(cls) is type and (<PyTypeObject*>cls).tp_new == PyBaseObject_Type.tp_new


cdef inline object _new_instance(object cls, bint plain):
    if plain:
        return PyBaseObject_Type.tp_new(<PyTypeObject*>cls, <PyObject*>_NO_ARGS, NULL)
    return _object_new(cls)
cdef object _fromisoformat = _datetime.fromisoformat

# Column kinds (see orm.metadata.discovery.column_kind). GENERIC columns keep the database
# value in the snapshot and convert with the mapped type's own to_db / to_python; DATETIME,
# BOOL and VALUE columns hold immutable Python values compared by equality, so their snapshot
# keeps the Python value (no second copy in database form), and DATETIME and BOOL convert in
# C. BLOB columns are GENERIC ones whose `bytes` values need no conversion (checked in C; a
# bytearray or memoryview goes through the type's to_db, which snapshots an immutable copy).
DEF KIND_GENERIC = 0
DEF KIND_DATETIME = 1
DEF KIND_BOOL = 2
DEF KIND_VALUE = 3
DEF KIND_BLOB = 4
DEF MAX_COLUMNS = 512

# the messages the twin raises too (orm._diff_py): keep them identical
cdef str _UNINITIALIZED = "this Plan was never initialized: build it with Plan(...)"
cdef str _CHANGED_SIZE = "%s: a list changed size during the call"


cdef inline bint _python_valued(int kind):
    """Whether a column of this kind keeps the Python value (not the database one) in the
    snapshot."""
    return kind >= KIND_DATETIME and kind <= KIND_VALUE


cdef object _iso_datetime(object value):
    """datetime.isoformat(" ") of a naive datetime, formatted in C."""
    cdef char buf[40]
    cdef int n, us
    us = PyDateTime_DATE_GET_MICROSECOND(value)
    if us:
        n = snprintf(buf, 40, "%04d-%02d-%02d %02d:%02d:%02d.%06d",
                     PyDateTime_GET_YEAR(value), PyDateTime_GET_MONTH(value),
                     PyDateTime_GET_DAY(value), PyDateTime_DATE_GET_HOUR(value),
                     PyDateTime_DATE_GET_MINUTE(value), PyDateTime_DATE_GET_SECOND(value), us)
    else:
        n = snprintf(buf, 40, "%04d-%02d-%02d %02d:%02d:%02d",
                     PyDateTime_GET_YEAR(value), PyDateTime_GET_MONTH(value),
                     PyDateTime_GET_DAY(value), PyDateTime_DATE_GET_HOUR(value),
                     PyDateTime_DATE_GET_MINUTE(value), PyDateTime_DATE_GET_SECOND(value))
    return PyUnicode_DecodeASCII(buf, n, NULL)


# -- entities seen before in the same call --------------------------------------------------
#
# The items of many collections are mostly the same few entities (a pool of tags), and a
# walk over the collections reads the same attributes of each one again (about 200
# instructions a read). A walk that reads only plain attributes, so runs no code that could
# free an item, remembers the items it has looked at in a small table on its stack,
# direct-mapped by address: a hit is an item it has seen, alive all along (the collections
# it walks hold it), so the answer is the one it got then. A miss only costs the read.

cdef enum:
    SEEN_SIZE = 1024


cdef inline Py_ssize_t _seen_slot(PyObject* p) noexcept nogil:
    return (<size_t>p >> 4) & (SEEN_SIZE - 1)


cdef inline object _id(object value):
    """id(value) without the call through the builtins module (the loops below key their
    dicts by identity, several times per entity)."""
    return PyLong_FromVoidPtr(<void*>value)


cdef inline object _to_db(Plan plan, Py_ssize_t i, object conv, object value, object entity):
    cdef int kind = plan.kind_of[i]
    if kind == KIND_DATETIME and PyDateTime_CheckExact(value) and datetime_tzinfo(value) is None:
        return _iso_datetime(value)
    # an aware datetime goes through DateTimeType.to_db, which converts it to UTC
    if kind == KIND_BOOL:
        return 1 if value else 0
    if kind == KIND_BLOB and type(value) is bytes:
        return value
    return _convert(plan, entity, i, conv, value)


cdef object _convert(Plan plan, object entity, Py_ssize_t i, object conv, object value):
    """conv(value); a converter refusing the value (a datetime in a JSON document) is a
    ValidationError through plan.on_invalid. Not inline: the try stays off the C paths."""
    try:
        return conv(value)
    except (TypeError, ValueError, OverflowError):
        plan.on_invalid(entity, i, value)
        raise


cdef inline object _to_python(Plan plan, Py_ssize_t i, object conv, object value):
    cdef int kind = plan.kind_of[i]
    if kind == KIND_DATETIME and type(value) is str:
        return _fromisoformat(value)
    if kind == KIND_BOOL and type(value) is int:
        if value == 1:
            return True
        if value == 0:
            return False
    return conv(value)  # anything else: the type reads it, or says why it cannot


cdef str _name_of(object cls):
    return getattr(cls, "__name__", None) or repr(cls)


@cython.final
@cython.auto_pickle(False)
cdef class Plan:
    """What the hot loops need to know about one entity type, computed once.

    Validated when built and read-only afterwards: the loops index its tuples without bounds
    checks, so a plan can never disagree with itself."""

    cdef readonly object cls
    cdef readonly tuple names
    cdef readonly Py_ssize_t n
    cdef readonly Py_ssize_t pk_index
    cdef readonly tuple to_python
    cdef readonly tuple to_db
    cdef readonly tuple compare
    cdef readonly tuple accepts
    cdef readonly tuple nullable
    cdef readonly bint has_mutable
    cdef readonly object on_invalid
    cdef readonly tuple kinds
    # per column: what hydration turns a relation's key into (see the twin's `_reference`),
    # None for a scalar column; None altogether for an entity without relations
    cdef readonly tuple targets
    # per column: a relation whose target's key goes to the database as it is, (target
    # class, key attribute, class standing for a key still to be generated); None otherwise,
    # None altogether when no column is one (see the twin's `_check_keys`)
    cdef readonly tuple keys
    # per column: the to_python that settles a difference in database form (see the twin's
    # `compute_changes`), None otherwise; None altogether when no column has one
    cdef readonly tuple recheck
    # the snapshot of a complete loaded row is taken on the first write (see the twin's
    # "taken on write")
    cdef readonly bint lazy_snapshot
    cdef int kind_of[MAX_COLUMNS]
    # per column, for the flush's validation: the one type `accepts` names (a 1-tuple of a
    # type; NULL otherwise), so that a value of exactly that type passes on a pointer compare;
    # whether None is accepted (1/0; -1: `nullable` holds no bool, its truth is asked each time)
    cdef PyObject* single_type[MAX_COLUMNS]
    cdef signed char null_ok[MAX_COLUMNS]
    cdef bint ready

    def __init__(self, cls, tuple names not None, Py_ssize_t pk_index,
                 tuple to_python not None, tuple to_db not None, tuple compare not None,
                 tuple accepts not None, tuple nullable not None, bint has_mutable, on_invalid,
                 tuple kinds=None, tuple targets=None, tuple keys=None, tuple recheck=None,
                 bint lazy_snapshot=False):
        cdef Py_ssize_t i, n = len(names)
        cdef object name, kind, field, column
        where = f"Plan of {_name_of(cls)}"
        if n > MAX_COLUMNS:
            raise ValueError("an entity may have at most 512 columns")
        for name in names:
            if type(name) is not str:
                raise TypeError(
                    f"{where}: column names must be str, got {type(name).__name__} {name!r}")
        if kinds is None:
            kinds = (KIND_GENERIC,) * n
        for field, column in (("to_python", to_python), ("to_db", to_db),
                              ("compare", compare), ("accepts", accepts),
                              ("nullable", nullable), ("kinds", kinds)):
            if len(column) != n:
                raise ValueError(f"{where}: {field} has {len(column)} entries for {n} columns")
        for i in range(n):
            kind = kinds[i]
            if type(kind) is not int or not KIND_GENERIC <= kind <= KIND_BLOB:
                raise ValueError(
                    f"{where}: the kind of column {names[i]} is {kind!r}, not one of 0 to 4")
        if not 0 <= pk_index < n:
            raise ValueError(
                f"{where}: pk_index {pk_index} is not a column index (0 to {n - 1})")
        if targets is not None:
            _check_targets(where, names, targets, to_python, kinds)
        if keys is not None:
            _check_keys(where, names, keys, to_db)
        if recheck is not None:
            _check_recheck(where, names, recheck)
        if lazy_snapshot:
            _check_lazy(where, names, to_python, kinds, has_mutable, targets, recheck)
        for i in range(n):
            self.kind_of[i] = kinds[i]
            # borrowed pointers: the plan keeps `accepts` (and so these types) alive
            self.single_type[i] = NULL
            kind = accepts[i]
            if type(kind) is tuple and len(kind) == 1 and isinstance(kind[0], type):
                self.single_type[i] = <PyObject*>kind[0]
            kind = nullable[i]
            self.null_ok[i] = 1 if kind is True else 0 if kind is False else -1
        self.cls = cls
        self.names = names
        self.n = n
        self.pk_index = pk_index
        self.to_python = to_python
        self.to_db = to_db
        self.compare = compare
        self.accepts = accepts
        self.nullable = nullable
        self.has_mutable = has_mutable
        self.on_invalid = on_invalid
        self.kinds = kinds
        self.targets = targets
        self.keys = keys
        self.recheck = recheck
        self.lazy_snapshot = lazy_snapshot
        self.ready = True


def _check_lazy(str where, tuple names, tuple to_python, tuple kinds, bint has_mutable,
                targets, recheck):
    """See the twin's `_check_lazy` (same checks, same messages)."""
    cdef Py_ssize_t i
    if has_mutable or targets is not None or recheck is not None:
        raise ValueError(
            f"{where}: lazy_snapshot needs an entity without relations, mutable columns or "
            f"rechecked columns")
    for i in range(len(names)):
        if kinds[i] == KIND_BLOB or (to_python[i] is not None and not _python_valued(kinds[i])):
            raise ValueError(
                f"{where}: lazy_snapshot needs column {names[i]} to hold its snapshot value "
                f"(no to_python, or kind 1 to 3)")


cdef tuple _taken(Plan plan, object entity):
    """See the twin's `_taken`."""
    cdef Py_ssize_t i, n = plan.n
    cdef tuple names = plan.names
    cdef tuple out = PyTuple_New(n)
    cdef object held = getattr(entity, DICT, None)
    cdef object value
    cdef PyObject* found
    for i in range(n):
        if type(held) is dict:
            found = PyDict_GetItemWithError(<dict>held, <object>PyTuple_GET_ITEM(names, i))
            value = <object>found if found is not NULL else UNLOADED
        else:
            value = getattr(entity, <object>PyTuple_GET_ITEM(names, i), UNLOADED)
        Py_INCREF(value)
        PyTuple_SET_ITEM(out, i, value)
    return out


def snapshot(entity):
    """See orm._diff_py.snapshot."""
    cdef object snap = PyObject_GetAttr(entity, SNAP)
    if type(snap) is Plan:
        return _taken(<Plan>snap, entity)
    return snap


def _check_recheck(str where, tuple names, tuple recheck):
    """See the twin's `_check_recheck` (same checks, same messages)."""
    cdef Py_ssize_t i
    if len(recheck) != len(names):
        raise ValueError(f"{where}: recheck has {len(recheck)} entries for {len(names)} columns")
    for i in range(len(recheck)):
        check = recheck[i]
        if check is not None and not callable(check):
            raise TypeError(
                f"{where}: the recheck of column {names[i]} must be callable or None, "
                f"got {type(check).__name__}")


cdef bint _same_as_loaded(object check, object old, object current):
    """See the twin's `_same_as_loaded`."""
    if old is None or current is None:
        return False
    try:
        back = check(old)
        return type(back) is type(current) and bool(back == current) and (
            repr(back) == repr(current))
    except Exception:
        return False


def _check_targets(str where, tuple names, tuple targets, tuple to_python, tuple kinds):
    """See the twin's `_check_targets` (same checks, same messages)."""
    cdef Py_ssize_t i
    if len(targets) != len(names):
        raise ValueError(f"{where}: targets has {len(targets)} entries for {len(names)} columns")
    for i in range(len(targets)):
        target = targets[i]
        if target is None:
            continue
        if (type(target) is not tuple or len(target) != 4 or not isinstance(target[0], type)
                or type(target[1]) is not str):
            raise TypeError(
                f"{where}: the target of column {names[i]} must be a tuple (class, key "
                f"attribute, key converter or None, wrapper or None), got {target!r}")
        if to_python[i] is not None or kinds[i] != 0:
            raise ValueError(
                f"{where}: column {names[i]} is a relation: its to_python must be None and "
                f"its kind 0")


cdef object _reference(tuple target, object value, dict maps, object uow):
    """See the twin's `_reference`: the identity map's entity for the key, else a new
    uninitialized reference entered there (detached when `maps` is None)."""
    cdef object cls = <object>PyTuple_GET_ITEM(target, 0)
    cdef object conv = <object>PyTuple_GET_ITEM(target, 2)
    cdef object wrapper = <object>PyTuple_GET_ITEM(target, 3)
    cdef object key = value if conv is None else conv(value)
    cdef object found = None
    cdef object im = None
    cdef PyObject* hit
    if maps is not None:
        hit = PyDict_GetItemWithError(maps, cls)
        if hit is NULL:
            im = {}
            PyDict_SetItem(maps, cls, im)
        else:
            im = <object>hit
        if type(im) is dict:
            hit = PyDict_GetItemWithError(<dict>im, key)
            if hit is not NULL:
                found = <object>hit
        else:
            found = im.get(key)
    if found is None:
        found = _object_new(cls)
        PyObject_GenericSetAttr(found, <object>PyTuple_GET_ITEM(target, 1), key)
        PyObject_GenericSetAttr(found, SNAP, REFERENCE)
        PyObject_GenericSetAttr(found, UOW, uow if maps is not None else None)
        if maps is not None:
            im[key] = found
    return found if wrapper is None else wrapper(found)


def _check_keys(str where, tuple names, tuple keys, tuple to_db):
    """See the twin's `_check_keys` (same checks, same messages)."""
    cdef Py_ssize_t i
    if len(keys) != len(names):
        raise ValueError(f"{where}: keys has {len(keys)} entries for {len(names)} columns")
    for i in range(len(keys)):
        key = keys[i]
        if key is None:
            continue
        if (type(key) is not tuple or len(key) != 3 or not isinstance(key[0], type)
                or type(key[1]) is not str or not isinstance(key[2], type)):
            raise TypeError(
                f"{where}: the keys entry of column {names[i]} must be a tuple (target "
                f"class, key attribute, pending key class), got {key!r}")
        if to_db[i] is None:
            raise ValueError(
                f"{where}: column {names[i]} has a keys entry but no to_db to fall back on")


cdef inline int _ready(Plan plan) except -1:
    if not plan.ready:
        raise ValueError(_UNINITIALIZED)
    return 0


cdef int _bad_snapshot(Plan plan, object snap, str where) except -1:
    """Raise for a snapshot that is not a tuple of the plan's width (see the twin's
    `_check_snapshot`)."""
    if type(snap) is not tuple:
        raise TypeError(
            f"{where}: the snapshot of a {_name_of(plan.cls)} is a {type(snap).__name__}, "
            f"not a tuple")
    raise ValueError(
        f"{where}: the snapshot of a {_name_of(plan.cls)} has {len(snap)} values, its plan "
        f"has {plan.n} columns")


def tracked_setattr(self, name, value):
    """`__setattr__` of every entity class: records a managed entity as dirty, so that a flush
    compares only what was written to; while a flush's handlers may run, notes the value
    it replaces (see the twin's `track_assignments`)."""
    cdef object journal, held, old
    if _journals:
        journal = _journals.get(PyThread_get_thread_ident())
        if journal is not None:
            held = getattr(self, "__dict__", None)  # a class of slots only: its attribute
            old = held.get(name, _MISSING) if held is not None else getattr(self, name, _MISSING)
            journal.append((self, name, old))
    snap = getattr(self, SNAP, None)
    if type(snap) is Plan:  # the first write: the snapshot is what the attributes hold now
        PyObject_GenericSetAttr(self, SNAP, _taken(<Plan>snap, self))
    PyObject_GenericSetAttr(self, name, value)
    uow = PyObject_GetAttr(self, UOW)
    if uow is not None:
        dirty = PyObject_GetAttr(uow, DIRTY)
        if type(dirty) is dict:
            PyDict_SetItem(dirty, _id(self), self)
        else:
            dirty[_id(self)] = self


def tracked_delattr(self, name):
    """`__delattr__` of every entity class (see the twin's `tracked_delattr`)."""
    cdef object journal, held, old
    if _journals:
        journal = _journals.get(PyThread_get_thread_ident())
        if journal is not None:
            held = getattr(self, "__dict__", None)
            old = held.get(name, _MISSING) if held is not None else getattr(self, name, _MISSING)
            journal.append((self, name, old))
    snap = getattr(self, SNAP, None)
    if type(snap) is Plan:  # the first write: the snapshot is what the attributes hold now
        PyObject_GenericSetAttr(self, SNAP, _taken(<Plan>snap, self))
    object.__delattr__(self, name)
    uow = PyObject_GetAttr(self, UOW)
    if uow is not None:
        PyObject_GetAttr(uow, DIRTY)[_id(self)] = self


def init_entity(entity, tuple names not None, tuple values not None):
    """See orm._diff_py.init_entity."""
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(names)
    if PyTuple_GET_SIZE(values) != n:
        raise ValueError(f"init_entity: {n} names but {PyTuple_GET_SIZE(values)} values")
    for i in range(n):
        PyObject_GenericSetAttr(entity, <object>PyTuple_GET_ITEM(names, i),
                                <object>PyTuple_GET_ITEM(values, i))
    PyObject_GenericSetAttr(entity, SNAP, None)
    PyObject_GenericSetAttr(entity, UOW, None)
    cdef object births
    if _births:
        births = _births.get(PyThread_get_thread_ident())
        if births is not None:
            PySet_Add(births, PyLong_FromVoidPtr(<void*>entity))


# by thread: the set of the flush that thread runs (see the twin's `track_births`)
cdef dict _births = {}
# by thread: the assignments of the flush that thread runs (see the twin's
# `track_assignments`)
cdef dict _journals = {}


def track_assignments(journal):
    """See orm._diff_py.track_assignments."""
    if journal is not None and type(journal) is not list:
        raise TypeError(
            f"track_assignments: journal must be a list or None, not {type(journal).__name__}")
    ident = PyThread_get_thread_ident()
    previous = _journals.pop(ident, None)
    if journal is not None:
        _journals[ident] = journal
    return previous


def track_births(births):
    """See orm._diff_py.track_births."""
    if births is not None and type(births) is not set:
        raise TypeError(f"track_births: births must be a set or None, not {type(births).__name__}")
    ident = PyThread_get_thread_ident()
    previous = _births.pop(ident, None)
    if births is not None:
        _births[ident] = births
    return previous


cdef object _fill(Plan plan, object entity, tuple row, dict maps, object uow):
    """Set the entity's properties from a row; return the snapshot: the row itself, where
    the Python-valued columns now hold their converted values (patched in place when this
    loop holds the only other reference, as it does for rows fresh from sqlite3); or the
    plan, for a complete row of a plan whose snapshots are taken on write."""
    # counted before this function takes a reference of its own: the rows list and the
    # caller's loop variable hold the other two
    cdef bint patch_in_place = Py_REFCNT(row) <= 2
    cdef Py_ssize_t i
    cdef object value, conv, old
    cdef tuple names = plan.names
    cdef tuple to_python = plan.to_python
    cdef tuple snap = row
    cdef list copy = None
    cdef tuple targets = plan.targets
    cdef object target
    cdef bint lazy = plan.lazy_snapshot
    for i in range(plan.n):
        value = <object>PyTuple_GET_ITEM(row, i)
        if value is UNLOADED:
            lazy = False
            continue
        if targets is not None:
            target = <object>PyTuple_GET_ITEM(targets, i)
            if target is not None:
                if value is not None:
                    value = _reference(<tuple>target, value, maps, uow)
                PyObject_GenericSetAttr(entity, <object>PyTuple_GET_ITEM(names, i), value)
                continue
        conv = <object>PyTuple_GET_ITEM(to_python, i)
        if conv is not None and value is not None:
            value = _to_python(plan, i, conv, value)
            if _python_valued(plan.kind_of[i]):
                if patch_in_place:
                    old = <object>PyTuple_GET_ITEM(row, i)
                    Py_INCREF(value)
                    PyTuple_SET_ITEM(row, i, value)
                    Py_DECREF(old)
                else:
                    if copy is None:
                        copy = list(row)
                    copy[i] = value
        PyObject_GenericSetAttr(entity, <object>PyTuple_GET_ITEM(names, i), value)
    if lazy:
        return plan
    if copy is not None:
        snap = tuple(copy)
    return snap


cdef bint _has_unloaded(object snap):
    cdef Py_ssize_t i
    if type(snap) is not tuple:
        return False
    for i in range(PyTuple_GET_SIZE(snap)):
        if <object>PyTuple_GET_ITEM(snap, i) is UNLOADED:
            return True
    return False


cdef bint _written(object entity, object name):
    """Whether the user set this attribute on the instance (an unset one of a reference or
    a partial load raises through its class-level slot)."""
    try:
        PyObject_GetAttr(entity, name)
    except Exception:
        return False
    return True


cdef bint _written_here(object entity, object name) except -1:
    """`_written` for an entity whose unset attributes raise (a reference, or a column a
    partial load left out): asked of the instance dict, as the class-level slot is reached
    only when the name is not there. Raising costs that slot a formatted message, for every
    column of every reference a populate fills."""
    cdef object values = PyObject_GetAttr(entity, DICT)
    if type(values) is dict:
        return name in <dict>values
    return _written(entity, name)


cdef void _refill(Plan plan, object entity, tuple row, bint refresh, object dirty, dict maps,
                  object uow) except *:
    """See orm._diff_py._refill."""
    cdef object old_snap = PyObject_GetAttr(entity, SNAP)
    if type(old_snap) is Plan:
        old_snap = _taken(<Plan>old_snap, entity)
    cdef bint old_is_tuple = type(old_snap) is tuple
    cdef bint reference = old_snap is REFERENCE
    cdef bint complete = True
    cdef list snap
    cdef Py_ssize_t i
    cdef object value, conv, name, before
    if old_is_tuple and PyTuple_GET_SIZE(old_snap) != plan.n:
        _bad_snapshot(plan, old_snap, "hydrate")
    snap = PyList_New(0)
    for i in range(plan.n):
        value = <object>PyTuple_GET_ITEM(row, i)
        before = <object>PyTuple_GET_ITEM(<tuple>old_snap, i) if old_is_tuple else UNLOADED
        if value is UNLOADED:
            snap.append(before)
            complete = False
            continue
        conv = <object>PyTuple_GET_ITEM(plan.to_python, i)
        if conv is not None and value is not None:
            value = _to_python(plan, i, conv, value)
        elif (plan.targets is not None and value is not None
                and <object>PyTuple_GET_ITEM(plan.targets, i) is not None):
            value = _reference(<tuple>PyTuple_GET_ITEM(plan.targets, i), value, maps, uow)
        name = <object>PyTuple_GET_ITEM(plan.names, i)
        if refresh:
            PyObject_GenericSetAttr(entity, name, value)
        elif reference or before is UNLOADED:
            if i == plan.pk_index or not _written_here(entity, name):
                PyObject_GenericSetAttr(entity, name, value)
        else:
            snap.append(before)
            continue
        if _python_valued(plan.kind_of[i]):
            snap.append(value)
        else:
            snap.append(<object>PyTuple_GET_ITEM(row, i))
    if refresh and complete:
        # every column read again: the attributes are the snapshot
        PyObject_GenericSetAttr(entity, SNAP, plan if plan.lazy_snapshot else tuple(snap))
        if type(dirty) is dict:
            (<dict>dirty).pop(_id(entity), None)
        else:
            dirty.pop(_id(entity), None)
    else:
        PyObject_GenericSetAttr(entity, SNAP, tuple(snap))


def hydrate(Plan plan not None, list rows not None, identity_map, uow, bint refresh,
            list extra=None):
    """See orm._diff_py.hydrate. Takes ownership of `rows`: their tuples become snapshots."""
    _ready(plan)
    cdef list out = []
    cdef object cls = plan.cls
    cdef Py_ssize_t pk_index = plan.pk_index
    cdef Py_ssize_t n = plan.n
    cdef Py_ssize_t width = n if extra is None else n + 1
    cdef Py_ssize_t k = 0
    cdef object pk_conv = <object>PyTuple_GET_ITEM(plan.to_python, pk_index)
    cdef object pk, entity, existing, snap_obj, row
    cdef PyObject* found
    cdef object snap
    cdef dict idmap = None
    cdef bint managed = identity_map is not None
    cdef object dirty = None
    cdef dict maps = None
    cdef bint plain = _plain_new(cls)
    if managed:
        if type(identity_map) is not dict:
            raise TypeError(
                f"Argument 'identity_map' has incorrect type (expected dict or None, got "
                f"{type(identity_map).__name__})")
        if uow is None:
            raise TypeError(
                "hydrate: an identity map needs the unit of work that tracks its entities "
                "(uow is None)")
        idmap = <dict>identity_map
        dirty = PyObject_GetAttr(uow, DIRTY)
        if plan.targets is not None:
            maps = uow.identity_map
    # `row` is the loop's only reference besides the list's: _fill counts on it
    for row in rows:
        if type(row) is not tuple:
            raise TypeError(f"hydrate: row {k} is a {type(row).__name__}, not a tuple")
        if PyTuple_GET_SIZE(row) != width:
            raise ValueError(
                f"hydrate: row {k} has {PyTuple_GET_SIZE(row)} values, the plan of "
                f"{_name_of(cls)} has {n} columns"
                + ("" if extra is None else " and one extra value"))
        k += 1
        if extra is not None:
            extra.append(<object>PyTuple_GET_ITEM(row, n))
        if managed:
            pk = <object>PyTuple_GET_ITEM(row, pk_index)
            if pk_conv is not None and pk is not None:
                pk = pk_conv(pk)
            found = PyDict_GetItemWithError(idmap, pk)
            if found is not NULL:
                existing = <object>found
                snap_obj = PyObject_GetAttr(existing, SNAP)
                if refresh or snap_obj is REFERENCE or _has_unloaded(snap_obj):
                    # reads the first n values only: the extra one needs no slicing off
                    _refill(plan, existing, <tuple>row, refresh, dirty, maps, uow)
                out.append(existing)
                continue
        if extra is not None:
            row = row[:n]  # a new tuple of its own: _fill may patch it in place
        entity = _new_instance(cls, plain)
        snap = _fill(plan, entity, <tuple>row, maps, uow)
        if managed:
            PyObject_GenericSetAttr(entity, SNAP, snap)
            PyObject_GenericSetAttr(entity, UOW, uow)
            PyDict_SetItem(idmap, pk, entity)
        out.append(entity)
    return out


cdef inline object _check(Plan plan, object entity, Py_ssize_t i, object value):
    """Raise (through plan.on_invalid) unless `value` is acceptable for column i."""
    cdef object accepts
    cdef signed char null_ok
    if value is None:
        null_ok = plan.null_ok[i]
        if null_ok == 0 or (
                null_ok < 0 and not <bint>(<object>PyTuple_GET_ITEM(plan.nullable, i))):
            plan.on_invalid(entity, i, value)
        return
    # a value of exactly the one accepted type passes without the call: isinstance would
    # answer True on the same pointer compare, first
    if <PyObject*>Py_TYPE(value) != plan.single_type[i]:
        accepts = <object>PyTuple_GET_ITEM(plan.accepts, i)
        if accepts is not None and (
                not isinstance(value, accepts)
                # True is an int to isinstance, not a number to PostgreSQL (see
                # orm.types.value_problem)
                or (type(value) is bool and bool not in <tuple>accepts)):
            plan.on_invalid(entity, i, value)
            return
    if _unstorable(value) and <object>PyTuple_GET_ITEM(plan.to_db, i) is None:
        plan.on_invalid(entity, i, value)


cdef inline bint _unstorable(object value) except -1:
    """A value sqlite3 would bind unfaithfully: NaN (stored as NULL) or an int beyond 64 bits
    (OverflowError at binding). See orm.types.unstorable."""
    cdef int overflow = 0
    # exact types first (pointer compares): the common values cost next to nothing
    if PyLong_CheckExact(value):
        PyLong_AsLongLongAndOverflow(value, &overflow)
        return overflow != 0
    if PyFloat_CheckExact(value):
        return isnan(PyFloat_AS_DOUBLE(value))
    if PyUnicode_CheckExact(value):
        return False
    if PyFloat_Check(value):  # subclasses, such as numpy.float64
        return isnan(PyFloat_AS_DOUBLE(value))
    if PyLong_Check(value):  # subclasses: IntEnum (bool cannot overflow)
        PyLong_AsLongLongAndOverflow(value, &overflow)
        return overflow != 0
    return False


cdef inline object _db_value(Plan plan, object entity, Py_ssize_t i, object value):
    cdef object conv
    _check(plan, entity, i, value)
    if value is None:
        return None
    if plan.keys is not None:
        conv = <object>PyTuple_GET_ITEM(plan.keys, i)
        if conv is not None and type(value) is <object>PyTuple_GET_ITEM(<tuple>conv, 0):
            return _direct_key(<tuple>conv, value)
    conv = <object>PyTuple_GET_ITEM(plan.to_db, i)
    return value if conv is None else _to_db(plan, i, conv, value, entity)


cdef object _direct_key(tuple direct, object target):
    """The key of a relation's target entity, as RelationType.to_db gives it for a target
    of exactly the class and a key without conversion: the key, or a pending key around the
    target. The pending key is made as its __init__ would (its one slot `entity` set),
    without the Python-level call."""
    cdef object key = getattr(target, <object>PyTuple_GET_ITEM(direct, 1), None)
    if key is not None:
        return key
    cdef object pending = <object>PyTuple_GET_ITEM(direct, 2)
    # object's allocator straight away when it is the class's own (see _plain_new): one per
    # row referencing a new entity, where the Python-level object.__new__ call cost as much
    # as the rest of the row
    key = _new_instance(pending, _plain_new(pending))
    PyObject_GenericSetAttr(key, ENTITY, target)
    return key


def insert_rows(Plan plan not None, list entities not None, bint skip_pk):
    """See orm._diff_py.insert_rows."""
    _ready(plan)
    cdef tuple names = plan.names
    cdef Py_ssize_t pk_index = plan.pk_index
    cdef Py_ssize_t n = plan.n
    cdef Py_ssize_t width = n - 1 if skip_pk else n
    cdef Py_ssize_t i
    cdef Py_ssize_t count = PyList_GET_SIZE(entities)
    cdef list flat = PyList_New(count * width)
    cdef list snapshots = PyList_New(count)
    cdef Py_ssize_t k = 0, e
    cdef object entity, value, v
    cdef tuple snap
    # a relation column's value in the row before and what it gave: rows referencing one
    # entity mostly come in runs (the articles of an author), and the same entity gives the
    # same key, or shares the one PendingKey (each slot of it is filled with that key)
    cdef list before = None, gave = None
    if plan.keys is not None:
        before = PyList_New(0)
        gave = PyList_New(0)
        for i in range(n):
            before.append(None)
            gave.append(None)
    for e in range(count):
        # the slots of `flat` and `snapshots` are counted from `entities` as it was
        if e >= PyList_GET_SIZE(entities):
            raise RuntimeError(_CHANGED_SIZE % "insert_rows")
        entity = <object>PyList_GET_ITEM(entities, e)
        snap = PyTuple_New(n)
        for i in range(n):
            if i == pk_index and skip_pk:
                v = None  # generated: the value the entity holds (None) is neither bound nor read
            else:
                value = getattr(entity, <object>PyTuple_GET_ITEM(names, i), None)
                if (before is not None and value is not None
                        and value is <object>PyList_GET_ITEM(before, i)
                        and <object>PyTuple_GET_ITEM(plan.keys, i) is not None):
                    v = <object>PyList_GET_ITEM(gave, i)
                else:
                    v = _db_value(plan, entity, i, value)
                    if before is not None:
                        before[i] = value
                        gave[i] = v
                Py_INCREF(v)
                PyList_SET_ITEM(flat, k, v)
                k += 1
                if _python_valued(plan.kind_of[i]):
                    v = value
            Py_INCREF(v)
            PyTuple_SET_ITEM(snap, i, v)
        Py_INCREF(snap)
        PyList_SET_ITEM(snapshots, e, snap)
    if PyList_GET_SIZE(entities) != count:
        raise RuntimeError(_CHANGED_SIZE % "insert_rows")
    return flat, snapshots


cdef tuple _with_item(tuple snap, Py_ssize_t i, object value):
    """`snap` with item `i` set to `value`. A snapshot only the caller's list and variable
    hold (insert_rows made it, nothing has handed it out yet) takes it in place; one that
    someone else holds is left alone, and a completed copy is returned for the list."""
    cdef Py_ssize_t j, n
    cdef object old, v
    cdef tuple out
    if Py_REFCNT(snap) <= 2:  # `snap` is borrowed here: the list's and the caller's
        old = <object>PyTuple_GET_ITEM(snap, i)
        Py_INCREF(value)
        PyTuple_SET_ITEM(snap, i, value)
        Py_DECREF(old)
        return snap
    n = PyTuple_GET_SIZE(snap)
    out = PyTuple_New(n)
    for j in range(n):
        v = value if j == i else <object>PyTuple_GET_ITEM(snap, j)
        Py_INCREF(v)
        PyTuple_SET_ITEM(out, j, v)
    return out


def finish_inserts(Plan plan not None, list entities not None, list snapshots not None,
                   bint skip_pk, long long first_id, uow, dict identity_map not None,
                   list keys=None):
    """See orm._diff_py.finish_inserts."""
    _ready(plan)
    cdef Py_ssize_t pk_index = plan.pk_index
    cdef Py_ssize_t n = plan.n
    cdef object pk_name = <object>PyTuple_GET_ITEM(plan.names, pk_index)
    cdef Py_ssize_t k, count = PyList_GET_SIZE(entities)
    cdef object entity, pk, snap
    cdef tuple copy
    if PyList_GET_SIZE(snapshots) != count:
        raise ValueError(
            f"finish_inserts: {count} entities but {PyList_GET_SIZE(snapshots)} snapshots")
    if keys is not None and PyList_GET_SIZE(keys) != count:
        raise ValueError(f"finish_inserts: {count} entities but {PyList_GET_SIZE(keys)} keys")
    for k in range(count):
        snap = <object>PyList_GET_ITEM(snapshots, k)
        if type(snap) is not tuple or PyTuple_GET_SIZE(snap) != n:
            _bad_snapshot(plan, snap, "finish_inserts")
    snap = None
    for k in range(count):
        if k >= PyList_GET_SIZE(entities) or k >= PyList_GET_SIZE(snapshots):
            raise RuntimeError(_CHANGED_SIZE % "finish_inserts")
        entity = <object>PyList_GET_ITEM(entities, k)
        snap = <object>PyList_GET_ITEM(snapshots, k)
        if type(snap) is not tuple or PyTuple_GET_SIZE(snap) != n:
            _bad_snapshot(plan, snap, "finish_inserts")
        if skip_pk:
            if keys is None:
                pk = first_id + k
            else:
                if k >= PyList_GET_SIZE(keys):  # setting a key may have run user code
                    raise RuntimeError(_CHANGED_SIZE % "finish_inserts")
                pk = <object>PyList_GET_ITEM(keys, k)
            PyObject_GenericSetAttr(entity, pk_name, pk)
            copy = _with_item(<tuple>snap, pk_index, pk)  # a tuple: checked above
            if copy is not snap:
                if k >= PyList_GET_SIZE(snapshots):  # setting the key may have run user code
                    raise RuntimeError(_CHANGED_SIZE % "finish_inserts")
                snapshots[k] = copy
                snap = copy
        else:
            pk = getattr(entity, pk_name)
        PyObject_GenericSetAttr(entity, SNAP, snap)
        PyObject_GenericSetAttr(entity, UOW, uow)
        PyDict_SetItem(identity_map, pk, entity)
        snap = None


def apply_snapshots(list entities not None, list snapshots not None):
    """See orm._diff_py.apply_snapshots."""
    cdef Py_ssize_t k, count = PyList_GET_SIZE(entities)
    cdef object entity, snap
    if PyList_GET_SIZE(snapshots) != count:
        raise ValueError(
            f"apply_snapshots: {count} entities but {PyList_GET_SIZE(snapshots)} snapshots")
    for k in range(count):
        if k >= PyList_GET_SIZE(entities) or k >= PyList_GET_SIZE(snapshots):
            raise RuntimeError(_CHANGED_SIZE % "apply_snapshots")
        entity = <object>PyList_GET_ITEM(entities, k)
        snap = <object>PyList_GET_ITEM(snapshots, k)
        PyObject_GenericSetAttr(entity, SNAP, snap)


def join_new(entity, uow, dict group not None):
    """See orm._diff_py.join_new."""
    PyDict_SetItem(group, _id(entity), entity)
    PyObject_GenericSetAttr(entity, UOW, uow)


cdef str _DELTA = "_delta"
cdef str _ITEMS = "_items"
cdef str _ENTITY = "entity"


cdef bint _in_group(dict groups, object entity) except -1:
    """Whether `entity` is in groups[type(entity)] (class -> {id: entity})."""
    cdef PyObject* group = PyDict_GetItemWithError(groups, type(entity))
    if group is NULL:
        return False
    return _id(entity) in <object>group


def new_targets(list entities not None, str name not None, target, ref, new_ids=None,
                dict new_groups=None):
    """See orm._diff_py.new_targets."""
    cdef list positions = [], targets = [], strays = []
    cdef Py_ssize_t k, at
    cdef object entity, value
    # what was found for a value seen before in this call (see _seen_slot): 0 stored, 1 new
    # and in new_ids (or no new_ids), 2 new and not in them
    cdef PyObject* seen[SEEN_SIZE]
    cdef char outcome[SEEN_SIZE]
    cdef char found
    memset(seen, 0, sizeof(seen))
    for k in range(PyList_GET_SIZE(entities)):
        entity = <object>PyList_GET_ITEM(entities, k)
        try:
            value = getattr(entity, name)
        except Exception:  # not loaded (a reference, a partial entity)
            continue
        if value is None:
            continue
        if type(value) is ref:
            value = PyObject_GetAttr(value, _ENTITY)
        if type(value) is not target:
            continue
        at = _seen_slot(<PyObject*>value)
        if seen[at] == <PyObject*>value:
            found = outcome[at]
        else:
            if PyObject_GetAttr(value, SNAP) is not None:
                found = 0
            elif new_ids is not None and _id(value) not in new_ids:
                found = 2
            elif new_groups is not None and not _in_group(new_groups, value):
                found = 2
            else:
                found = 1
            seen[at] = <PyObject*>value
            outcome[at] = found
        if found == 0:
            continue
        if found == 2:
            strays.append(k)
            continue
        positions.append(k)
        targets.append(value)
    return positions, targets, strays


def not_held(list entities not None, uow):
    """See orm._diff_py.not_held."""
    cdef dict found = {}
    cdef PyObject* seen[SEEN_SIZE]  # looked at already (see _seen_slot)
    cdef PyObject* ptr
    cdef Py_ssize_t k, at
    cdef object entity
    memset(seen, 0, sizeof(seen))
    for k in range(PyList_GET_SIZE(entities)):
        ptr = PyList_GET_ITEM(entities, k)
        at = _seen_slot(ptr)
        if seen[at] == ptr:
            continue
        entity = <object>ptr
        if PyObject_GetAttr(entity, UOW) is not uow:
            PyDict_SetItem(found, _id(entity), entity)
        seen[at] = ptr
    return found


def with_key(list entities not None, str name not None):
    """See orm._diff_py.with_key."""
    cdef list out = []
    cdef Py_ssize_t k
    cdef object entity
    for k in range(PyList_GET_SIZE(entities)):
        entity = <object>PyList_GET_ITEM(entities, k)
        if getattr(entity, name, None) is not None:
            out.append(entity)
    return out


def collection_items(list entities not None, str name not None, uow, dict registry not None,
                     bint cascade, bint direct=False, unstored=None, list unpaired=None):
    """See orm._diff_py.collection_items."""
    cdef dict found = {}
    cdef object entity, held, items, item, state, delta
    cdef PyObject* ptr
    cdef PyObject* seen[SEEN_SIZE]  # items looked at already (see _seen_slot)
    cdef Py_ssize_t pos, at
    cdef bint slotted
    memset(seen, 0, sizeof(seen))
    for entity in entities:
        if direct:
            held = PyObject_GetAttr(entity, name)
        else:
            state = PyObject_GetAttr(entity, DICT)
            ptr = PyDict_GetItem(state, name) if type(state) is dict else NULL
            if ptr is NULL:
                continue
            held = <object>ptr
        if held is None:
            continue
        slotted = _slotted(held)
        delta = _slot(held, S_DELTA, slotted)
        items = _slot(held, S_ITEMS, slotted)
        if unstored is not None and delta is not unstored and items:
            if unpaired is not None and not _all_added(delta, items):
                unpaired.append(held)
            _set_slot(held, S_DELTA, unstored, slotted)
            delta = unstored
        if delta and PyObject_GetAttr(entity, UOW) is uow:
            PyDict_SetItem(registry, _id(held), held)
        if not cascade or items is None:
            continue
        pos = 0
        while PyDict_Next(<dict?>items, &pos, NULL, &ptr):
            at = _seen_slot(ptr)
            if seen[at] == ptr:
                continue  # looked at already: found then, or not new
            item = <object>ptr
            if PyObject_GetAttr(item, SNAP) is None and PyObject_GetAttr(item, UOW) is not uow:
                PyDict_SetItem(found, _id(item), item)
            seen[at] = ptr
        item = None
    return list(found.values())


cdef bint _all_added(object delta, object items) except -1:
    """See orm._diff_py._all_added."""
    cdef PyObject* key
    cdef PyObject* change
    cdef Py_ssize_t pos = 0
    if type(delta) is not dict or type(items) is not dict:
        return False
    if PyDict_Size(delta) < PyDict_Size(items):
        return False
    while PyDict_Next(<dict>items, &pos, &key, NULL):
        change = PyDict_GetItem(<dict>delta, <object>key)
        if change is NULL or type(<object>change) is not tuple \
                or PyTuple_GET_SIZE(<object>change) != 2 \
                or <object>PyTuple_GET_ITEM(<object>change, 1) is not True:
            return False
    return True


def pending_slots(list flat not None, Py_ssize_t width, Py_ssize_t position, pending):
    """See orm._diff_py.pending_slots."""
    cdef list rows = [], targets = []
    cdef Py_ssize_t k, at
    cdef object value
    if width <= 0 or not 0 <= position < width:
        raise ValueError("pending_slots: position outside the row")
    for k in range(PyList_GET_SIZE(flat) // width):
        at = k * width + position
        if at >= PyList_GET_SIZE(flat):
            raise RuntimeError(_CHANGED_SIZE % "pending_slots")
        value = <object>PyList_GET_ITEM(flat, at)
        if type(value) is pending:
            rows.append(k)
            targets.append(PyObject_GetAttr(value, _ENTITY))
    return rows, targets


def fill_keys(list holder not None, list slots not None, list targets not None,
              dict keys not None, conv):
    """See orm._diff_py.fill_keys."""
    cdef Py_ssize_t i, count = PyList_GET_SIZE(slots)
    if count != PyList_GET_SIZE(targets):
        raise ValueError("fill_keys: slots and targets differ in length")
    cdef list waiting = [], left = []
    cdef object at, target, key = None, last = None
    cdef PyObject* found
    for i in range(count):
        if i >= PyList_GET_SIZE(slots) or i >= PyList_GET_SIZE(targets):
            raise RuntimeError(_CHANGED_SIZE % "fill_keys")
        at = <object>PyList_GET_ITEM(slots, i)
        target = <object>PyList_GET_ITEM(targets, i)
        if target is not last:  # rows referencing one entity mostly come in runs
            found = PyDict_GetItemWithError(keys, _id(target))
            key = <object>found if found is not NULL else None
            last = target
        if key is None:
            waiting.append(at)
            left.append(target)
            continue
        holder[at] = key if conv is None else conv(key)
    return (waiting, left) if waiting else None


def patch_keys(list snapshots not None, list rows not None, Py_ssize_t column,
               list targets not None, dict keys not None, conv):
    """See orm._diff_py.patch_keys."""
    cdef Py_ssize_t i, n, at, count = PyList_GET_SIZE(rows)
    if count != PyList_GET_SIZE(targets):
        raise ValueError("patch_keys: rows and targets differ in length")
    cdef object row, target, key, stored = None, last = None
    cdef tuple snap, out
    for i in range(count):
        if i >= PyList_GET_SIZE(rows) or i >= PyList_GET_SIZE(targets):
            raise RuntimeError(_CHANGED_SIZE % "patch_keys")
        row = <object>PyList_GET_ITEM(rows, i)
        target = <object>PyList_GET_ITEM(targets, i)
        if target is not last:  # rows referencing one entity mostly come in runs
            stored = keys[_id(target)]
            last = target
        key = stored if conv is None else conv(stored)
        at = row
        if at < 0:
            at += PyList_GET_SIZE(snapshots)
        if not 0 <= at < PyList_GET_SIZE(snapshots):
            raise IndexError("patch_keys: row outside the snapshots")
        snap = <tuple?>PyList_GET_ITEM(snapshots, at)
        n = PyTuple_GET_SIZE(snap)
        if not 0 <= column < n:
            raise IndexError("patch_keys: column outside the snapshot")
        out = _with_item(snap, column, key)
        if out is not snap:
            snapshots[at] = out


cdef str _OWNER = "owner"
cdef str _PROP = "prop"
cdef str _DIRTY = "_dirty"


# -- the slots of orm.entity.collection.Collection, read and written at their offsets ------
#
# A collection's five slots are read and written several times per collection by the walks
# of a flush (and set once per new collection by its owner's constructor); through the
# member descriptors each access costs a type lookup and a descriptor call (about 150-200
# instructions), at its offset a load. The offsets are taken from the class's own member
# descriptors the first time a class with exactly these slots is seen (the class is kept
# referenced, so its address cannot be reused by another one); any other object goes
# through getattr/setattr, as before.

#: the slots, in the order of the offsets below (Collection.__slots__)
cdef tuple _COLLECTION_SLOTS = ("owner", "prop", "_items", "_dirty", "_delta")
cdef object _layout_cls = None
cdef Py_ssize_t _SLOT_OFFSETS[5]
cdef enum:
    S_OWNER = 0
    S_PROP = 1
    S_ITEMS = 2
    S_DIRTY = 3
    S_DELTA = 4


cdef bint _slotted(object obj) except -1:
    """Whether obj's class is the collection layout whose slot offsets are known (learnt
    here on first sight: exactly Collection's slots, each an object member descriptor)."""
    global _layout_cls
    cdef object cls = type(obj)
    if cls is _layout_cls:
        return True
    if _layout_cls is not None or type(cls) is not type:
        return False
    if getattr(cls, "__slots__", None) != _COLLECTION_SLOTS:
        return False
    cdef Py_ssize_t i
    cdef Py_ssize_t offsets[5]
    cdef object descr
    cdef PyMemberDef* member
    for i in range(5):
        descr = cls.__dict__.get(_COLLECTION_SLOTS[i])
        if descr is None or Py_TYPE(descr) != &PyMemberDescr_Type:
            return False
        member = (<PyMemberDescrObject*>descr).d_member
        if member.type != T_OBJECT_EX or member.flags != 0 or member.offset <= 0:
            return False
        offsets[i] = member.offset
    for i in range(5):
        _SLOT_OFFSETS[i] = offsets[i]
    _layout_cls = cls
    return True


cdef inline object _slot(object obj, int i, bint slotted):
    """obj.<slot i>: at its offset when `slotted`, else through getattr; an unset slot raises
    AttributeError either way."""
    if not slotted:
        return PyObject_GetAttr(obj, <object>PyTuple_GET_ITEM(_COLLECTION_SLOTS, i))
    cdef PyObject* value = (<PyObject**>((<char*><PyObject*>obj) + _SLOT_OFFSETS[i]))[0]
    if value is NULL:
        raise AttributeError(
            f"'{type(obj).__name__}' object has no attribute '{_COLLECTION_SLOTS[i]}'")
    return <object>value


cdef inline int _set_slot(object obj, int i, object value, bint slotted) except -1:
    if not slotted:
        PyObject_GenericSetAttr(obj, <object>PyTuple_GET_ITEM(_COLLECTION_SLOTS, i), value)
        return 0
    cdef PyObject** at = <PyObject**>((<char*><PyObject*>obj) + _SLOT_OFFSETS[i])
    cdef PyObject* old = at[0]
    Py_INCREF(value)
    at[0] = <PyObject*>value
    if old is not NULL:
        Py_DECREF(<object>old)
    return 0


def checked_items(items, target, ref):
    """See orm._diff_py.checked_items."""
    return _checked_items(items, target, ref)


cdef tuple _checked_items(object items, object target, object ref):
    cdef dict found = {}
    cdef object item
    for item in items:
        if type(item) is ref:
            item = PyObject_GetAttr(item, _ENTITY)
        if type(item) is not target:
            return found, item
        PyDict_SetItem(found, _id(item), item)
    return found, None


cdef str _M2M = "_orm_many_to_many"
cdef str _TARGETS = "_orm_collection_targets"


cdef object _owning_collection(object cls, object owner, str prop, object items, object ref,
                               object unstored):
    """owning_collection; items a list or tuple holding no None (the caller checked)."""
    cdef object owner_cls = type(owner)
    cdef object sides = getattr(owner_cls, _M2M, None)
    cdef object targets = getattr(owner_cls, _TARGETS, None)
    if type(sides) is not dict or type(targets) is not dict:
        return None
    cdef PyObject* side = PyDict_GetItemWithError(<dict>sides, prop)
    if side is NULL or type(<object>side) is not tuple:
        return None
    cdef PyObject* target = PyDict_GetItemWithError(<dict>targets, prop)
    if target is NULL:
        return None
    if len(<tuple>side) != 2 or not (<tuple>side)[0] or (<tuple>side)[1] is not None:
        return None
    if PyObject_GetAttr(owner, UOW) is not None:
        return None
    found, wrong = _checked_items(items, <object>target, ref)
    if wrong is not None:
        return None
    return _make_collection(cls, owner, prop, found, unstored if found else None)


cdef object _make_collection(object cls, object owner, str prop, object items, object delta):
    """A `cls` (Collection) holding `items`, clean, without its __init__."""
    # object's allocator straight away when it is the class's own (see _plain_new)
    cdef object collection = _new_instance(cls, True) if _plain_new(cls) else cls.__new__(cls)
    cdef bint slotted = _slotted(collection)
    _set_slot(collection, S_OWNER, owner, slotted)
    _set_slot(collection, S_PROP, prop, slotted)
    _set_slot(collection, S_ITEMS, items, slotted)
    _set_slot(collection, S_DIRTY, False, slotted)
    _set_slot(collection, S_DELTA, delta, slotted)
    return collection


def owning_collection(cls, owner, str prop not None, items, ref, unstored):
    """See orm._diff_py.owning_collection."""
    return _owning_collection(cls, owner, prop, items, ref, unstored)


def new_collection(cls, owner, str prop not None, items, ref, unstored, slow):
    """See orm._diff_py.new_collection."""
    cdef object made
    cdef Py_ssize_t i, n
    if items is None:
        return _make_collection(cls, owner, prop, {}, None)
    if type(items) is list:
        n = PyList_GET_SIZE(items)
        for i in range(n):
            if <object>PyList_GET_ITEM(items, i) is None:
                return slow(owner, prop, items)
    elif type(items) is tuple:
        n = PyTuple_GET_SIZE(items)
        for i in range(n):
            if <object>PyTuple_GET_ITEM(items, i) is None:
                return slow(owner, prop, items)
    else:
        return slow(owner, prop, items)
    made = _owning_collection(cls, owner, prop, items, ref, unstored)
    return made if made is not None else slow(owner, prop, items)


def fresh_runs(collections, uow, unstored):
    """See orm._diff_py.fresh_runs."""
    cdef dict groups = {}
    cdef list left = []
    cdef object collection, owner, item, key, group, held, prop, cls
    cdef object last_cls = None, last_prop = None, last_group = None
    cdef PyObject* value
    cdef PyObject* seen[SEEN_SIZE]  # items found held by uow (see _seen_slot)
    cdef Py_ssize_t pos, at
    cdef bint managed, slotted
    memset(seen, 0, sizeof(seen))
    for collection in collections:
        slotted = _slotted(collection)
        owner = _slot(collection, S_OWNER, slotted)
        if (
            _slot(collection, S_DELTA, slotted) is not unstored
            or PyObject_GetAttr(owner, UOW) is not uow
            or PyObject_GetAttr(owner, SNAP) is not None
        ):
            left.append(collection)
            continue
        held = _slot(collection, S_ITEMS, slotted)
        if type(held) is not dict:
            raise TypeError(
                f"fresh_runs: a collection's _items must be a dict, not {type(held).__name__}")
        managed = True
        pos = 0
        while PyDict_Next(<dict>held, &pos, NULL, &value):
            at = _seen_slot(value)
            if seen[at] == value:
                continue
            item = <object>value
            if PyObject_GetAttr(item, UOW) is not uow:
                managed = False
                break
            seen[at] = value
        item = None
        if not managed:
            left.append(collection)
            continue
        cls = type(owner)
        prop = _slot(collection, S_PROP, slotted)
        if cls is last_cls and prop is last_prop:  # the common run: one (class, property)
            group = last_group
        else:
            key = (cls, prop)
            group = groups.get(key)
            if group is None:
                group = groups[key] = ([], [], [])
            last_cls, last_prop, last_group = cls, prop, group
        if PyDict_Size(<dict>held):
            (<list>(<tuple>group)[0]).append(owner)
            (<list>(<tuple>group)[1]).append(held)
        (<list>(<tuple>group)[2]).append(collection)
    return groups, left


def settle(list written not None):
    """See orm._diff_py.settle."""
    cdef list left = []
    cdef object pair, collection, changes
    cdef bint slotted
    for pair in written:
        if type(pair) is not tuple or PyTuple_GET_SIZE(pair) != 2:
            raise TypeError("settle: (collection, changes) pairs expected")
        collection = <object>PyTuple_GET_ITEM(pair, 0)
        changes = <object>PyTuple_GET_ITEM(pair, 1)
        slotted = _slotted(collection)
        if _slot(collection, S_DELTA, slotted) is changes:
            _set_slot(collection, S_DELTA, None, slotted)
            _set_slot(collection, S_DIRTY, False, slotted)
        else:
            left.append(pair)
    return left


def not_managed(list entities not None, uow):
    """See orm._diff_py.not_managed."""
    cdef object entity
    for entity in entities:
        if PyObject_GetAttr(entity, UOW) is not uow:
            return entity
    return None


cdef inline object _pair_key(object entity, dict generated, object pk):
    """An entity's key for a pivot row: its own, else the one generated in this flush."""
    cdef object key = PyObject_GetAttr(entity, pk)
    cdef PyObject* found
    if key is None:
        found = PyDict_GetItemWithError(generated, _id(entity))
        if found is not NULL:
            key = <object>found
    return key


cdef int _append_pair(list flat, object key, PyObject* item, dict generated, object pk,
                      PyObject** seen, PyObject** keys) except -1:
    """Append (key, the item's key) to flat; an item seen before in this call gives the key
    read then (`keys`, held by `flat`; see _seen_slot)."""
    cdef Py_ssize_t at = _seen_slot(item)
    cdef object item_key
    flat.append(key)
    if seen[at] == item:
        flat.append(<object>keys[at])
        return 0
    item_key = _pair_key(<object>item, generated, pk)
    flat.append(item_key)
    seen[at] = item
    keys[at] = <PyObject*>item_key
    return 0


def pair_keys(list owners not None, list runs not None, dict generated not None,
              str owner_pk not None, str item_pk not None):
    """See orm._diff_py.pair_keys."""
    cdef Py_ssize_t k, pos, count = PyList_GET_SIZE(owners)
    if count != PyList_GET_SIZE(runs):
        raise ValueError("pair_keys: owners and runs differ in length")
    cdef list flat = []
    cdef object owner, run, item, key
    cdef PyObject* found
    cdef PyObject* value
    cdef PyObject* seen[SEEN_SIZE]
    cdef PyObject* keys[SEEN_SIZE]
    memset(seen, 0, sizeof(seen))
    for k in range(count):
        if k >= PyList_GET_SIZE(owners) or k >= PyList_GET_SIZE(runs):
            raise RuntimeError(_CHANGED_SIZE % "pair_keys")
        owner = <object>PyList_GET_ITEM(owners, k)
        run = <object>PyList_GET_ITEM(runs, k)
        # an owner is most often new in this flush, an item most often stored
        found = PyDict_GetItemWithError(generated, _id(owner))
        key = <object>found if found is not NULL else None
        if key is None:
            key = PyObject_GetAttr(owner, owner_pk)
        if type(run) is dict:
            pos = 0
            while PyDict_Next(<dict>run, &pos, NULL, &value):
                _append_pair(flat, key, value, generated, item_pk, seen, keys)
        else:
            for item in <list?>run:
                _append_pair(flat, key, <PyObject*>item, generated, item_pk, seen, keys)
    return flat


def join_new_run(list entities not None, Py_ssize_t start, cls, uow, dict group not None):
    """See orm._diff_py.join_new_run."""
    cdef Py_ssize_t k = start
    cdef object entity
    if k < 0:
        k = 0
    while k < PyList_GET_SIZE(entities):
        entity = <object>PyList_GET_ITEM(entities, k)
        if type(entity) is not cls or PyObject_GetAttr(entity, UOW) is not None:
            break
        if PyObject_GetAttr(entity, SNAP) is DELETED:
            break  # persisted again after its row was deleted: the long way
        PyDict_SetItem(group, _id(entity), entity)
        PyObject_GenericSetAttr(entity, UOW, uow)
        k += 1
    return k


def detach(entities):
    """See orm._diff_py.detach."""
    for entity in entities:
        PyObject_GenericSetAttr(entity, UOW, None)
        PyObject_GenericSetAttr(entity, SNAP, None)


def primary_keys(Plan plan not None, list entities not None):
    """See orm._diff_py.primary_keys."""
    _ready(plan)
    cdef Py_ssize_t pk_index = plan.pk_index
    cdef object name = <object>PyTuple_GET_ITEM(plan.names, pk_index)
    cdef object conv = <object>PyTuple_GET_ITEM(plan.to_db, pk_index)
    cdef bint python_valued = _python_valued(plan.kind_of[pk_index])
    cdef list keys = []
    cdef object entity, key, snap
    for entity in entities:
        snap = PyObject_GetAttr(entity, SNAP)
        if type(snap) is tuple and len(<tuple>snap) == plan.n:
            key = <object>PyTuple_GET_ITEM(<tuple>snap, pk_index)
            if python_valued and conv is not None and key is not None:
                key = conv(key)
        else:
            key = getattr(entity, name)
            if conv is not None:
                key = conv(key)
        keys.append(key)
    return keys


cdef object _stored_key(Plan plan, object entity):
    """See orm._diff_py._stored_key."""
    cdef Py_ssize_t pk_index = plan.pk_index
    cdef object snap = PyObject_GetAttr(entity, SNAP)
    cdef object key, conv
    if type(snap) is not tuple or len(<tuple>snap) != plan.n:
        return getattr(entity, <object>PyTuple_GET_ITEM(plan.names, pk_index))
    key = <object>PyTuple_GET_ITEM(<tuple>snap, pk_index)
    conv = <object>PyTuple_GET_ITEM(plan.to_python, pk_index)
    if not _python_valued(plan.kind_of[pk_index]) and conv is not None and key is not None:
        key = conv(key)
    return key


def forget(Plan plan not None, list entities not None, identity_map):
    """See orm._diff_py.forget."""
    _ready(plan)
    cdef object entity, key
    cdef PyObject* found
    cdef dict idmap
    if identity_map is not None:
        if type(identity_map) is not dict:
            raise TypeError(
                f"Argument 'identity_map' has incorrect type (expected dict or None, got "
                f"{type(identity_map).__name__})")
        idmap = <dict>identity_map
        for entity in entities:
            key = _stored_key(plan, entity)
            found = PyDict_GetItemWithError(idmap, key)
            if found is not NULL and <object>found is entity:
                del idmap[key]
    for entity in entities:
        PyObject_GenericSetAttr(entity, UOW, None)
        PyObject_GenericSetAttr(entity, SNAP, DELETED)


def group_by_type(entities, exclude):
    """See orm._diff_py.group_by_type."""
    cdef dict groups = {}
    cdef object entity, cls
    cdef PyObject* found
    cdef bint check = bool(exclude)
    for entity in entities:
        if check and _id(entity) in exclude:
            continue
        cls = type(entity)
        found = PyDict_GetItem(groups, cls)
        if found is NULL:
            groups[cls] = [entity]
        else:
            (<list>found).append(entity)
    return groups


# -- populate (orm.entity.loader) -------------------------------------------------------

def loaded_by_key(Plan plan not None, list entities not None):
    """See orm._diff_py.loaded_by_key."""
    _ready(plan)
    cdef object name = <object>PyTuple_GET_ITEM(plan.names, plan.pk_index)
    cdef dict out = {}
    cdef object entity, snap, key
    for entity in entities:
        snap = PyObject_GetAttr(entity, SNAP)
        if snap is REFERENCE or snap is None:
            continue
        key = PyObject_GetAttr(entity, name)
        if PyDict_GetItemWithError(out, key) is NULL:
            PyDict_SetItem(out, key, entity)
    return out


def relation_targets(list entities not None, str name not None, str key_name not None,
                     ref_type):
    """See orm._diff_py.relation_targets."""
    cdef list targets = []
    cdef list keys = []
    cdef dict seen = {}
    cdef object entity, value, ident
    for entity in entities:
        try:
            value = PyObject_GetAttr(entity, name)
        except Exception:
            continue
        if value is None:
            continue
        if type(value) is ref_type:
            value = PyObject_GetAttr(value, ENTITY)
        ident = PyLong_FromVoidPtr(<void*>value)  # id(value)
        if PyDict_GetItemWithError(seen, ident) is not NULL:
            continue
        PyDict_SetItem(seen, ident, value)
        targets.append(value)
        if PyObject_GetAttr(value, SNAP) is REFERENCE:
            keys.append(PyObject_GetAttr(value, key_name))
    return targets, keys


def group_by_key(list items not None, list keys not None, conv, bint distinct=True):
    """See orm._diff_py.group_by_key."""
    cdef Py_ssize_t k, n = PyList_GET_SIZE(items)
    cdef dict groups = {}
    cdef dict seen = {}
    cdef object item, key, ident
    cdef PyObject* hit
    if PyList_GET_SIZE(keys) != n:
        raise ValueError(f"group_by_key: {n} items but {PyList_GET_SIZE(keys)} keys")
    for k in range(n):
        if k >= PyList_GET_SIZE(items) or k >= PyList_GET_SIZE(keys):
            raise RuntimeError(_CHANGED_SIZE % "group_by_key")
        item = <object>PyList_GET_ITEM(items, k)
        key = <object>PyList_GET_ITEM(keys, k)
        if conv is not None and key is not None:
            key = conv(key)
        ident = PyLong_FromVoidPtr(<void*>item)  # id(item)
        hit = PyDict_GetItemWithError(groups, key)
        if hit is NULL:
            PyDict_SetItem(groups, key, {ident: item})
        else:
            PyDict_SetItem(<dict>hit, ident, item)
        if distinct:
            PyDict_SetItem(seen, ident, item)
    return groups, list(seen.values()) if distinct else None


def fill_collections(dict owners not None, dict groups not None, str name not None, make):
    """See orm._diff_py.fill_collections."""
    cdef object key, owner, items, values, held
    cdef PyObject* hit
    cdef bint direct = False
    if isinstance(make, type):
        direct = (_plain_new(make)
                  and getattr(make, "__slots__", None) == _COLLECTION_SLOTS)
        if not direct:
            make = make._loaded
    for key, owner in owners.items():
        hit = PyDict_GetItemWithError(groups, key)
        items = {} if hit is NULL else <object>hit
        values = PyObject_GetAttr(owner, DICT)
        if type(values) is dict:
            hit = PyDict_GetItemWithError(<dict>values, name)
            held = None if hit is NULL else <object>hit
        else:
            held = values.get(name)
        if held is None:
            if direct:  # what Collection._loaded does, without a Python call per owner
                held = _make_collection(make, owner, name, items, None)
            else:
                held = make(owner, name, items)
            values[name] = held
        else:
            held._fill(items.values())


def compute_changes(Plan plan not None, entities, list references=None):
    """See orm._diff_py.compute_changes."""
    _ready(plan)
    cdef dict groups = {}
    cdef tuple names = plan.names
    cdef tuple to_db = plan.to_db
    cdef tuple compare = plan.compare
    cdef tuple recheck = plan.recheck
    cdef Py_ssize_t pk_index = plan.pk_index
    cdef Py_ssize_t n = plan.n
    cdef Py_ssize_t i, j, m, c
    cdef Py_ssize_t changed[MAX_COLUMNS]
    cdef Py_ssize_t last_changed[MAX_COLUMNS]
    cdef Py_ssize_t last_m = -1
    cdef bint same
    cdef object entity, snap_obj, old, current, new, cmp, conv, key, params, i_obj, v, pk
    cdef object stored, check
    cdef tuple snap, new_snap
    cdef list group = None
    cdef list db_values
    cdef PyObject* found
    cdef int kind
    for entity in entities:
        snap_obj = PyObject_GetAttr(entity, SNAP)
        if snap_obj is None or type(snap_obj) is Plan:  # new, or nothing written since the load
            continue
        if snap_obj is REFERENCE:
            if references is not None:
                references.append(entity)
            continue
        if type(snap_obj) is not tuple or PyTuple_GET_SIZE(snap_obj) != n:
            _bad_snapshot(plan, snap_obj, "compute_changes")
        snap = <tuple>snap_obj
        m = 0
        new_snap = None
        db_values = None
        for i in range(n):
            old = <object>PyTuple_GET_ITEM(snap, i)
            kind = plan.kind_of[i]
            conv = <object>PyTuple_GET_ITEM(to_db, i)
            if old is UNLOADED:
                # a column a partial load did not read: changed if the user wrote it
                if not _written(entity, <object>PyTuple_GET_ITEM(names, i)):
                    continue
                current = getattr(entity, <object>PyTuple_GET_ITEM(names, i))
                new = _db_value(plan, entity, i, current)
            else:
                current = getattr(entity, <object>PyTuple_GET_ITEM(names, i), UNLOADED)
                if current is UNLOADED or current is old:
                    continue
                if _python_valued(kind):
                    # the snapshot holds the Python value: compare as Python values
                    if current == old:
                        continue
                    new = _db_value(plan, entity, i, current)
                else:
                    if conv is not None:
                        new = _db_value(plan, entity, i, current)
                    else:
                        new = current
                    if new is old:
                        continue
                    cmp = <object>PyTuple_GET_ITEM(compare, i)
                    if cmp is None:
                        if new == old:
                            continue
                    elif cmp(new, old):
                        continue
                    if recheck is not None:
                        check = <object>PyTuple_GET_ITEM(recheck, i)
                        if check is not None and _same_as_loaded(check, old, current):
                            continue
                    if conv is None:
                        _check(plan, entity, i, current)
            if new_snap is None:
                # the new snapshot: a copy of the old one, changed slots replaced below
                new_snap = PyTuple_New(n)
                for j in range(n):
                    v = <object>PyTuple_GET_ITEM(snap, j)
                    Py_INCREF(v)
                    PyTuple_SET_ITEM(new_snap, j, v)
                db_values = []
            changed[m] = i
            m += 1
            stored = current if _python_valued(kind) else new
            v = <object>PyTuple_GET_ITEM(new_snap, i)
            Py_INCREF(stored)
            PyTuple_SET_ITEM(new_snap, i, stored)
            Py_DECREF(v)
            db_values.append(new)
        if m == 0:
            continue
        params = PyTuple_New(m + 1)
        for c in range(m):
            v = db_values[c]
            Py_INCREF(v)
            PyTuple_SET_ITEM(params, c, v)
        pk = <object>PyTuple_GET_ITEM(snap, pk_index)
        if plan.kind_of[pk_index] != KIND_GENERIC and pk is not None:
            pk = _to_db(plan, pk_index, <object>PyTuple_GET_ITEM(to_db, pk_index), pk, entity)
        Py_INCREF(pk)
        PyTuple_SET_ITEM(params, m, pk)
        # consecutive entities mostly change the same columns: reuse the previous group
        same = m == last_m
        if same:
            for c in range(m):
                if changed[c] != last_changed[c]:
                    same = False
                    break
        if not same:
            key = PyTuple_New(m)
            for c in range(m):
                i_obj = changed[c]
                Py_INCREF(i_obj)
                PyTuple_SET_ITEM(key, c, i_obj)
                last_changed[c] = changed[c]
            last_m = m
            found = PyDict_GetItem(groups, key)
            if found is NULL:
                group = [[], [], []]
                PyDict_SetItem(groups, key, group)
            else:
                group = <list>found
        (<list>group[0]).append(entity)
        (<list>group[1]).append(new_snap)
        (<list>group[2]).append(params)
    return groups
