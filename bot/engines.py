"""Database engines for the Python API classes: one per database URL and process, migrated once."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from bot.config import get_settings
from storage.db import create_db_engine, upgrade_database

logger = logging.getLogger(__name__)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def resolve_engine(engine: Engine | None = None, database_url: str | None = None, *, migrate: bool = True) -> Engine:
    """Return the given engine, or a shared engine for `database_url` or the configured DATABASE_URL.

    The first request for a URL applies the migrations when `migrate` is set; a given engine
    is used as it is.
    """
    if engine is not None:
        return engine
    url = database_url or get_settings().database_url
    with _lock:
        cached = _engines.get(url)
        if cached is not None:
            return cached
        if migrate:
            upgrade_database(url)
        cached = create_db_engine(url)
        _engines[url] = cached
        return cached


def dispose_engines() -> None:
    """Close every shared engine, as tests and short scripts do before exiting."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
