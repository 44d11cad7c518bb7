"""A fake of the GitHub REST API for githubkit's httpx.MockTransport.

It checks the App authentication as GitHub does (the JWT's RS256 signature against the App's
public key and its issuer, then the installation token on every other call), keeps issue
comments, and serves the few routes the bot uses. Any other request is recorded in
`unplanned` and gets a 501 response, and the fixture then fails the test.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt

API_PREFIX = "/api/v3"
ROUTES = {
    "token": re.compile(r"^/app/installations/(\d+)/access_tokens$"),
    "comments": re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$"),
    "comment": re.compile(r"^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$"),
    "pulls": re.compile(r"^/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)/pulls$"),
    "contents": re.compile(r"^/repos/([^/]+/[^/]+)/contents/(.+)$"),
}


@dataclass
class Call:
    """One request the fake received."""

    method: str
    route: str
    path: str
    body: Any


@dataclass
class FakeGitHub:
    """GitHub's REST API as far as release-bot uses it."""

    app_id: int
    public_key: str
    token_lifetime: timedelta = timedelta(hours=1)
    # Installation id -> (status, message) of a refused token request.
    rejected_installations: dict[int, tuple[int, str]] = field(default_factory=dict)
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    pulls_by_commit: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[tuple[str, str], str] = field(default_factory=dict)
    rate_headers: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    unplanned: list[str] = field(default_factory=list)
    # Planned responses by route, used before the normal behaviour, first in first out.
    planned: dict[str, list[httpx.Response]] = field(default_factory=dict)
    # Called before a route is served, to hold a request (for concurrency tests).
    before: dict[str, Callable[[], None]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    next_comment_id: int = 9000
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def plan(self, route: str, *responses: httpx.Response) -> None:
        """Return these responses, in order, to the next requests to a route."""
        self.planned.setdefault(route, []).extend(responses)

    def count(self, route: str, method: str | None = None) -> int:
        """Return how many requests a route received."""
        return sum(1 for call in self.calls if call.route == route and (method is None or call.method == method))

    def comments_on(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Return the comments of an issue or pull request."""
        return self.comments.get((repo, number), [])

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith(API_PREFIX + "/"):
            return self.reject(request, "outside the API prefix")
        path = path.removeprefix(API_PREFIX)
        for route, pattern in ROUTES.items():
            match = pattern.match(path)
            if match:
                break
        else:
            return self.reject(request, "no such route")
        body = json.loads(request.content) if request.content else None
        with self.lock:
            self.calls.append(Call(request.method, route, path, body))
        hook = self.before.get(route)
        if hook is not None:
            hook()

        if route == "token":
            failure = self.check_jwt(request, int(match.group(1)))
        else:
            failure = self.check_token(request)
        if failure is not None:
            return failure
        with self.lock:
            queued = self.planned.get(route)
            if queued:
                return queued.pop(0)
        return getattr(self, f"serve_{route}")(request, match, body)

    def reject(self, request: httpx.Request, why: str) -> httpx.Response:
        with self.lock:
            self.unplanned.append(f"{request.method} {request.url} ({why})")
        return httpx.Response(501, json={"message": f"unplanned request: {why}"})

    def check_jwt(self, request: httpx.Request, installation_id: int) -> httpx.Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["RS256"])
        except jwt.PyJWTError as exc:
            return self.reject(request, f"invalid App JWT: {exc}")
        if scheme != "Bearer" or claims.get("iss") != str(self.app_id):
            return self.reject(request, f"JWT with scheme {scheme!r} and issuer {claims.get('iss')!r}")
        return None

    def check_token(self, request: httpx.Request) -> httpx.Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "token" or token not in self.tokens:
            return self.reject(request, "no installation token")
        return None

    def answer(self, status: int, body: Any) -> httpx.Response:
        return httpx.Response(status, json=body, headers=self.rate_headers)

    def serve_token(self, request: httpx.Request, match: re.Match[str], body: Any) -> httpx.Response:
        installation_id = int(match.group(1))
        if installation_id in self.rejected_installations:
            status, message = self.rejected_installations[installation_id]
            return httpx.Response(status, json={"message": message})
        with self.lock:
            token = f"ghs_test_{installation_id}_{len(self.tokens)}"
            self.tokens.add(token)
        expires = (datetime.now(UTC) + self.token_lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
        return httpx.Response(201, json={"token": token, "expires_at": expires, "permissions": {}})

    def serve_comments(self, request: httpx.Request, match: re.Match[str], body: Any) -> httpx.Response:
        key = (match.group(1), int(match.group(2)))
        if request.method == "GET":
            page = int(request.url.params.get("page", "1"))
            per_page = int(request.url.params.get("per_page", "30"))
            items = self.comments_on(*key)[(page - 1) * per_page : page * per_page]
            return self.answer(200, items)
        if request.method != "POST":
            return self.reject(request, "method not allowed")
        with self.lock:
            self.next_comment_id += 1
            comment = {"id": self.next_comment_id, "body": body["body"], "user": {"login": "release-bot[bot]", "type": "Bot"}}
            self.comments.setdefault(key, []).append(comment)
        return self.answer(201, comment)

    def serve_comment(self, request: httpx.Request, match: re.Match[str], body: Any) -> httpx.Response:
        comment_id = int(match.group(2))
        if request.method != "PATCH":
            return self.reject(request, "method not allowed")
        for (repo, _number), items in self.comments.items():
            for comment in items:
                if repo == match.group(1) and comment["id"] == comment_id:
                    comment["body"] = body["body"]
                    return self.answer(200, comment)
        return self.answer(404, {"message": "Not Found"})

    def serve_pulls(self, request: httpx.Request, match: re.Match[str], body: Any) -> httpx.Response:
        return self.answer(200, self.pulls_by_commit.get((match.group(1), match.group(2)), []))

    def serve_contents(self, request: httpx.Request, match: re.Match[str], body: Any) -> httpx.Response:
        text = self.files.get((match.group(1), match.group(2)))
        if text is None:
            return self.answer(404, {"message": "Not Found"})
        encoded = base64.b64encode(text.encode()).decode()
        return self.answer(
            200,
            {"type": "file", "encoding": "base64", "content": encoded, "sha": f"blob{len(text)}",
             "size": len(text), "path": match.group(2), "name": match.group(2).rsplit("/", 1)[-1]},
        )
