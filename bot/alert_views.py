"""Gathering of an alert message's data from storage (the incident, its failure, the run's failed
jobs and steps) and the choice of renderer for each kind of message."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot import alert_render as render
from bot.render.slack import SlackMessage, escape, inline
from handlers.github.reactions.alert_routing import FAILING_CONCLUSIONS, mentions_of
from storage import incidents, queries, runs
from storage.models_alerts import AlertFailure, AlertIncident, AlertPost

# Slack ids in `alerts.mentions`: users (U…, W…) and user groups (S…).
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,31}$")
SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,31}$")
FAILED_STEP_CONCLUSIONS = frozenset({"failure", "timed_out"})


@dataclass
class Draft:
    """Everything one outgoing alert message needs, read from storage before any network call."""

    action: str
    note: str | None
    failure: render.FailureView
    incident: render.IncidentView
    actor: str | None = None
    author_email: str | None = None
    mention: str | None = None
    cc: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    passed_url: str | None = None
    passed_label: str = "a later run"


def job_lines(
    session: Session, failure: AlertFailure, *, unfinished: bool = False
) -> list[render.JobLine]:
    """Return the failed jobs of the failing attempt with their failed steps, or with
    `unfinished` the jobs of a stuck attempt that have not completed."""
    if failure.run_id is None:
        return []
    attempt = failure.run_attempt or 1
    jobs = [
        job
        for job in queries.list_jobs(session=session, run_ids=[failure.run_id])
        if job.run_attempt == attempt
        and (job.status != "completed" if unfinished else job.conclusion in FAILING_CONCLUSIONS)
    ]
    steps = queries.list_steps(session=session, job_ids=[job.id for job in jobs])
    lines = []
    for job in jobs:
        failed_steps = [
            render.StepLine(name=step.name, conclusion=step.conclusion, duration_s=step.duration_s)
            for step in steps
            if step.job_id == job.id and step.conclusion in FAILED_STEP_CONCLUSIONS
        ]
        lines.append(
            render.JobLine(
                name=job.name,
                # An unfinished job has no conclusion yet; its status (queued, in progress) shows instead.
                conclusion=job.status if unfinished else job.conclusion,
                duration_s=job.duration_s,
                html_url=job.html_url,
                steps=failed_steps,
            )
        )
    return lines


def failure_view(
    session: Session, failure: AlertFailure, incident: AlertIncident
) -> render.FailureView:
    """Build the view of one failure from its row and the stored run."""
    view = render.FailureView(
        failure_id=failure.id or 0,
        kind=incident.kind,
        repo=failure.repo,
        workflow=failure.workflow,
        branch=failure.branch,
        conclusion=failure.conclusion,
        severity=failure.severity,
        occurred_at=failure.occurred_at,
        run_id=failure.run_id,
        attempt=failure.run_attempt,
        head_sha=failure.head_sha,
        actor=failure.actor,
        environment=failure.environment,
        description=failure.details.get("description"),
        log_url=failure.details.get("log_url"),
    )
    view.is_tag = bool(failure.details.get("is_tag"))
    run = (
        queries.get_run(session=session, run_id=failure.run_id)
        if failure.run_id is not None
        else None
    )
    if run is not None:
        view.run_number = run.run_number
        view.run_url = run.html_url
        view.title = run.display_title
        attempt = runs.get_attempt(session=session, run_id=run.id, attempt=failure.run_attempt or 1)
        view.duration_s = attempt.duration_s if attempt is not None else None
    view.jobs = job_lines(session, failure, unfinished=incident.kind == "stuck")
    return view


def incident_view(session: Session, incident: AlertIncident) -> render.IncidentView:
    """Build the view of an incident, with the run that resolved it."""
    view = render.IncidentView(
        incident_id=incident.id or 0,
        status=incident.status,
        failure_count=incident.failure_count,
        opened_at=incident.opened_at,
        resolved_at=incident.resolved_at,
        recovery_s=incident.recovery_s,
    )
    if incident.resolved_run_id is not None:
        run = queries.get_run(session=session, run_id=incident.resolved_run_id)
        if run is not None:
            view.resolved_run_url = run.html_url
            label = (
                f"{run.workflow_name or 'run'} #{run.run_number}"
                if run.run_number
                else f"run {run.id}"
            )
            if incident.resolved_attempt and incident.resolved_attempt > 1:
                label += f" attempt {incident.resolved_attempt}"
            view.resolved_label = label
    elif incident.kind == "deployment":
        view.resolved_label = "a successful deployment"
    return view


def pick_failure(session: Session, incident: AlertIncident, failure_id: object) -> AlertFailure:
    """Return the failure a message is about: the one named, else the incident's first."""
    if isinstance(failure_id, int):
        failure = incidents.get_failure(session=session, failure_id=failure_id)
        if failure is not None:
            return failure
    failures = incidents.list_incident_failures(session=session, incident_id=incident.id or 0)
    if not failures:
        raise LookupError(f"incident {incident.id} has no failures")
    return failures[0]


