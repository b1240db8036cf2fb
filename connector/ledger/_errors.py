"""Database failures become `StoreError` at the ledger's edge, so no caller sees a raw driver error.

Two kinds matter to callers: the store is *unavailable* (connection refused or dropped, server
shutting down, disk full, read-only, locked) and the caller should back off and retry, or the
store *refused this data* (`DataError`: a value too long for its column, a NUL byte in a text
column), which retrying cannot fix. `IntegrityError` is left alone: callers use it on purpose
(a primary key settles duplicate events).

One mechanism: the `translating` context manager. `store_errors` applies it to a function,
`guard_public_methods` to every public method of a class; ledger modules use those rather than
their own try/except.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from alembic.util import CommandError
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from connector.errors import StoreDataError, StoreError

T = TypeVar("T")


def _driver_errors() -> tuple[type[BaseException], ...]:
    """What a database failure can surface as outside SQLAlchemy's wrapping: a DBAPI error raised
    raw (e.g. from a connect-time hook), the lock file beside a SQLite store (OSError), or Alembic
    refusing a store at a revision this code does not know."""
    errors: list[type[BaseException]] = [SQLAlchemyError, sqlite3.Error, OSError, CommandError]
    try:
        import psycopg
    except ImportError:  # PostgreSQL support is an optional extra
        pass
    else:
        errors.append(psycopg.Error)
    return tuple(errors)


DATABASE_ERRORS = _driver_errors()


def translated(exc: BaseException, doing: str) -> StoreError:
    """The StoreError for a database failure; names the error class, never the statement's values."""
    if isinstance(exc, DataError):
        # Only the class: a driver's DataError text may quote the value refused (a caller's payload)
        return StoreDataError(f"the store refused the data while trying to {doing}: {exc.__class__.__name__}")
    return StoreError(f"store unavailable while trying to {doing}: {outage_reason(exc)}")


def outage_reason(exc: BaseException) -> str:
    """`OperationalError: connection failed: … Connection refused`: the error class and the driver's first line."""
    first = driver_first_line(exc)
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__


def driver_first_line(exc: BaseException) -> str:
    """The first line of the driver's own message (SQLAlchemy's `orig`, an OSError's `strerror`), at most 200
    characters: it says what an operator must fix (refused, locked, disk full, read-only) and holds no statement
    or values (SQLAlchemy appends those on later lines of its own message, not used here). Empty when there is none."""
    driver = getattr(exc, "orig", None) or exc
    lines = str(getattr(driver, "strerror", None) or driver).strip().splitlines()
    return lines[0].strip()[:200] if lines else ""


@contextlib.contextmanager
def translating(doing: str, *, unavailable: str | None = None) -> Iterator[None]:
    """Database errors inside become StoreError (IntegrityError and StoreError pass unchanged).

    `unavailable` words an outage in the caller's terms (a health check's "store cannot take a
    write"), also when an inner ledger function already translated it; DataError keeps its message.
    """
    try:
        yield
    except IntegrityError:
        raise
    except StoreError as error:
        cause = error.__cause__
        if unavailable is None or isinstance(error, StoreDataError) or not isinstance(cause, DATABASE_ERRORS):
            raise
        raise StoreError(f"{unavailable}: {outage_reason(cause)}") from cause
    except DATABASE_ERRORS as exc:
        translation = translated(exc, doing)
        if unavailable is not None and not isinstance(translation, StoreDataError):
            translation = StoreError(f"{unavailable}: {outage_reason(exc)}")
        raise translation from exc


def store_errors(function: Callable[..., T]) -> Callable[..., T]:
    """Decorate one ledger function or method: database errors (except IntegrityError) become StoreError."""
    doing = f"run {function.__qualname__}"  # "store unavailable while trying to run SinkStateStore.status: …"

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with translating(doing):
            return function(*args, **kwargs)

    return wrapper


def guard_public_methods(cls: type[T]) -> type[T]:
    """Class decorator: every public method of a ledger store (class- and static methods too)
    translates database errors.

    A class decorator rather than one decorator per method, so a method added later is covered
    without anyone remembering to.
    """
    for name, value in list(vars(cls).items()):
        if name.startswith("_"):
            continue
        if inspect.isfunction(value):
            setattr(cls, name, store_errors(value))
        elif isinstance(value, classmethod | staticmethod):
            setattr(cls, name, type(value)(store_errors(value.__func__)))
    return cls
