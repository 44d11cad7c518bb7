"""Alert channels: their configuration checks, message rendering and one sender per channel.

A sender returns the receiver's response (stored on the alert) or raises the outbox's
RetryLater (network error, 5xx, 429 with Retry-After) or PermanentFailure (anything another
attempt cannot fix, such as Slack's `channel_not_found`). `deliver` is the one function that
sends an alert, with bounded retries.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.config import Settings
from bot.outbox import PermanentFailure, RetryLater
from bot.render import slack as slack_render
from bot.render.plain import printable

# httpx is imported where a client is built, so that a server that sends no alert does not
# load it (with the click, rich and pygments packages that httpx 0.29 imports).
if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "error", "critical")
SIGNATURE_HEADER = "X-Release-Bot-Signature"
HTTP_TIMEOUT_SECONDS = 10.0
SMTP_TIMEOUT_SECONDS = 15.0
# Slack Web API errors that a later attempt can succeed past (chat.postMessage's error list).
SLACK_TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
SEVERITY_ICONS = {
    "info": ":information_source:",
    "warning": ":warning:",
    "error": ":x:",
    "critical": ":rotating_light:",
}


class AlertChannel(str, enum.Enum):
    """Destination kind of an alert."""

    SLACK = "slack"
    WEBHOOK = "webhook"
    EMAIL = "email"
    CONSOLE = "console"


@dataclass(frozen=True)
class AlertMessage:
    """The content of one alert, as every sender receives it."""

    alert_id: int
    title: str
    message: str
    severity: str
    created_at: datetime


def check_http_url(value: object, field: str) -> str:
    """Return an http(s) URL with a host, or raise ValueError naming the field."""
    if not isinstance(value, str):
        raise ValueError(f"invalid {field} {value!r}: expected an http:// or https:// URL")
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid {field} {value!r}: expected an http:// or https:// URL")
    return value


def check_keys(config: Mapping[str, Any], allowed: set[str], channel: AlertChannel) -> None:
    """Raise ValueError naming the first key the channel does not use."""
    for key in config:
        if key not in allowed:
            raise ValueError(
                f"unknown {channel.value} setting {key!r}: use {', '.join(sorted(allowed))}"
            )


def check_config(
    channel: AlertChannel, config: Mapping[str, Any], settings: Settings
) -> dict[str, Any]:
    """Return a channel's configuration with defaults filled in, or raise ValueError naming the field."""
    if not isinstance(config, Mapping):
        raise ValueError(f"invalid {channel.value} configuration {config!r}: expected a dict")
    if channel == AlertChannel.SLACK:
        check_keys(config, {"webhook", "channel"}, channel)
        if "webhook" in config and "channel" in config:
            raise ValueError(
                "invalid slack configuration: give either 'webhook' or 'channel', not both"
            )
        if "webhook" in config:
            return {"webhook": check_http_url(config["webhook"], "slack webhook")}
        channel_id = config.get("channel")
        if not isinstance(channel_id, str) or not channel_id.strip():
            raise ValueError(
                "missing slack 'channel': give a channel id such as 'C0123ABCD', or a 'webhook' URL"
            )
        if settings.slack_bot_token is None:
            raise ValueError(
                "slack 'channel' needs a bot token: set SLACK_BOT_TOKEN, or give a 'webhook' URL instead"
            )
        return {"channel": channel_id.strip()}
    if channel == AlertChannel.WEBHOOK:
        check_keys(config, {"url", "secret"}, channel)
        url = check_http_url(config.get("url"), "webhook url")
        secret = config.get("secret")
        if not isinstance(secret, str) or not secret:
            raise ValueError(
                "missing webhook 'secret': give the shared secret the receiver checks signatures with"
            )
        return {"url": url, "secret": secret}
    if channel == AlertChannel.EMAIL:
        return check_email_config(config, settings)
    check_keys(config, {"stream"}, channel)
    stream = config.get("stream", "stdout")
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"invalid console stream {stream!r}: use 'stdout' or 'stderr'")
    return {"stream": stream}


