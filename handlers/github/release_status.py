"""Jobs of release and publish workflows become stages of their release's dashboard.

A workflow counts as a release workflow when its name matches PUBLISH_JOB_PATTERNS (stage
`publish` in `classify_stage`) or its run was triggered by a `release` event. The release's
version is the tag the run was triggered for: GitHub sets `head_branch` of a tag-triggered run
to the tag's name.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import or_, select

from handlers.github.context import HandlerContext, classify_stage
from storage import releases, runs
from storage.jobs import JobRecord
from storage.models import Job, Release, Tag, WorkflowRun

logger = logging.getLogger(__name__)

# A ref that reads like a version (1.2, v1.2.3, 2.0.0-rc.1) is taken as a tag even before the
# bot has seen the tag's `push` or `release` event, which GitHub may deliver later.
VERSION_LIKE = re.compile(r"^[vV]?\d+(\.\d+)+([-+.][0-9A-Za-z.-]+)?$")


def is_release_workflow(ctx: HandlerContext, job: Job | JobRecord, run: WorkflowRun | None) -> bool:
    """Tell whether a job belongs to a release or publish workflow."""
    workflow_name = job.workflow_name or (run.workflow_name if run else None)
    if classify_stage(ctx.settings, workflow_name) == "publish":
        return True
    return run is not None and run.event == "release"


def release_version(ctx: HandlerContext, repo: str, ref: str | None, run: WorkflowRun | None) -> tuple[str, int | None] | None:
    """Return the version (and the release's id when known) a run was triggered for, or None."""
    if not ref:
        return None
    release = ctx.session.scalars(
        select(Release)
        .where(Release.repo == repo, or_(Release.tag_name == ref, Release.name == ref))
        .order_by(Release.id.desc())  # type: ignore[union-attr]
    ).first()
    if release is not None:
        return release.tag_name or ref, release.id
    tag = ctx.session.get(Tag, (repo, ref))
    if (tag is not None and not tag.deleted) or (run is not None and run.event == "release"):
        return ref, None
    if VERSION_LIKE.match(ref):
        return ref, None
    return None


def record_job_stage(ctx: HandlerContext, job: Job | JobRecord) -> None:
    """Record a job of a release workflow as a stage of its release's dashboard."""
    run = runs.get_run(ctx.session, job.run_id)
    if not is_release_workflow(ctx, job, run):
        return
    found = release_version(ctx, job.repo, job.head_branch or (run.head_branch if run else None), run)
    if found is None:
        logger.debug(
            "release job without a tag, not on a dashboard",
            extra=ctx.log_extra(job_id=job.id, run_id=job.run_id, repo=job.repo),
        )
        return

    ref, release_id = found
    try:
        version = releases.normalize_version(ref)
    except ValueError as exc:
        logger.warning("release version unusable: %s", exc, extra=ctx.log_extra(job_id=job.id, repo=job.repo))
        return
    dashboard = releases.ensure_dashboard(session=ctx.session, repo=job.repo, version=version, release_id=release_id)
    workflow_name = job.workflow_name or (run.workflow_name if run else None)
    stage = releases.record_job_stage(session=ctx.session, dashboard=dashboard, job=job, workflow_name=workflow_name)
    if stage is not None:
        logger.debug(
            "release stage recorded",
            extra=ctx.log_extra(job_id=job.id, repo=job.repo, version=version, stage=stage.name, status=stage.status),
        )
