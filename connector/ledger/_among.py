"""`column` among many values, written the way each backend plans and caches best.

PostgreSQL: `column = ANY(:array)`, one bound parameter whatever the number of values, so the statement's text is
the same for every batch (psycopg prepares it after a few runs and the server skips parsing and planning) and no
list of thousands of parameters is sent. SQLite has no arrays: `column IN (…)`, chunked below its limit of host
parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Text, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

IN_CHUNK = 500
"""Values per SQLite `IN (…)` list: far below its 32,766 host parameters, however many other parameters."""


def among(
    connection: Connection, column: Any, values: Collection[Any], name: str = "among"
) -> Iterator[ColumnElement[bool]]:
    """Conditions `column ∈ values`, to run one statement each: one on PostgreSQL, one per chunk on SQLite.

    `values` are all ints (ids) or all strings; none means no condition (nothing to ask). `name` names the
    bound parameter, unique within its statement."""
    items = sorted(set(values))
    if not items:
        return
    if connection.dialect.name == "postgresql":
        element = BigInteger() if isinstance(items[0], int) else Text()
        yield column == any_(bindparam(name, items, type_=ARRAY(element)))
        return
    for start in range(0, len(items), IN_CHUNK):
        yield column.in_(items[start : start + IN_CHUNK])


def one_condition(
    connection: Connection, column: Any, values: Collection[Any], name: str = "among"
) -> ColumnElement[bool]:
    """`column ∈ values` as one condition, for values known to be few (a claim's ids, a mapping's properties): one
    `IN` list on SQLite whatever their number, so keep them far below its 32,766 host parameters."""
    items = sorted(set(values))
    if connection.dialect.name == "postgresql":
        element = BigInteger() if items and isinstance(items[0], int) else Text()
        return column == any_(bindparam(name, items, type_=ARRAY(element)))
    return column.in_(items)