def gather_draft(session: Session, post: AlertPost, payload: dict[str, Any]) -> Draft:
    """Read what a message about a post needs; raises LookupError if the incident is gone."""
    incident = incidents.get_incident(session=session, incident_id=post.incident_id)
    if incident is None:
        raise LookupError(f"incident {post.incident_id} of alert post {post.id} no longer exists")
    failure = pick_failure(session, incident, payload.get("failure_id"))
    draft = Draft(
        action=str(payload.get("action") or ""),
        note=payload.get("note"),
        failure=failure_view(session, failure, incident),
        incident=incident_view(session, incident),
        actor=failure.actor,
        author_email=failure.author_email,
        cc=mentions_of(session, incident.repo),
        fields=dict(payload),
    )
    if failure.flaky_run_id is not None:
        passed = queries.get_run(session=session, run_id=failure.flaky_run_id)
        draft.passed_url = passed.html_url if passed is not None else None
        if failure.flaky_run_id == failure.run_id:
            draft.passed_label = f"attempt {failure.flaky_attempt}"
        elif passed is not None:
            draft.passed_label = (
                f"{passed.workflow_name or 'run'} #{passed.run_number or passed.id}"
            )
    return draft


def cc_mentions(entries: list[str], users: dict[str, str]) -> list[str]:
    """Turn `alerts.mentions` entries into mrkdwn: Slack ids mention, mapped logins mention, others show as text."""
    rendered = []
    for entry in entries:
        name = entry.strip().removeprefix("@")
        if SLACK_USER.match(name):
            rendered.append(f"<@{name}>")
        elif SLACK_GROUP.match(name):
            rendered.append(f"<!subteam^{name}>")
        elif name.lower() in users:
            rendered.append(f"<@{users[name.lower()]}>")
        elif name:
            rendered.append(inline(f"@{name}"))
    return rendered


def render_draft(draft: Draft, *, users: dict[str, str]) -> SlackMessage:
    """Render the message a draft stands for."""
    view = draft.failure
    view.mention = draft.mention
    view.cc = cc_mentions(draft.cc, users)
    fields = draft.fields
    if draft.action in (incidents.OPEN, incidents.UPDATE):
        return render.render_root(view, draft.incident)
    if draft.note == "failure":
        number = fields.get("failure_number")
        return render.render_failed_again(
            view, number if isinstance(number, int) else draft.incident.failure_count
        )
    if draft.note == "resolved":
        return render.render_resolved_reply(view, draft.incident)
    if draft.note == "flaky":
        return render.render_flaky_reply(view, draft.passed_label, draft.passed_url)
    if draft.note == "reminder":
        at = parse_at(fields.get("at")) or incidents.now()
        return render.render_reminder(view, draft.incident, at)
    if draft.note == "silenced":
        return render.render_silenced_note(
            str(fields.get("user_id") or ""),
            str(fields.get("duration") or ""),
            parse_at(fields.get("until")),
            fields_int(fields, "silence_id"),
        )
    if draft.note == "rerun":
        return render.render_rerun_note(str(fields.get("user_id") or ""), view)
    if draft.note == "rerun_failed":
        error = escape(str(fields.get("error") or "unknown error"))
        return render.render_note(
            f":warning: The re-run of the failed jobs of {render.run_link(view)} failed: {error}"
        )
    raise LookupError(f"unknown alert message action {draft.action!r} with note {draft.note!r}")


def fields_int(fields: dict[str, Any], name: str) -> int | None:
    """Return an integer payload field, or None."""
    value = fields.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_at(value: object) -> datetime | None:
    """Parse an ISO time stored in a payload."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