def check_email_config(config: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """Return the EMAIL channel's configuration, falling back to the SMTP_* settings."""
    check_keys(
        config,
        {"to", "from", "host", "port", "username", "starttls", "ca_file"},
        AlertChannel.EMAIL,
    )
    recipients = config.get("to")
    if isinstance(recipients, str):
        recipients = [recipients]
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(address, str) and "@" in address for address in recipients)
    ):
        raise ValueError(
            f"invalid email 'to' {config.get('to')!r}: expected an address or a list of addresses"
        )

    sender = config.get("from", settings.smtp_from)
    if not isinstance(sender, str) or "@" not in sender:
        raise ValueError(f"invalid email 'from' {sender!r}: give an address, or set SMTP_FROM")
    host = config.get("host", settings.smtp_host)
    if not isinstance(host, str) or not host:
        raise ValueError("missing email 'host': give the SMTP server's host name, or set SMTP_HOST")
    port = config.get("port", settings.smtp_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(
            f"invalid email 'port' {port!r}: use a TCP port from 1 to 65535, usually 587"
        )

    starttls = config.get("starttls", settings.smtp_starttls)
    if not isinstance(starttls, bool):
        raise ValueError(f"invalid email 'starttls' {starttls!r}: expected True or False")
    username = config.get("username", settings.smtp_username)
    if username is not None and not isinstance(username, str):
        raise ValueError(f"invalid email 'username' {username!r}: expected a string")
    ca_file = config.get("ca_file")
    if ca_file is not None and not isinstance(ca_file, str):
        raise ValueError(f"invalid email 'ca_file' {ca_file!r}: expected the path of a PEM file")

    return {
        "to": recipients,
        "from": sender,
        "host": host,
        "port": port,
        "starttls": starttls,
        "username": username,
        "ca_file": ca_file,
    }


def describe_target(channel: AlertChannel, config: Mapping[str, Any]) -> str:
    """Return where a channel sends, for the alert's record; never a secret or a webhook path."""
    if channel == AlertChannel.SLACK:
        if "channel" in config:
            return f"slack channel {config['channel']}"
        return f"slack webhook at {urlsplit(config['webhook']).hostname}"
    if channel == AlertChannel.WEBHOOK:
        parts = urlsplit(config["url"])
        return f"{parts.scheme}://{parts.netloc}{parts.path}"
    if channel == AlertChannel.EMAIL:
        return ", ".join(config["to"])
    return config["stream"]


def slack_payload(alert: AlertMessage) -> dict[str, Any]:
    """Build the Slack message: escaped mrkdwn within Block Kit's limits, plus fallback text."""
    icon = SEVERITY_ICONS[alert.severity]
    heading = f"{icon} *{slack_render.inline(alert.title)}* ({alert.severity})"
    body = slack_render.escape(alert.message)
    return {
        "text": slack_render.cut_plain(
            f"[{alert.severity}] {alert.title}: {alert.message}", slack_render.MAX_FALLBACK_TEXT
        ),
        "blocks": [
            {"type": "section", "text": slack_render.mrkdwn(heading)},
            {"type": "section", "text": slack_render.mrkdwn(body or " ")},
        ],
    }


def retry_after(response: httpx.Response) -> float | None:
    """Return a Retry-After header's seconds, or None if absent or not a number of seconds."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def raise_for_http(response: httpx.Response, where: str) -> None:
    """Raise RetryLater for 408, 429 and 5xx responses and PermanentFailure for other non-2xx ones."""
    if response.is_success:
        return
    body = response.text.strip()[:200]
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise RetryLater(
            f"{where} returned HTTP {response.status_code}: {body}",
            retry_after=retry_after(response),
        )
    raise PermanentFailure(
        f"{where} returned HTTP {response.status_code}: {body}",
        code=body or str(response.status_code),
    )


def post(client: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    """POST, turning connection errors and timeouts into RetryLater."""
    import httpx

    try:
        return client.post(url, **kwargs)
    except httpx.TransportError as exc:
        raise RetryLater(
            f"request to {urlsplit(url).netloc} failed: {exc.__class__.__name__}: {exc}"
        ) from exc


def send_slack(
    alert: AlertMessage, config: Mapping[str, Any], settings: Settings, client: httpx.Client
) -> dict[str, Any]:
    """Post the alert with chat.postMessage and the bot token, or to an incoming webhook."""
    payload = slack_payload(alert)
    if "webhook" in config:
        # Incoming webhooks report errors with HTTP status codes and a short text body.
        response = post(client, config["webhook"], json=payload)
        raise_for_http(response, "the Slack webhook")
        return {"response": response.text.strip()[:100]}

    token = settings.slack_bot_token.get_secret_value()  # type: ignore[union-attr]
    url = settings.slack_api_url.rstrip("/") + "/chat.postMessage"
    response = post(
        client,
        url,
        json={"channel": config["channel"], **payload},
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
        },
    )
    raise_for_http(response, "Slack chat.postMessage")
    # The Web API reports errors with HTTP 200 and {"ok": false, "error": ...}.
    try:
        result = response.json()
    except ValueError as exc:
        raise RetryLater(
            f"Slack chat.postMessage returned non-JSON: {response.text[:100]!r}"
        ) from exc
    if not result.get("ok"):
        error = str(result.get("error") or "unknown_error")
        if error in SLACK_TRANSIENT_ERRORS:
            raise RetryLater(
                f"Slack chat.postMessage failed: {error}", retry_after=retry_after(response)
            )
        raise PermanentFailure(f"Slack chat.postMessage failed: {error}", code=error)
    return {"channel": result.get("channel"), "ts": result.get("ts")}


def webhook_body(alert: AlertMessage) -> bytes:
    """Return the JSON body posted to a WEBHOOK channel."""
    return json.dumps(
        {
            "type": "alert",
            "id": alert.alert_id,
            "title": alert.title,
            "message": alert.message,
            "severity": alert.severity,
            "created_at": alert.created_at.isoformat().replace("+00:00", "Z"),
        },
        separators=(",", ":"),
    ).encode()


def sign_body(body: bytes, secret: str) -> str:
    """Return the signature header value: `sha256=` and the HMAC-SHA256 of the body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(
    alert: AlertMessage, config: Mapping[str, Any], settings: Settings, client: httpx.Client
) -> dict[str, Any]:
    """POST the alert as signed JSON."""
    body = webhook_body(alert)
    response = post(
        client,
        config["url"],
        content=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "release-bot",
            SIGNATURE_HEADER: sign_body(body, config["secret"]),
        },
    )
    raise_for_http(response, "the webhook")
    return {"status": response.status_code}


