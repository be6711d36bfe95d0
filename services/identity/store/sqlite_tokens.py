"""Identity's SQLite adapter, signed-out staff tokens: the ids of revoked tokens until they would have expired
anyway (a private mixin of the adapter)."""

from __future__ import annotations

TOKENS_SQL = """
CREATE TABLE IF NOT EXISTS revoked_tokens (
  token_id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, revoked_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS revoked_tokens_expiry ON revoked_tokens(expires_at);
"""


class SqliteTokens:
    """Mixed into the sqlite adapter; uses the adapter's database."""

    def revoke_token(self, token_id: str, *, expires_at: int, at: str, now: int) -> None:
        """Keep ``token_id`` as signed out (again: no change), and forget ids whose tokens expired by ``now``."""
        c = self.db.conn()
        c.execute("INSERT OR IGNORE INTO revoked_tokens (token_id, expires_at, revoked_at) VALUES (?, ?, ?)",
                  (token_id, expires_at, at))
        c.execute("DELETE FROM revoked_tokens WHERE expires_at <= ?", (now,))

    def token_revoked(self, token_id: str) -> bool:
        """Whether ``token_id`` was signed out."""
        q = "SELECT 1 FROM revoked_tokens WHERE token_id = ?"
        return self.db.conn().execute(q, (token_id,)).fetchone() is not None

    def revoked_tokens(self, *, now: int) -> list[tuple[str, int]]:
        """The signed-out ids whose tokens are still unexpired at ``now``, with their expiry, by id."""
        q = "SELECT token_id, expires_at FROM revoked_tokens WHERE expires_at > ? ORDER BY token_id"
        return [(t, int(e)) for t, e in self.db.conn().execute(q, (now,))]
