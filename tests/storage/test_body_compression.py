"""Webhook bodies stored on PostgreSQL are compressed with lz4, which costs the server less CPU."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from storage import deliveries
from storage.db import create_db_engine, session_scope
from tests.conftest import postgres_required

pytestmark = postgres_required()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


def test_body_column_uses_lz4(engine: Engine) -> None:
    query = text(
        "SELECT attcompression FROM pg_attribute "
        "WHERE attrelid = 'delivery'::regclass AND attname = 'body'"
    )
    with engine.connect() as connection:
        assert connection.execute(query).scalar() == "l"


def test_large_body_stored_with_lz4(engine: Engine) -> None:
    # Bodies over about 2 KB are compressed; a workflow_job delivery is 8-20 KB.
    steps = [{"number": number, "name": f"Run step {number}", "status": "completed"} for number in range(200)]
    body = json.dumps({"action": "completed", "workflow_job": {"id": 1, "steps": steps}}).encode()
    with session_scope(engine) as session:
        deliveries.insert_delivery(
            session=session,
            delivery_id="compressed-1",
            event="workflow_job",
            action="completed",
            installation_id=None,
            repository=None,
            headers={},
            body=body,
        )

    with engine.connect() as connection:
        method = connection.execute(
            text("SELECT pg_column_compression(body) FROM delivery WHERE delivery_id = 'compressed-1'")
        ).scalar()
        stored = connection.execute(text("SELECT body FROM delivery WHERE delivery_id = 'compressed-1'")).scalar()
    assert method == "lz4"
    assert stored == body
