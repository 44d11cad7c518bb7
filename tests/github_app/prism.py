"""GitHub's REST API description (`@octokit/openapi`) served by a Prism mock on 127.0.0.1.

Prism 5.14.2 runs on Node 20 (5.15 and later need Node 24). The full description takes
Prism about 17 s to load, so it is trimmed to the operations the bot calls (about 4 s),
and each JSON response is also offered as `application/vnd.github+json`, the media type
githubkit requests; without it Prism returns 406. Both timings were measured on the
2-core development machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

NPM_DIR = Path(__file__).parent / "npm"
DESCRIPTION = NPM_DIR / "node_modules/@octokit/openapi/generated/api.github.com.json"
PRISM = NPM_DIR / "node_modules/@stoplight/prism-cli/dist/index.js"
NPM_TIMEOUT_SECONDS = 300
START_TIMEOUT_SECONDS = 120
GITHUB_MEDIA_TYPE = "application/vnd.github+json"

# Every (path, method) release-bot calls on GitHub.
OPERATIONS = (
    ("/app/installations/{installation_id}/access_tokens", "post"),
    ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "get"),
    ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post"),
    ("/repos/{owner}/{repo}/issues/comments/{comment_id}", "patch"),
    ("/repos/{owner}/{repo}/commits/{commit_sha}/pulls", "get"),
    ("/repos/{owner}/{repo}/contents/{path}", "get"),
    ("/repos/{owner}/{repo}/installation", "get"),
    ("/repos/{owner}/{repo}/actions/runs", "get"),
    ("/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}", "get"),
    ("/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}/jobs", "get"),
)

MULTI_SEGMENT_PATHS = {"/repos/{owner}/{repo}/contents/{path}": "/repos/{owner}/{repo}/contents/.github/{path}"}


class PrismUnavailable(Exception):
    """Node.js, npm or the npm packages are missing, or Prism did not start."""


def install_packages() -> None:
    """Run `npm ci` in tests/github_app/npm unless Prism and the description are installed."""
    if DESCRIPTION.is_file() and PRISM.is_file():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise PrismUnavailable("node and npm are not on PATH: install Node.js 20 and npm to run the contract tests")
    command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    result = subprocess.run(  # noqa: PLW1510 - the exit status is checked below, with the output
        command, cwd=NPM_DIR, capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS,
        env={**os.environ, "npm_config_update_notifier": "false"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"`npm ci` in {NPM_DIR} failed with exit status {result.returncode}:\n{result.stdout}\n{result.stderr}")


def collect_refs(node: Any, found: set[str]) -> None:
    """Add every `$ref` target under a node to `found`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            found.add(ref)
        for value in node.values():
            collect_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            collect_refs(value, found)


def add_github_media_type(node: Any) -> None:
    """Offer each `application/json` body also as `application/vnd.github+json`, listed first."""
    if isinstance(node, dict):
        content = node.get("content")
        if isinstance(content, dict) and "application/json" in content and GITHUB_MEDIA_TYPE not in content:
            node["content"] = {GITHUB_MEDIA_TYPE: content["application/json"], **content}
        for value in node.values():
            add_github_media_type(value)
    elif isinstance(node, list):
        for value in node:
            add_github_media_type(value)


def trim_description(description: dict[str, Any]) -> dict[str, Any]:
    """Keep only OPERATIONS and the components they reference."""
    paths: dict[str, Any] = {}
    for path, method in OPERATIONS:
        item = description["paths"][path]
        kept = paths.setdefault(path, {key: value for key, value in item.items() if key == "parameters"})
        kept[method] = item[method]

    components: dict[str, dict[str, Any]] = {}
    pending: set[str] = set()
    collect_refs(paths, pending)
    done: set[str] = set()
    while pending:
        ref = pending.pop()
        done.add(ref)
        _, _, section, name = ref.split("/", 3)
        target = description["components"][section][name]
        components.setdefault(section, {})[name] = target
        found: set[str] = set()
        collect_refs(target, found)
        pending |= found - done

    # Prism 5.14 ignores `x-multi-segment`, so `{path}` never matches `.github/release-bot.yml`;
    # the same operation is also served under the one directory the bot reads from.
    for path, prefixed in MULTI_SEGMENT_PATHS.items():
        paths[prefixed] = paths[path]

    # The `created` filter of the run list takes GitHub's search syntax for dates (such as
    # `>=2024-06-01`), as the parameter's own description states, but its schema declares `date-time`,
    # so Prism would reject every real query.
    created = components.get("parameters", {}).get("created")
    if created is not None:
        components["parameters"]["created"] = {**created, "schema": {"type": "string"}}

    trimmed = {key: description[key] for key in ("openapi", "info", "servers")}
    trimmed["paths"] = paths
    trimmed["components"] = components
    add_github_media_type(trimmed)
    return trimmed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrismServer:
    """A running Prism mock; `url` is its base URL."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_prism(workdir: Path) -> PrismServer:
    """Write the trimmed description into `workdir` and serve it with Prism on 127.0.0.1."""
    node = shutil.which("node")
    if node is None:
        raise PrismUnavailable("node is not on PATH: install Node.js 20 to run the contract tests")
    description = json.loads(DESCRIPTION.read_text(encoding="utf-8"))
    spec = workdir / "github-trimmed.json"
    spec.write_text(json.dumps(trimmed := trim_description(description)), encoding="utf-8")
    assert trimmed["paths"]
    port = free_port()
    log = workdir / "prism.log"
    process = subprocess.Popen(
        [node, str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
    )
    server = PrismServer(process=process, url=f"http://127.0.0.1:{port}", log=log)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Prism exited with status {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(server.url + "/", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"Prism did not listen within {START_TIMEOUT_SECONDS} s:\n{log.read_text()}")
