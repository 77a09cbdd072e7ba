"""Type stub of the compiled change detector (orm._diff); orm._diff_py is its twin."""

from collections.abc import Callable, Iterable
from typing import Any, final

BACKEND: str

@final
class Plan:
    """Validated when built (ValueError / TypeError), read-only afterwards."""

    @property
    def cls(self) -> type: ...
    @property
    def names(self) -> tuple[str, ...]: ...
    @property
    def n(self) -> int: ...
    @property
    def pk_index(self) -> int: ...
    @property
    def to_python(self) -> tuple[Callable[[Any], Any] | None, ...]: ...
    @property
    def to_db(self) -> tuple[Callable[[Any], Any] | None, ...]: ...
    @property
    def compare(self) -> tuple[Callable[[Any, Any], bool] | None, ...]: ...
    @property
    def accepts(self) -> tuple[tuple[type, ...] | None, ...]: ...
    @property
    def nullable(self) -> tuple[bool, ...]: ...
    @property
    def has_mutable(self) -> bool: ...
    @property
    def on_invalid(self) -> Callable[[Any, int, Any], None]: ...
    @property
    def targets(self) -> tuple[Any, ...] | None: ...
    @property
    def kinds(self) -> tuple[int, ...]:
        """Per column: 0 generic, 1 datetime, 2 boolean, 3 other value type, 4 blob."""
    def __init__(
        self,
        cls: type,
        names: tuple[str, ...],
        pk_index: int,
        to_python: tuple[Callable[[Any], Any] | None, ...],
        to_db: tuple[Callable[[Any], Any] | None, ...],
        compare: tuple[Callable[[Any, Any], bool] | None, ...],
        accepts: tuple[tuple[type, ...] | None, ...],
        nullable: tuple[bool, ...],
        has_mutable: bool,
        on_invalid: Callable[[Any, int, Any], None],
        kinds: tuple[int, ...] | None = None,
        targets: tuple[Any, ...] | None = None,
    ) -> None: ...

def tracked_setattr(self: Any, name: str, value: Any) -> None: ...
def init_entity(entity: Any, names: tuple[str, ...], values: tuple[Any, ...]) -> None: ...
def hydrate(
    plan: Plan,
    rows: list[tuple[Any, ...]],
    identity_map: dict[Any, Any] | None,
    uow: Any,
    refresh: bool,
    extra: list[Any] | None = None,
) -> list[Any]: ...
def insert_rows(
    plan: Plan, entities: list[Any], skip_pk: bool
) -> tuple[list[Any], list[tuple[Any, ...]]]: ...
def finish_inserts(
    plan: Plan,
    entities: list[Any],
    snapshots: list[tuple[Any, ...]],
    skip_pk: bool,
    first_id: int,
    uow: Any,
    identity_map: dict[Any, Any],
    keys: list[Any] | None = None,
) -> None: ...
def apply_snapshots(entities: list[Any], snapshots: list[tuple[Any, ...]]) -> None: ...
def join_new(entity: Any, uow: Any, group: dict[int, Any]) -> None: ...
def detach(entities: Iterable[Any]) -> None: ...
def primary_keys(plan: Plan, entities: list[Any]) -> list[Any]: ...
def forget(plan: Plan, entities: list[Any], identity_map: dict[Any, Any] | None) -> None: ...
def group_by_type(entities: Iterable[Any], exclude: Any) -> dict[type, list[Any]]: ...
def loaded_by_key(plan: Plan, entities: list[Any]) -> dict[Any, Any]: ...
def relation_targets(
    entities: list[Any], name: str, key_name: str, ref_type: type
) -> tuple[list[Any], list[Any]]: ...
def group_by_key(
    items: list[Any], keys: list[Any], conv: Callable[[Any], Any] | None, distinct: bool = True
) -> tuple[dict[Any, dict[int, Any]], list[Any] | None]: ...
def fill_collections(
    owners: dict[Any, Any],
    groups: dict[Any, dict[int, Any]],
    name: str,
    make: Callable[[Any, str, dict[int, Any]], Any] | type,
) -> None: ...
def compute_changes(
    plan: Plan, entities: Iterable[Any], references: list[Any] | None = None
) -> dict[tuple[int, ...], list[list[Any]]]: ...
