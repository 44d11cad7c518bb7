"""`pull_request`: a pull request's number, state and head, to find the PR of a run later."""

from __future__ import annotations

from typing import Any

from handlers.github.context import HandlerContext, record_repository
from handlers.github.payload import (
    MAX_COUNTER,
    optional_object,
    optional_str,
    require_int,
    require_object,
)
from storage import github as github_facts

EVENTS = ("pull_request",)


def handle(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record the pull request and its head SHA and head repository."""
    pull_request = require_object(payload, "pull_request")
    pull_request_id = require_int(pull_request, "id", where="pull_request")
    repo = record_repository(ctx, payload) or ""
    head = optional_object(pull_request, "head")
    base = optional_object(pull_request, "base")
    head_repository = optional_str(optional_object(head, "repo"), "full_name")
    github_facts.upsert_pull_request(
        session=ctx.session,
        pull_request_id=pull_request_id,
        repo=repo,
        number=require_int(pull_request, "number", where="pull_request", maximum=MAX_COUNTER),
        state=optional_str(pull_request, "state"),
        title=optional_str(pull_request, "title"),
        head_sha=optional_str(head, "sha"),
        head_ref=optional_str(head, "ref"),
        head_repository=head_repository.lower() if head_repository else None,
        base_ref=optional_str(base, "ref"),
        html_url=optional_str(pull_request, "html_url"),
    )
