"""Database failures become `StoreError` at the ledger's edge, so no caller sees a raw driver error.

Two kinds matter to callers: the store is *unavailable* (connection refused or dropped, server
shutting down, disk full, read-only, locked) and the caller should back off and retry, or the
store *refused this data* (`DataError`: a value too long for its column, a NUL byte in a text
column), which retrying cannot fix. `IntegrityError` is left alone: callers use it on purpose
(a primary key settles duplicate events).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from connector.errors import StoreDataError, StoreError

T = TypeVar("T")


def translated(exc: SQLAlchemyError, doing: str) -> StoreError:
    """The StoreError for a SQLAlchemy failure; names the error class, never the statement's values."""
    if isinstance(exc, DataError):
        return StoreDataError(f"the store refused the data while trying to {doing}: {exc.__class__.__name__}")
    return StoreError(f"store unavailable while trying to {doing}: {exc.__class__.__name__}")


def store_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Decorate one ledger method: SQLAlchemy errors (except IntegrityError) become StoreError."""
    doing = method.__name__.strip("_").replace("_", " ")

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise translated(exc, doing) from exc

    return wrapper


def guard_public_methods(cls: type[T]) -> type[T]:
    """Class decorator: every public method of a ledger store translates database errors.

    A class decorator rather than one decorator per method, so a method added later is covered
    without anyone remembering to.
    """
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(cls, name, store_errors(value))
    return cls
