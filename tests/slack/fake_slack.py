"""A local fake of the Slack Web API and of response_url, for tests.

It listens on 127.0.0.1 in a thread and responds like Slack: `{"ok": false, "error": ...}`
for bad tokens, unknown channels or invalid blocks, HTTP 429 with Retry-After when a test
plans it, and plain `ok` on response_url. Every message is validated with slack_sdk's block
models and with Slack's size rules (50 blocks per message, 100 per view, 3,000 characters of
section text, 10 fields of 2,000, 150 of header text, 4,000 of fallback text, about 13,000
of block text in all) and rejected with `invalid_blocks`, `msg_too_long` or
`msg_blocks_too_long` if it breaks one. Every call is recorded.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from bot.render.slack import text_size

BOT_TOKEN = "xoxb-test-token"
TEAM_ID = "T0TEAM0001"
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 4000
# Slack has been seen to reject a message whose blocks hold a little over 13,000 characters.
MAX_BLOCK_TEXT = 13_000


@dataclass
class Call:
    """One request the fake received."""

    method: str
    body: dict[str, Any]
    token: str | None
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlannedFailure:
    """A failure the fake returns for the next call of a method instead of the normal response."""

    method: str
    error: str | None = None
    status: int = 200
    retry_after: int | None = None


def block_problems(blocks: list[dict[str, Any]], max_blocks: int) -> list[str]:
    """Return why Slack would reject these blocks; empty if it would accept them."""
    problems = []
    if len(blocks) > max_blocks:
        problems.append(f"{len(blocks)} blocks, more than {max_blocks}")
    for index, raw in enumerate(blocks):
        try:
            block = Block.parse(raw)
            if block is None:
                problems.append(f"block {index}: unknown type {raw.get('type')!r}")
                continue
            block.validate_json()
        except (SlackObjectFormationError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"block {index}: {exc}")
        kind = raw.get("type")
        if kind == "section":
            text = (raw.get("text") or {}).get("text", "")
            if len(text) > 3000:
                problems.append(f"block {index}: section text of {len(text)} characters")
            fields = raw.get("fields") or []
            if len(fields) > 10:
                problems.append(f"block {index}: {len(fields)} fields")
            for field_index, item in enumerate(fields):
                if len(item.get("text", "")) > 2000:
                    problems.append(
                        f"block {index}: field {field_index} of {len(item['text'])} characters"
                    )
        if kind == "header" and len((raw.get("text") or {}).get("text", "")) > 150:
            problems.append(f"block {index}: header text over 150 characters")
        if kind == "context" and len(raw.get("elements") or []) > 10:
            problems.append(f"block {index}: more than 10 context elements")
    return problems


class FakeSlack:
    """The fake server: start it, point SLACK_API_URL at `api_url`, read `calls` and `responses`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.responses: list[dict[str, Any]] = []
        self.rejected: list[tuple[str, list[str]]] = []
        self.channels: list[dict[str, Any]] = [
            {"id": "C0ALERTS01", "name": "ci-alerts"},
            {"id": "C0OTHER001", "name": "random"},
        ]
        # Channels whose posts fail with this error code, as Slack returns for them.
        self.channel_errors: dict[str, str] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.tokens = {BOT_TOKEN}
        self.planned: deque[PlannedFailure] = deque()
        self._lock = threading.Condition()
        self._ts = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-slack", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "command") -> str:
        """A response_url that records what is posted to it."""
        return f"{self.url}/response/{name}"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def plan_failure(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
    ) -> None:
        """Make the next call of `method` fail (an `ok: false` error, or an HTTP status such as 429)."""
        with self._lock:
            self.planned.append(
                PlannedFailure(method=method, error=error, status=status, retry_after=retry_after)
            )

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> bool:
        """Wait until `predicate()` holds, checking after every request; return whether it did."""
        with self._lock:
            return self._lock.wait_for(predicate, timeout=timeout)

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def next_ts(self) -> str:
        self._ts += 1
        return f"1717400000.{self._ts:06d}"

    def answer(
        self, method: str, body: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Return the HTTP status, JSON body and headers for one Web API call."""
        for planned in list(self.planned):
            if planned.method == method:
                self.planned.remove(planned)
                headers = (
                    {"Retry-After": str(planned.retry_after)}
                    if planned.retry_after is not None
                    else {}
                )
                error = planned.error or ("ratelimited" if planned.status == 429 else "fatal_error")
                return planned.status, {"ok": False, "error": error}, headers
        if method == "oauth.v2.access":
            return 200, self.oauth_answer(body), {}
        if token not in self.tokens:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if method == "auth.test":
            return (
                200,
                {
                    "ok": True,
                    "team_id": TEAM_ID,
                    "user_id": "U0BOT00001",
                    "bot_id": "B0BOT00001",
                    "team": "Example",
                },
                {},
            )
        if method == "conversations.list":
            return (
                200,
                {"ok": True, "channels": self.channels, "response_metadata": {"next_cursor": ""}},
                {},
            )
        if method == "views.publish":
            view = body.get("view") or {}
            if isinstance(view, str):
                view = json.loads(view)
            problems = block_problems(view.get("blocks") or [], MAX_VIEW_BLOCKS)
            if problems:
                self.rejected.append((method, problems))
                return 200, {"ok": False, "error": "invalid_blocks", "errors": problems}, {}
            return 200, {"ok": True, "view": view}, {}
        if method in ("chat.postMessage", "chat.update"):
            return self.message_answer(method, body)
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def message_answer(
        self, method: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        channel = str(body.get("channel", ""))
        if channel in self.channel_errors:
            return 200, {"ok": False, "error": self.channel_errors[channel]}, {}
        if channel not in {item["id"] for item in self.channels}:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        problems = self.message_problems(body)
        if problems:
            error = "invalid_blocks"
            if any("fallback" in problem for problem in problems):
                error = "msg_too_long"
            elif any("characters, more than" in problem for problem in problems):
                error = "msg_blocks_too_long"
            self.rejected.append((method, problems))
            return 200, {"ok": False, "error": error, "errors": problems}, {}
        if method == "chat.update":
            key = (channel, str(body.get("ts")))
            if key not in self.messages:
                return 200, {"ok": False, "error": "message_not_found"}, {}
            self.messages[key] = body
            return 200, {"ok": True, "channel": channel, "ts": key[1]}, {}
        ts = self.next_ts()
        self.messages[(channel, ts)] = body
        return (
            200,
            {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text")}},
            {},
        )

    def message_problems(self, body: dict[str, Any]) -> list[str]:
        blocks = body.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        problems = block_problems(blocks, MAX_MESSAGE_BLOCKS)
        if len(str(body.get("text") or "")) > MAX_TEXT:
            problems.append("fallback text over 4000 characters")
        if text_size(blocks) > MAX_BLOCK_TEXT:
            problems.append(
                f"blocks hold {text_size(blocks)} characters, more than {MAX_BLOCK_TEXT}"
            )
        return problems

    def oauth_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        token = "xoxb-installed-" + str(body.get("code", "none"))
        self.tokens.add(token)
        return {
            "ok": True,
            "app_id": "A0APP00001",
            "authed_user": {"id": "U0USER0001"},
            "scope": "commands,chat:write",
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": "U0BOT00001",
            "team": {"id": "T0TEAM0002", "name": "Second"},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def read_body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                query = parse_qs(urlsplit(self.path).query)
                if self.headers.get("Content-Type", "").startswith("application/json") and raw:
                    return json.loads(raw)
                merged = {key: values[0] for key, values in query.items()}
                merged.update({key: values[0] for key, values in parse_qs(raw).items()})
                return merged

            def send(
                self,
                status: int,
                payload: dict[str, Any] | str,
                headers: dict[str, str] | None = None,
            ) -> None:
                data = (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
                self.send_response(status)
                self.send_header(
                    "Content-Type", "text/plain" if isinstance(payload, str) else "application/json"
                )
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self) -> None:
                path = urlsplit(self.path).path
                body = self.read_body()
                authorization = self.headers.get("Authorization", "")
                token = (
                    authorization.removeprefix("Bearer ")
                    if authorization.startswith("Bearer ")
                    else body.get("token")
                )
                with fake._lock:
                    if path.startswith("/response/"):
                        problems = fake.message_problems(body)
                        call = Call(
                            method="response_url",
                            body=body,
                            token=None,
                            status=400 if problems else 200,
                        )
                        fake.calls.append(call)
                        if problems:
                            fake.rejected.append(("response_url", problems))
                        else:
                            fake.responses.append(body)
                        fake._lock.notify_all()
                        self.send(call.status, "invalid_blocks" if problems else "ok")
                        return
                    method = path.removeprefix("/api/")
                    status, answer, headers = fake.answer(method, body, token)
                    fake.calls.append(
                        Call(method=method, body=body, token=token, status=status, answer=answer)
                    )
                    fake._lock.notify_all()
                self.send(status, answer, headers)

            do_POST = handle_any
            do_GET = handle_any

        return Handler
