"""Naming strategies: how class and property names become table and column names."""

from __future__ import annotations

__all__ = ["NamingStrategy", "UnderscoreNamingStrategy", "EntityCaseNamingStrategy"]

_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_LOWER_OR_DIGIT = _LOWER | frozenset("0123456789")


class NamingStrategy:
    """Base: subclass and override to map names your own way."""

    def class_to_table_name(self, class_name: str) -> str:
        raise NotImplementedError

    def property_to_column_name(self, property_name: str) -> str:
        raise NotImplementedError

    def index_name(self, table: str, columns: list[str], kind: str) -> str:
        """MikroORM's convention: `user_email_unique`, `user_age_index`."""
        return f"{table}_{'_'.join(columns)}_{kind}"

    def join_key_column_name(self, property_name: str, referenced_column: str) -> str:
        """The foreign key column of a relation: MikroORM's `author_id` for `author` -> `id`."""
        return f"{self.property_to_column_name(property_name)}_{referenced_column}"


def _underscore(name: str) -> str:
    """`_` at each word boundary of a camel-case name (`blogPost`, `HTTPServer` ->
    `http_server`: an ASCII capital after a lowercase letter or digit, or a capital that
    starts a word after capitals), then lowercase. A loop rather than a regular expression:
    `import orm` does not load `re`."""
    out = []
    last = len(name) - 1
    for i, ch in enumerate(name):
        if i and ch in _UPPER:
            before = name[i - 1]
            if before in _LOWER_OR_DIGIT or (
                before in _UPPER and i < last and name[i + 1] in _LOWER
            ):
                out.append("_")
        out.append(ch)
    return "".join(out).lower()


class UnderscoreNamingStrategy(NamingStrategy):
    """The default: `BlogPost` -> `blog_post`, `fullName` / `full_name` -> `full_name`."""

    def class_to_table_name(self, class_name: str) -> str:
        return _underscore(class_name)

    def property_to_column_name(self, property_name: str) -> str:
        return _underscore(property_name)


class EntityCaseNamingStrategy(NamingStrategy):
    """Names kept exactly as written in the class: `BlogPost` -> `BlogPost`."""

    def class_to_table_name(self, class_name: str) -> str:
        return class_name

    def property_to_column_name(self, property_name: str) -> str:
        return property_name
