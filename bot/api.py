"""JSON API under /api/v1: runs with attempts, jobs and steps, and metric statistics."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from bot.periods import parse_since
from bot.views import run_views
from storage import metrics, queries
from storage.db import read_session
from storage.models import MetricType

bearer = HTTPBearer(auto_error=False)


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Check the bearer token against API_TOKEN when one is set."""
    expected = request.app.state.settings.api_token
    if expected is None:
        return
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or invalid bearer token: send 'Authorization: Bearer <API_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(prefix="/api/v1", tags=["api"], dependencies=[Depends(require_token)])


def read(request: Request, function: Any, **kwargs: Any) -> Any:
    with read_session(request.app.state.engine) as session:
        return function(session, **kwargs)


@router.get("/runs")
async def list_runs(
    request: Request,
    repo: Annotated[str | None, Query(description="OWNER/NAME")] = None,
    workflow: str | None = None,
    branch: str | None = None,
    before: Annotated[int | None, Query(description="Only runs with a smaller run id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """List runs, newest first, each with its attempts, jobs and steps."""

    def load(session: Session) -> list[dict[str, Any]]:
        runs = queries.list_runs(
            session=session, repo=repo, workflow=workflow, branch=branch, before_id=before, limit=limit
        )
        return run_views(session, list(runs))

    return {"runs": await run_in_threadpool(read, request, load)}


@router.get("/runs/{run_id}", responses={404: {"description": "Unknown run"}})
async def get_run(request: Request, run_id: int) -> dict[str, Any]:
    """Return one run with its attempts, jobs and steps."""

    def load(session: Session) -> list[dict[str, Any]]:
        run = queries.get_run(session=session, run_id=run_id)
        return run_views(session, [run]) if run else []

    views = await run_in_threadpool(read, request, load)
    if not views:
        raise HTTPException(status_code=404, detail=f"run {run_id} not found")
    return views[0]


@router.get("/stats")
async def stats(
    request: Request,
    metric: Annotated[str, Query(description="build_time, queue_time, test_duration, ...")] = "build_time",
    repo: Annotated[str | None, Query(description="OWNER/NAME")] = None,
    workflow: str | None = None,
    branch: str | None = None,
    since: Annotated[str | None, Query(description="7d, 12h or an ISO 8601 time")] = None,
) -> dict[str, Any]:
    """Return statistics of one metric: count, mean, min, max, p50, p90, p95, p99, stddev, total.

    Each completed attempt of a run is one `build_time` point, so a re-run adds a point.
    """
    known = {member.value for member in MetricType}
    if metric not in known:
        raise HTTPException(
            status_code=400, detail=f"unknown metric {metric!r}; use one of {', '.join(sorted(known))}"
        )
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    tags = {
        key: value
        for key, value in (("repo", repo.lower() if repo else None), ("workflow", workflow), ("branch", branch))
        if value is not None
    }
    metric_filter = metrics.MetricFilter(metric_type=metric, tags=tags, since=start)

    def load(session: Session) -> dict[str, Any]:
        return metrics.calculate_statistics(session=session, metric_filter=metric_filter)

    return {"metric": metric, **await run_in_threadpool(read, request, load)}
