"""`POST /api/v1/metrics`: record a metric point from a CI job, as MetricsTracker.record_metric does."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from bot.api import require_token
from bot.tracker import MetricPoint
from storage import metrics
from storage.db import session_scope
from storage.models import Metric, MetricType

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["api"], dependencies=[Depends(require_token)])


class MetricIn(BaseModel):
    """A metric point as a CI job sends it; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=metrics.MAX_NAME_LENGTH, strict=True)]
    # A JSON number only: strings, booleans, NaN and infinity are rejected.
    value: Annotated[float, Field(strict=True, allow_inf_nan=False)]
    type: MetricType = MetricType.CUSTOM
    tags: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    timestamp: Annotated[datetime | None, Field(description="ISO 8601; without an offset it is UTC")] = None


class NonFinite:
    """Placeholder for a NaN or Infinity literal, which Python's json module accepts and JSON does not."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def validation_error(errors: list[dict[str, Any]]) -> JSONResponse:
    """Return a 422 naming each bad field, in FastAPI's `detail` shape, without echoing input."""
    detail = [
        {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]} for error in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def parse_point(body: bytes) -> MetricIn | JSONResponse:
    """Parse and validate the request body, or return the 422 response that names the bad field."""
    try:
        data = json.loads(body or b"null", parse_constant=NonFinite)
    except ValueError as exc:
        return validation_error([{"loc": [], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}])
    if isinstance(data, dict) and isinstance(data.get("value"), NonFinite):
        literal = data["value"].literal
        return validation_error(
            [{"loc": ["value"], "msg": f"Input should be a finite number, got {literal}", "type": "finite_number"}]
        )
    try:
        return MetricIn.model_validate(data)
    except ValidationError as exc:
        # `include_input=False`: an echoed NaN would make the error itself unserializable.
        return validation_error(exc.errors(include_url=False, include_context=False, include_input=False))  # type: ignore[arg-type]


@router.post(
    "/metrics",
    status_code=201,
    response_model=None,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MetricIn.model_json_schema()}},
        }
    },
    responses={400: {"description": "A field is invalid"}, 422: {"description": "A field is missing or has the wrong type"}},
)
async def record_metric(request: Request) -> dict[str, Any] | JSONResponse:
    """Store one metric point and return it; it counts in `/api/v1/stats` at once."""
    parsed = parse_point(await request.body())
    if isinstance(parsed, JSONResponse):
        logger.warning("metric rejected: invalid body")
        return parsed
    point = parsed

    def store() -> dict[str, Any]:
        with session_scope(request.app.state.engine) as session:
            metric_id = metrics.upsert_metric(
                session=session,
                name=point.name,
                metric_type=point.type.value,
                value=point.value,
                timestamp=point.timestamp,
                tags=point.tags,
            )
            row = session.get_one(Metric, metric_id)
            return MetricPoint.from_row(row).to_dict()

    try:
        stored = await run_in_threadpool(store)
    except ValueError as exc:
        logger.warning("metric rejected: %s", exc, extra={"metric_name": point.name, "metric_type": point.type.value})
        raise HTTPException(status_code=400, detail=str(exc)) from None
    logger.info("metric recorded", extra={"metric_id": stored["id"], "metric_type": stored["type"]})
    return JSONResponse(stored, status_code=201)
