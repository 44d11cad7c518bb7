"""What a webhook handler gets: the delivery's ids, a database session and the settings."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from bot.config import Settings
from handlers.github.payload import optional_int, optional_object, optional_str
from storage import github as github_facts


@dataclass
class HandlerContext:
    """The delivery being processed and the means to record its facts."""

    session: Session
    settings: Settings
    delivery_id: str
    event: str
    action: str | None

    def log_extra(self, **ids: Any) -> dict[str, Any]:
        """Return the `extra` mapping for a log line about this delivery."""
        return {"delivery_id": self.delivery_id, "event": self.event, "action": self.action, **ids}


def matches_any(name: str | None, patterns: tuple[str, ...]) -> bool:
    """Tell whether a name matches one of the glob patterns, ignoring case."""
    if not name:
        return False
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def classify_stage(settings: Settings, name: str | None) -> str | None:
    """Return the stage a job or workflow name belongs to: publish, deploy or test, else None."""
    if matches_any(name, settings.publish_job_patterns):
        return "publish"
    if matches_any(name, settings.deploy_job_patterns):
        return "deploy"
    if matches_any(name, settings.test_job_patterns):
        return "test"
    return None


def record_repository(ctx: HandlerContext, payload: dict[str, Any]) -> str | None:
    """Store the delivery's repository and installation; return the repository's name."""

    installation_id = optional_int(optional_object(payload, "installation"), "id")
    repository = optional_object(payload, "repository")
    repository_id = optional_int(repository, "id")
    full_name = optional_str(repository, "full_name")
    if installation_id is not None and github_facts.get_installation(
        session=ctx.session, installation_id=installation_id
    ) is None:
        github_facts.upsert_installation(
            session=ctx.session, installation_id=installation_id, status="active"
        )
    if repository_id is None or not full_name:
        return full_name.lower() if full_name else None
    github_facts.upsert_repository(
        session=ctx.session,
        repository_id=repository_id,
        full_name=full_name.lower(),
        installation_id=installation_id,
        default_branch=optional_str(repository, "default_branch"),
        private=repository.get("private") if isinstance(repository.get("private"), bool) else None,
    )
    return full_name.lower()
