"""`release`: a release's tag, name and state."""

from __future__ import annotations

from typing import Any

from handlers.github.context import HandlerContext, record_repository
from handlers.github.payload import login_of, optional_str, parse_time, require_int, require_object
from storage import github as github_facts

EVENTS = ("release",)

# `edited` changes text, not state, so it keeps the stored state.
STATE_BY_ACTION = {
    "created": "created",
    "prereleased": "prereleased",
    "published": "published",
    "released": "published",
    "unpublished": "unpublished",
    "deleted": "deleted",
}


def handle(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record the release and the state its action moved it to."""
    release = require_object(payload, "release")
    github_facts.upsert_release(
        session=ctx.session,
        release_id=require_int(release, "id", where="release"),
        repo=record_repository(ctx, payload) or "",
        tag_name=optional_str(release, "tag_name"),
        name=optional_str(release, "name"),
        draft=release.get("draft") if isinstance(release.get("draft"), bool) else None,
        prerelease=release.get("prerelease") if isinstance(release.get("prerelease"), bool) else None,
        state=STATE_BY_ACTION.get(ctx.action or ""),
        author=login_of(release, "author"),
        html_url=optional_str(release, "html_url"),
        created_at=parse_time(release.get("created_at")),
        published_at=parse_time(release.get("published_at")),
    )
