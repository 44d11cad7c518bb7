"""`deployment` and `deployment_status`: deployments and their time to a final status."""

from __future__ import annotations

from typing import Any

from handlers.github.context import HandlerContext, record_repository
from handlers.github.payload import (
    login_of,
    optional_object,
    optional_str,
    parse_time,
    require_int,
    require_object,
)
from storage import github as github_facts
from storage import metrics
from storage.models import Deployment, MetricType

EVENTS = ("deployment", "deployment_status")
# The length of the metric table's `workflow` column, which the tag is copied into.
MAX_WORKFLOW_TAG = 255


def handle(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record the deployment and, on a final status, its deployment time."""
    deployment_payload = require_object(payload, "deployment")
    deployment_id = require_int(deployment_payload, "id", where="deployment")
    repo = record_repository(ctx, payload) or ""
    fields = {
        "repo": repo,
        "environment": optional_str(deployment_payload, "environment"),
        "ref": optional_str(deployment_payload, "ref"),
        "sha": optional_str(deployment_payload, "sha"),
        "task": optional_str(deployment_payload, "task"),
        "creator": login_of(deployment_payload, "creator"),
        "created_at": parse_time(deployment_payload.get("created_at")),
    }
    if ctx.event == "deployment":
        github_facts.upsert_deployment(session=ctx.session, deployment_id=deployment_id, **fields)
        return

    status = require_object(payload, "deployment_status")
    state = optional_str(status, "state") or "pending"
    deployment, _ = github_facts.record_deployment_status(
        session=ctx.session,
        deployment_id=deployment_id,
        state=state,
        state_at=parse_time(status.get("updated_at")) or parse_time(status.get("created_at")),
        **fields,
    )
    if deployment.duration_s is not None:
        record_deployment_metric(ctx, deployment, optional_object(payload, "workflow_run"))


def record_deployment_metric(ctx: HandlerContext, deployment: Deployment, run: dict[str, Any]) -> None:
    """Record the time from a deployment's creation to its final status."""
    metrics.record_metric(
        session=ctx.session,
        name=MetricType.DEPLOYMENT_TIME.value,
        metric_type=MetricType.DEPLOYMENT_TIME.value,
        value=deployment.duration_s or 0.0,
        timestamp=deployment.state_at,
        tags={
            "repo": deployment.repo,
            "environment": deployment.environment or "",
            "conclusion": deployment.state or "",
            "branch": deployment.ref or "",
            "workflow": optional_str(run, "name", max_length=MAX_WORKFLOW_TAG) or "",
        },
        source_key=f"deployment_time:deployment:{deployment.id}",
    )
