"""Storage bases every store adapter builds on: SQLite and MongoDB, outbox tables, shared fact tables."""
