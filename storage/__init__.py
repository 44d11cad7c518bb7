"""Database layer of release-bot: engine setup, SQLModel models, query functions and migrations."""
