"""Fixtures for the operations tests: an App private key and settings that enable GitHub calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.config import Settings, load_settings
from tests.conftest import WEBHOOK_SECRET

APP_ID = 31337


@pytest.fixture(scope="session")
def app_key() -> rsa.RSAPrivateKey:
    """An RSA key standing in for the GitHub App's private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def app_key_pem(app_key: rsa.RSAPrivateKey) -> str:
    return app_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def app_settings(database_url: str, app_key_pem: str, tmp_path: Path) -> Settings:
    """Settings with App credentials; the scheduler is off so tests run jobs themselves."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        github_webhook_secret=WEBHOOK_SECRET,
        github_app_id=APP_ID,
        github_private_key=app_key_pem,
        worker_poll_seconds=0.05,
        scheduler_enabled=False,
    )
