"""Contract test: one backfill against a Prism mock of GitHub's REST API description, which
answers 422 to a request the description does not allow and returns its examples."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.backfill import Backfill, Pacing, find_installation_id
from bot.config import load_settings
from bot.github_client import GitHubApp
from storage.db import create_db_engine
from storage.models import Job, WorkflowRun
from tests.backfill.conftest import FakeClock
from tests.github_app.conftest import APP_ID, AppKey
from tests.github_app.prism import PrismServer, PrismUnavailable, install_packages, start_prism


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    """Prism serving GitHub's REST API description on 127.0.0.1."""
    try:
        install_packages()
    except PrismUnavailable as exc:
        pytest.skip(str(exc))
    server = start_prism(Path(tmp_path_factory.mktemp("prism")))
    yield server
    server.stop()


def test_backfill_calls_match_description(prism: PrismServer, app_key: AppKey, database_url: str) -> None:
    settings = load_settings(
        _env_file=None, database_url=database_url, github_app_id=APP_ID,
        github_private_key=app_key.private_pem, github_api_url=prism.url,
    )
    clock = FakeClock()
    github = GitHubApp.from_settings(settings, clock=clock.time)
    assert github is not None
    engine = create_db_engine(database_url)
    try:
        installation_id = find_installation_id(engine, github, "octo-org/octo-repo")
        report = Backfill(
            engine=engine, settings=settings, github=github, repo="octo-org/octo-repo", since=date(2020, 1, 1),
            installation_id=installation_id, pacing=Pacing(sleep=clock.sleep, clock=clock.time),
        ).run()
        with Session(engine) as session:
            runs = session.exec(select(WorkflowRun)).all()
            jobs = session.exec(select(Job)).all()
    finally:
        engine.dispose()

    assert report.finished
    # The examples disagree: the example job belongs to run 29679449, which the job handler
    # stores as a run of its own. The example run is queued, so it is not marked done, and the
    # second page (the example Link header points to page 2 again) records it again as one row.
    assert sorted(run.id for run in runs) == [29679449, 30433642]
    assert len(jobs) >= 1
