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
def not_managed(entities: list[Any], uow: Any) -> Any: ...
def pair_keys(
    owners: list[Any], runs: list[list[Any]], generated: dict[int, Any], owner_pk: str,
    item_pk: str,
) -> list[Any]: ...
def detach(entities: Iterable[Any]) -> None: ...
def primary_keys(plan: Plan, entities: list[Any]) -> list[Any]: ...
def forget(plan: Plan, entities: list[Any], identity_map: dict[Any, Any] | None) -> None: ...
def group_by_type(entities: Iterable[Any], exclude: Any) -> dict[type, list[Any]]: ...
def compute_changes(
    plan: Plan, entities: Iterable[Any], references: list[Any] | None = None
) -> dict[tuple[int, ...], list[list[Any]]]: ...