def send_email(
    alert: AlertMessage, config: Mapping[str, Any], settings: Settings, client: httpx.Client
) -> dict[str, Any]:
    """Send the alert by SMTP, upgrading the connection with STARTTLS unless turned off."""
    email = EmailMessage()
    email["Subject"] = f"[{alert.severity}] {' '.join(alert.title.splitlines())}"
    email["From"] = config["from"]
    email["To"] = ", ".join(config["to"])
    email.set_content(alert.message or alert.title)
    try:
        with smtplib.SMTP(config["host"], config["port"], timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            smtp.ehlo()
            if config["starttls"]:
                smtp.starttls(context=ssl.create_default_context(cafile=config["ca_file"]))
                smtp.ehlo()
            if config["username"]:
                if settings.smtp_password is None:
                    raise PermanentFailure("SMTP login needs a password: set SMTP_PASSWORD")
                smtp.login(config["username"], settings.smtp_password.get_secret_value())
            refused = smtp.send_message(email)
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentFailure(
            f"the SMTP server does not support STARTTLS or login: {exc}"
        ) from exc
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        message = f"SMTP server replied {exc.smtp_code}: {text}"
        if 400 <= exc.smtp_code < 500:
            raise RetryLater(message) from exc
        raise PermanentFailure(message, code=str(exc.smtp_code)) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise PermanentFailure(
            f"SMTP server rejected every recipient: {', '.join(exc.recipients)}"
        ) from exc
    except ssl.SSLError as exc:
        raise PermanentFailure(
            f"STARTTLS failed: {exc}; check the server's certificate or set 'ca_file'"
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise RetryLater(
            f"SMTP delivery to {config['host']}:{config['port']} failed: {exc}"
        ) from exc
    return {"refused": sorted(refused)}


def send_console(
    alert: AlertMessage, config: Mapping[str, Any], settings: Settings, client: httpx.Client
) -> dict[str, Any]:
    """Print the alert; control characters are shown as escapes."""
    stream = sys.stdout if config["stream"] == "stdout" else sys.stderr
    print(
        f"[{alert.severity.upper()}] {printable(alert.title)}: {printable(alert.message)}",
        file=stream,
        flush=True,
    )
    return {}


Sender = Callable[[AlertMessage, Mapping[str, Any], Settings, "httpx.Client"], dict[str, Any]]
SENDERS: dict[AlertChannel, Sender] = {
    AlertChannel.SLACK: send_slack,
    AlertChannel.WEBHOOK: send_webhook,
    AlertChannel.EMAIL: send_email,
    AlertChannel.CONSOLE: send_console,
}


@dataclass
class Outcome:
    """Outcome of delivering one alert."""

    sent: bool
    attempts: int
    error: str | None = None
    response: dict[str, Any] | None = None
