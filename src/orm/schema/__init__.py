"""Schema generation for the entities' tables."""

from .generator import SchemaGenerator

__all__ = ["SchemaGenerator"]
