"""The implementations compared, one module each; the registry the parent and the cells share.

Each module exposes ``describe() -> str`` (library and version, for the report header; raising
``Unavailable`` when the library is importable but cannot run the cell as labelled) and a dict
``{workload: function(ctx) -> observations}``. A workload missing from the dict is not applicable
to that implementation (printed as ``-``), e.g. W4 for libraries without a Unit of Work.

Modules import their library at top level, so a missing library surfaces as a
``ModuleNotFoundError`` naming it, which the cell runner reports as "not installed".
"""

from dataclasses import dataclass, field
from types import MappingProxyType


class Unavailable(Exception):
    """The library imports, but this column cannot be measured as labelled (e.g. no compiled core)."""


class DriverMissing(Unavailable):
    """The library imports, but the database driver it needs does not (psycopg2 for Peewee and
    Pony on PostgreSQL)."""


@dataclass(frozen=True)
class ImplSpec:
    """How to run one column of the table."""

    name: str
    #: module under ``_impls`` holding the workloads
    module: str
    #: attribute of that module with the workload dict
    attr: str
    #: top-level package whose absence means "not installed"
    library: str
    #: column header
    label: str
    #: environment overrides for the cell subprocess (``None`` removes the variable)
    env: MappingProxyType[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    #: the library binds once per process (Pony's Database), so even ``--quick`` runs each
    #: cell in its own process
    one_cell_per_process: bool = False


def _env(**values: str | None) -> MappingProxyType[str, str | None]:
    return MappingProxyType(values)


_WORKLOADS = "WORKLOADS"

IMPLEMENTATIONS: dict[str, ImplSpec] = {
    spec.name: spec
    for spec in (
        ImplSpec("raw", module="raw", attr=_WORKLOADS, library="sqlite3", label="raw sqlite3"),
        ImplSpec(
            "raw_values",
            module="raw",
            attr="VALUES_WORKLOADS",
            library="sqlite3",
            label="raw VALUES",
        ),
        ImplSpec(
            "orm",
            module="orm_project",
            attr=_WORKLOADS,
            library="orm",
            label="orm (compiled)",
            env=_env(ORM_PURE_PYTHON=None),
        ),
        ImplSpec(
            "orm_pure",
            module="orm_project",
            attr=_WORKLOADS,
            library="orm",
            label="orm (pure Python)",
            env=_env(ORM_PURE_PYTHON="1"),
        ),
        ImplSpec(
            "sqlalchemy_orm",
            module="sqlalchemy_orm",
            attr=_WORKLOADS,
            library="sqlalchemy",
            label="SQLAlchemy ORM",
        ),
        ImplSpec(
            "sqlalchemy_core",
            module="sqlalchemy_core",
            attr=_WORKLOADS,
            library="sqlalchemy",
            label="SQLAlchemy Core",
        ),
        ImplSpec(
            "peewee",
            module="peewee_impl",
            attr=_WORKLOADS,
            library="peewee",
            label="Peewee (per row)",
        ),
        ImplSpec(
            "peewee_bulk",
            module="peewee_impl",
            attr="BULK_WORKLOADS",
            library="peewee",
            label="Peewee (bulk)",
        ),
        ImplSpec(
            "pony",
            module="pony_impl",
            attr=_WORKLOADS,
            library="pony",
            label="Pony",
            one_cell_per_process=True,
        ),
    )
}


#: The columns of ``compare.py --db postgresql``: the same libraries on the same table, each
#: through its PostgreSQL driver (raw: psycopg 3; ``raw_alt``: the competing raw method of W1
#: and W3, the floor being the faster of the two).
PG_IMPLEMENTATIONS: dict[str, ImplSpec] = {
    spec.name: spec
    for spec in (
        ImplSpec("raw", module="raw_pg", attr=_WORKLOADS, library="psycopg", label="raw psycopg"),
        ImplSpec(
            "raw_alt",
            module="raw_pg",
            attr="ALT_WORKLOADS",
            library="psycopg",
            label="raw psycopg (alt)",
        ),
        ImplSpec(
            "orm",
            module="orm_project",
            attr=_WORKLOADS,
            library="orm",
            label="orm (compiled)",
            env=_env(ORM_PURE_PYTHON=None),
        ),
        ImplSpec(
            "orm_pure",
            module="orm_project",
            attr=_WORKLOADS,
            library="orm",
            label="orm (pure Python)",
            env=_env(ORM_PURE_PYTHON="1"),
        ),
        ImplSpec(
            "sqlalchemy_orm",
            module="sqlalchemy_orm_pg",
            attr=_WORKLOADS,
            library="sqlalchemy",
            label="SQLAlchemy ORM",
        ),
        ImplSpec(
            "peewee",
            module="peewee_pg",
            attr=_WORKLOADS,
            library="peewee",
            label="Peewee (per row)",
        ),
        ImplSpec(
            "peewee_bulk",
            module="peewee_pg",
            attr="BULK_WORKLOADS",
            library="peewee",
            label="Peewee (bulk)",
        ),
        ImplSpec(
            "pony",
            module="pony_pg",
            attr=_WORKLOADS,
            library="pony",
            label="Pony",
            one_cell_per_process=True,
        ),
    )
}
