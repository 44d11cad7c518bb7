"""`installation` and `installation_repositories`: which repositories the App may see."""

from __future__ import annotations

import logging
from typing import Any

from handlers.github.context import HandlerContext
from handlers.github.payload import (
    optional_int,
    optional_list,
    optional_str,
    require_int,
    require_object,
)
from storage import github as github_facts
from storage import github_app

logger = logging.getLogger(__name__)

EVENTS = ("installation", "installation_repositories")

STATUS_BY_ACTION = {
    "created": "active",
    "new_permissions_accepted": "active",
    "unsuspend": "active",
    "suspend": "suspended",
    "deleted": "deleted",
}


def handle(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record the installation's state and its repositories; deleted ones keep their data."""
    installation = require_object(payload, "installation")
    installation_id = require_int(installation, "id", where="installation")
    account = installation.get("account") if isinstance(installation.get("account"), dict) else {}
    status = STATUS_BY_ACTION.get(ctx.action or "") if ctx.event == "installation" else None
    stored = github_facts.upsert_installation(
        session=ctx.session,
        installation_id=installation_id,
        status=status,
        account_login=optional_str(account, "login"),
        account_type=optional_str(account, "type"),
    )
    if status == "active" and stored.status == "active":
        # Unsuspended, reinstalled or granted new permissions: GitHub calls may work again.
        github_app.clear_installation_problems(session=ctx.session, installation_id=installation_id)
    if status is not None and status != "active":
        logger.info(
            "installation disabled",
            extra=ctx.log_extra(installation_id=installation_id, status=status),
        )

    for key, removed in (("repositories", False), ("repositories_added", False), ("repositories_removed", True)):
        entries = [entry for entry in optional_list(payload, key) if isinstance(entry, dict)]
        for entry in entries:
            repository_id = optional_int(entry, "id")
            full_name = optional_str(entry, "full_name")
            if repository_id is None or not full_name:
                continue
            github_facts.upsert_repository(
                session=ctx.session,
                repository_id=repository_id,
                full_name=full_name.lower(),
                installation_id=installation_id,
                removed=removed,
                private=entry.get("private") if isinstance(entry.get("private"), bool) else None,
            )
