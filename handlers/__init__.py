"""Handlers: webhook event handlers (`handlers.github`) and, later, Slack command handlers."""
