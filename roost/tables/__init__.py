"""Postfix lookup tables (DATABASE_README): `open_table("type:name")` and the search orders
of access(5), virtual(5)/canonical(5) and aliases(5) built on it."""

from roost.tables.base import LookupTable, TableError, TableOptions
from roost.tables.registry import SUPPORTED_TYPES, clear_cache, open_table, split_reference

__all__ = ["LookupTable", "TableError", "TableOptions", "SUPPORTED_TYPES", "clear_cache", "open_table",
           "split_reference"]
