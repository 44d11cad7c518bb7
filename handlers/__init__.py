"""Handlers: webhook event handlers (`handlers.github`), and Slack commands and reactions
(`handlers.slack`)."""
