"""The FastAPI application: webhook receiver, JSON API, health checks, and the worker's lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.types import Receive, Scope, Send

from bot import api, api_metrics, webhooks
from bot.background import build_background
from bot.config import Settings, get_settings
from bot.database_errors import RepeatLimiter, classify_database_error
from bot.memory import limit_malloc_arenas
from bot.migrate import upgrade_at_start
from bot.observability import router as metrics_router
from bot.readiness import DatabaseProbe
from bot.scheduler import Scheduler
from bot.secrets import announce_generated_secret, resolve_webhook_secret
from bot.slack_app import router as slack_router
from storage.db import create_db_engine, remember_database_file

logger = logging.getLogger(__name__)


def log_disabled_features(settings: Settings) -> None:
    """Say once at start which features are off for lack of credentials."""
    if not settings.has_github_app:
        logger.info("GitHub App calls are off: set GITHUB_APP_ID and GITHUB_PRIVATE_KEY to enable them")
    if not settings.has_slack and not settings.has_slack_oauth:
        logger.info("Slack is off: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to enable it")
    if settings.api_token is None:
        logger.info("the JSON API is open to anyone who can reach it: set API_TOKEN to require a token")


def freeze_startup_heap() -> None:
    """Exempt the objects made at start-up from later full garbage collections, once per process."""
    # A full collection walks every tracked object while holding the GIL. With the ~1,500
    # modules this app imports, one paused every thread for 80-100 ms during webhook load
    # (bench/ingest_bench.py on a 2-core VM). Frozen, the same collections took about 6 ms.
    # Frozen objects are never freed, so garbage is collected just before.
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


class BotApp(FastAPI):
    """The FastAPI app, with `POST /github/webhooks` handled before FastAPI's own layers.

    A delivery needs none of FastAPI's middleware (telemetry, body limit, errors, exceptions),
    routing, Request or JSONResponse, and the webhook load is where their cost shows. The
    FastAPI route of the endpoint stays for the OpenAPI schema.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if webhooks.is_webhook_request(scope):
            scope["app"] = self
            await webhooks.serve_webhook(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, migrate: bool = True, start_worker: bool = True) -> FastAPI:
    """Build the application; the database, migrations and worker start with its lifespan."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_malloc_arenas()
        if migrate:
            await run_in_threadpool(upgrade_at_start, settings)
        engine = create_db_engine(settings.database_url)
        # The webhook endpoint checks after each commit that this file is still the database's.
        remember_database_file(engine)
        secret, generated = await run_in_threadpool(resolve_webhook_secret, settings, engine)
        if generated:
            announce_generated_secret(secret, settings)
        worker, outbox_worker = build_background(engine, settings)
        app.state.settings = settings
        app.state.engine = engine
        app.state.webhook_secret = secret
        app.state.worker = worker
        app.state.outbox_worker = outbox_worker
        app.state.scheduler = scheduler = Scheduler(engine, settings)
        app.state.database_probe = DatabaseProbe(engine)
        app.state.database_warnings = RepeatLimiter()
        log_disabled_features(settings)
        if start_worker:
            if settings.worker_enabled:
                worker.start()
            else:
                logger.info("the delivery worker is off: WORKER_ENABLED is false, so deliveries stay pending")
            outbox_worker.start()
            if settings.scheduler_enabled:
                scheduler.start()
        freeze_startup_heap()
        try:
            yield
        finally:
            scheduler.stop()
            worker.stop()
            outbox_worker.stop()
            writer = getattr(app.state, "delivery_writer", None)
            if writer is not None:
                await writer.aclose()
            engine.dispose()

    app = BotApp(
        title="release-bot",
        summary="CI and release observability for GitHub Actions",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(api_metrics.router)
    app.include_router(metrics_router)
    # Slack's router has its own lifespan, entered after the one above has opened the database.
    app.include_router(slack_router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Report that the process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Report whether the database takes writes and the worker is running (or turned off).

        Returns within about READY_TIMEOUT_SECONDS (bot/readiness.py), also while another
        process holds SQLite's write lock. `reason` then names the problem and the fix.
        """
        problem = await app.state.database_probe.problem()
        if not (start_worker and settings.worker_enabled):
            worker = "disabled"
        else:
            worker = "running" if app.state.worker.is_running else "stopped"
        ready = problem is None and worker != "stopped"
        content: dict[str, object] = {
            "status": "ready" if ready else "not ready",
            "database": problem is None,
            "worker": worker,
        }
        if problem is not None:
            content["reason"] = problem.message
        return JSONResponse(content, status_code=200 if ready else 503)

    return app


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """Return 503 naming the problem and the fix when the database is unavailable.

    Any other database error is a bug, so it is raised again, for a 500 and a logged traceback.
    """
    problem = classify_database_error(exc)
    if problem is None:
        raise exc
    held_back = request.app.state.database_warnings.allow(problem.kind)
    if held_back is not None:
        logger.warning(
            "request failed: database %s", problem.kind,
            extra={"path": request.url.path, "error": problem.detail, "repeats_held_back": held_back},
        )
    return JSONResponse({"detail": problem.message}, status_code=503)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """Return 422 with where and why a request is invalid, without echoing the input.

    FastAPI's own handler echoes each invalid value, and a NaN or Infinity there cannot be
    encoded as JSON, so the request ended in a 500.
    """
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]} for error in errors]
    return JSONResponse({"detail": detail}, status_code=422)
