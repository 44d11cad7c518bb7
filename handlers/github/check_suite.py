"""`check_suite`: the conclusion of a commit's checks."""

from __future__ import annotations

from typing import Any

from handlers.github.context import HandlerContext, record_repository
from handlers.github.payload import optional_object, optional_str, require_int, require_object
from storage import github as github_facts

EVENTS = ("check_suite",)


def handle(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record the check suite's status and conclusion."""
    suite = require_object(payload, "check_suite")
    github_facts.upsert_check_suite(
        session=ctx.session,
        check_suite_id=require_int(suite, "id", where="check_suite"),
        repo=record_repository(ctx, payload) or "",
        head_sha=optional_str(suite, "head_sha"),
        head_branch=optional_str(suite, "head_branch"),
        app_slug=optional_str(optional_object(suite, "app"), "slug"),
        status=optional_str(suite, "status"),
        conclusion=optional_str(suite, "conclusion"),
    )
