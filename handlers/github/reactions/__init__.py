"""Reactions: what a processed webhook makes happen next, recorded as outbox messages in the
same transaction as its facts (never a network call)."""
