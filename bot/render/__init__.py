"""Rendering of text people read; `bot.render.slack` is the one place Slack text is escaped and sized."""
