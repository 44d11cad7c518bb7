"""App factories for the benchmark: the bot with its delivery worker off, to time ingestion alone."""

from __future__ import annotations

from fastapi import FastAPI

from bot.app import create_app


def create_ingest_only_app() -> FastAPI:
    """Return the bot's app, configured from the environment, without its background workers."""
    return create_app(start_worker=False)
