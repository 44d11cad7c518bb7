"""Escaping of user-controlled text in alerts: a branch and a commit title with `->`, `<!channel>`,
`<!here>`, `<@U…>` and `&` show literally and mention no one, while the bot's own links stay intact."""

from __future__ import annotations

import re
from typing import Any

from tests.alerts import payloads
from tests.alerts.conftest import AlertDriver, blocks_of, mrkdwn_texts

BRANCH = "fix-->-parser/<!channel>&co"
WORKFLOW = "CI <prod> & docs"
TITLE = "rename a -> b <!here> & ping <@U0USER0002>"
MESSAGE = TITLE + "\n\nbody line with *bold* and <https://evil.example.com|click>"


def injection_run() -> dict[str, Any]:
    payload = payloads.run(
        30021,
        name=WORKFLOW,
        branch=BRANCH,
        title=TITLE,
        run_number=100,
        sha="2121212121212121212121212121212121212121",
        started="2024-06-03T23:00:00Z",
        updated="2024-06-03T23:05:12Z",
    )
    payload["workflow"]["name"] = WORKFLOW
    payload["workflow_run"]["head_commit"]["message"] = MESSAGE
    return payload


def plain_texts(message: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "plain_text":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks_of(message))
    return found


def test_injection_escaped_in_alert(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", injection_run())
    alerts.settle()

    posts = alerts.fake.posts()
    assert len(posts) == 1
    texts = mrkdwn_texts(posts[0])
    joined = "\n".join(texts)
    assert "fix--&gt;-parser/&lt;!channel&gt;&amp;co" in joined
    assert "CI &lt;prod&gt; &amp; docs" in joined
    assert "rename a -&gt; b &lt;!here&gt; &amp; ping &lt;@U0USER0002&gt;" in joined
    assert (
        "<https://github.com/octo-org/widget/actions/runs/30021|CI &lt;prod&gt; &amp; docs #100>"
        in joined
    )
    assert (
        "<https://github.com/octo-org/widget/tree/fix--%3E-parser/%3C%21channel%3E%26co|fix--&gt;-parser/&lt;!channel&gt;&amp;co>"
        in joined
    )
    assert "evil.example.com" not in joined


def test_injection_mentions_nobody(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", injection_run())
    alerts.settle()

    for text in mrkdwn_texts(alerts.fake.posts()[0]):
        # Every `<` left unescaped opens one of the bot's own links, never `<!…>` or `<@…>`.
        for construct in re.findall(r"<[^>]*>", text):
            assert construct.startswith("<https://github.com/"), construct
        assert "<!" not in text
        assert "<@" not in text


def test_plain_text_not_escaped_twice(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", injection_run())
    alerts.settle()
    plain = plain_texts(alerts.fake.posts()[0])
    assert ":x: CI <prod> & docs failed in octo-org/widget" in plain
    assert not any("&amp;" in text or "&lt;" in text for text in plain)


def test_injection_escaped_in_thread_reply(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", injection_run())
    second = injection_run()
    second["workflow_run"]["id"] = 30022
    second["workflow_run"]["html_url"] = "https://github.com/octo-org/widget/actions/runs/30022"
    alerts.bot.send("workflow_run", second)
    alerts.settle()

    [reply] = alerts.fake.replies()
    joined = "\n".join(mrkdwn_texts(reply))
    assert "fix--&gt;-parser/&lt;!channel&gt;&amp;co" in joined
    assert "rename a -&gt; b &lt;!here&gt; &amp; ping &lt;@U0USER0002&gt;" in joined
    assert "<!" not in joined
    assert "<@" not in joined
