"""Outbox and dead-letter persistence shared by every service's store adapters.

A message written to the outbox commits with the state change it announces; the relay
publishes it and deletes it, so a crash between the two republishes rather than loses it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from json.encoder import encode_basestring_ascii as _quoted
from pathlib import Path
from typing import Protocol

from shared.storage.base import (
    OUTBOX_SQL,
    DeadLetter,
    MongoDb,
    OutboxMessage,
    SqliteDb,
    chunks,
    in_placeholders,
    insert_rows,
)
from shared.storage.crypto import SERVICE, KeyRing, mongo_keyring, sqlite_keyring

log = logging.getLogger(__name__)


def _h_dump(headers: list[tuple[str, bytes]]) -> str:
    # ``json.dumps([[k, v.decode("latin-1")], ...])`` written out: the same text, without an encoder per
    # message (every outbox row has one, issue 13).
    return "[" + ", ".join(f"[{_quoted(k)}, {_quoted(v.decode('latin-1'))}]" for k, v in headers) + "]"


def _h_load(text: str) -> list[tuple[str, bytes]]:
    return [(k, v.encode("latin-1")) for k, v in json.loads(text)]


class OutboxStore(Protocol):
    """The outbox and dead-letter operations every store offers."""

    def outbox_add(self, messages: list[OutboxMessage]) -> list[OutboxMessage]: ...
    def outbox_pending(self, *, limit: int = 1000, older_than_s: float = 0) -> list[OutboxMessage]: ...
    def outbox_delete(self, seqs: list[int]) -> None: ...
    def dead_letter_add(self, letter: DeadLetter) -> bool: ...
    def dead_letters(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> list[DeadLetter]: ...
    def dead_letter(self, letter_id: int) -> DeadLetter | None: ...
    def dead_letter_mark(self, letter_id: int, *, status: str, at: str) -> None: ...
    def dead_letter_count(self, *, status: str | None = None) -> int: ...
    def dead_letter_purge(self, *, before: str) -> int: ...

    # issue 12, erasure (H4)
    def forget_messages(self, *, keys: list[str], needles: list[str]) -> int: ...
    def dead_letters_delete(self, ids: list[int]) -> None: ...
    def scrub(self) -> None: ...
    def erased_ids(self, ids: list[str]) -> set[str]: ...
    def note_erased(self, ids: list[str], *, erasure_id: str) -> None: ...


class _Sealing:
    """Outbox rows and dead letters are sealed under the service's own key: they may carry personal data
    (raw events, profile changes) before any customer is known. Outbox rows live until the broker has
    them; dead letters until retention or erasure removes them."""

    keys: KeyRing

    def _seal_value(self, value: bytes, field: str = "outbox.value") -> bytes:
        return self.keys.seal_bytes(SERVICE, field, value)

    def _open_value(self, value: bytes, field: str = "outbox.value") -> bytes:
        opened = self.keys.open_bytes(SERVICE, field, value)
        assert opened is not None, "the service key is never shredded"
        return opened

    @staticmethod
    def _holds(value: bytes, needles: list[str]) -> bool:
        return any(n and n.encode() in value for n in needles)


class SqliteOutbox(_Sealing):
    """Outbox and dead letters in the service's SQLite file (needs ``self.db``)."""

    db: object

    def outbox_add(self, messages: list[OutboxMessage]) -> list[OutboxMessage]:
        """Queue messages inside the current transaction; returns them with their sequence numbers."""
        if not messages:
            return []
        now = int(time.time() * 1000)
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            insert_rows(c, "INSERT INTO outbox(topic, key, value, headers, created_ms)",
                        [(m.topic, m.key, self._seal_value(m.value), _h_dump(m.headers), now) for m in messages])
            # The write lock is ours for the whole transaction, so the new rows are the last ones, in order.
            last = c.execute("SELECT last_insert_rowid()").fetchone()[0]
        first = last - len(messages) + 1
        # Built directly: dataclasses.replace costs twice as much, once per message of every batch.
        return [OutboxMessage(m.topic, m.value, m.key, m.headers, first + i) for i, m in enumerate(messages)]

    def outbox_pending(self, *, limit: int = 1000, older_than_s: float = 0) -> list[OutboxMessage]:
        """Messages not yet published, oldest first."""
        cutoff = int((time.time() - older_than_s) * 1000)
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            "SELECT seq, topic, key, value, headers FROM outbox WHERE created_ms <= ? ORDER BY seq LIMIT ?",
            (cutoff, limit),
        )
        return [OutboxMessage(t, self._open_value(bytes(v)), k and bytes(k), _h_load(h), s) for s, t, k, v, h in rows]

    def outbox_delete(self, seqs: list[int]) -> None:
        """Forget messages the broker has acknowledged."""
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            for chunk in chunks(seqs, 900):  # a batch's acknowledged messages in a few statements (issue 13)
                c.execute(f"DELETE FROM outbox WHERE seq IN ({in_placeholders(chunk)})", chunk)

    def dead_letter_add(self, letter: DeadLetter) -> bool:
        """Record a dead letter once per fingerprint; True when it is new."""
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            cur = c.execute(
                'INSERT INTO dead_letters(fingerprint, topic, partition, "offset", code, reason, value, headers, at)'
                " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(fingerprint) DO UPDATE SET"
                " attempts = attempts + 1, reason = excluded.reason, code = excluded.code,"
                " status = 'dead' RETURNING attempts",
                (letter.fingerprint, letter.topic, letter.partition, letter.offset, letter.code,
                 letter.reason, self._seal_value(letter.value, "dead_letters.value"), _h_dump(letter.headers),
                 letter.at),
            )
            return cur.fetchone()[0] == 1

    def _letters(self, where: str, args: tuple, tail: str = "") -> list[DeadLetter]:
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            'SELECT id, fingerprint, topic, partition, "offset", code, reason, value, headers, at,'
            f" status, redriven_at FROM dead_letters {where} ORDER BY id {tail}",
            args,
        )
        return [
            DeadLetter(fp, t, p, o, code, reason, self._open_value(bytes(v), "dead_letters.value"), _h_load(h), at, i,
                       st, rd)
            for i, fp, t, p, o, code, reason, v, h, at, st, rd in rows
        ]

    def dead_letters(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> list[DeadLetter]:
        """Dead letters, oldest first, optionally by status."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        return self._letters(where, (*args, limit, offset), "LIMIT ? OFFSET ?")

    def dead_letter(self, letter_id: int) -> DeadLetter | None:
        """One dead letter by id."""
        found = self._letters("WHERE id = ?", (letter_id,))
        return found[0] if found else None

    def dead_letter_mark(self, letter_id: int, *, status: str, at: str) -> None:
        """Set a dead letter's status (``redriven`` after a redrive)."""
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            c.execute("UPDATE dead_letters SET status = ?, redriven_at = ? WHERE id = ?", (status, at, letter_id))

    def dead_letter_count(self, *, status: str | None = None) -> int:
        """How many dead letters, optionally by status."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        return self.db.conn().execute(f"SELECT COUNT(*) FROM dead_letters {where}", args).fetchone()[0]  # type: ignore[attr-defined]

    def dead_letter_purge(self, *, before: str) -> int:
        """Delete dead letters kept since before ``before`` (retention: they hold whole raw messages)."""
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            return c.execute("DELETE FROM dead_letters WHERE at < ?", (before,)).rowcount


    # -- issue 12, erasure (H4) -----------------------------------------------------------
    def forget_messages(self, *, keys: list[str], needles: list[str]) -> int:
        """Delete outbox rows keyed by any of ``keys`` or holding any of ``needles``, and dead letters
        holding any of ``needles`` (an erased customer's ids); returns how many rows went."""
        gone = 0
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            if keys:
                gone += c.execute(f"DELETE FROM outbox WHERE key IN ({','.join('?' * len(keys))})",
                                  [k.encode() for k in keys]).rowcount
            # Values are sealed (a random nonce each): matched once opened, never as stored bytes.
            for table, field in (("outbox", "outbox.value"), ("dead_letters", "dead_letters.value")):
                rows = c.execute(f"SELECT rowid, value FROM {table}").fetchall()
                ids = [(r,) for r, v in rows if self._holds(self._open_value(bytes(v), field), needles)]
                c.executemany(f"DELETE FROM {table} WHERE rowid = ?", ids)
                gone += len(ids)
        return gone

    def dead_letters_delete(self, ids: list[int]) -> None:
        """Delete dead letters by id (they held an erased customer's data)."""
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            c.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids])

    def erased_ids(self, ids: list[str]) -> set[str]:
        """Which of these customer or record ids were erased (one query; none when nobody ever was)."""
        c = self.db.conn()  # type: ignore[attr-defined]
        if not ids or c.execute("SELECT 1 FROM erased_ids LIMIT 1").fetchone() is None:
            return set()
        out: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = c.execute(f"SELECT id FROM erased_ids WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            out.update(r[0] for r in rows)
        return out

    def note_erased(self, ids: list[str], *, erasure_id: str) -> None:
        """Remember these ids as erased: later messages naming them are dropped."""
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            c.executemany("INSERT OR IGNORE INTO erased_ids VALUES (?,?)", [(i, erasure_id) for i in ids])

    def scrub(self) -> None:
        """Move everything the write-ahead log holds into the file and empty the log, so a deleted row's old
        copies in the log are gone too (the file itself has them zeroed: ``secure_delete``)."""
        conn = self.db.conn()  # type: ignore[attr-defined]
        for _ in range(50):
            busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.05)
        # Readers held the log all along: its old frames stay until SQLite reuses them (or the next erasure).
        log.warning("%s: the write-ahead log could not be truncated after an erasure", self.db.path.name)  # type: ignore[attr-defined]


class MongoOutbox(_Sealing):
    """Outbox and dead letters in the service's MongoDB database (needs ``self.mdb``)."""

    mdb: object

    def create_outbox_indexes(self) -> None:
        """Indexes the outbox and dead letters rely on (call once when the store opens)."""
        self.mdb["outbox"].create_index("created_ms")  # type: ignore[attr-defined]
        self.mdb["dead_letters"].create_index("fingerprint", unique=True)  # type: ignore[attr-defined]
        self.mdb["dead_letters"].create_index("status")  # type: ignore[attr-defined]

    def _next(self, name: str) -> int:
        from pymongo import ReturnDocument

        doc = self.mdb["counters"].find_one_and_update(  # type: ignore[attr-defined]
            {"_id": name}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(doc["n"])

    def outbox_add(self, messages: list[OutboxMessage]) -> list[OutboxMessage]:
        """Queue messages inside the current transaction; returns them with their sequence numbers."""
        from bson import ObjectId

        if not messages:
            return []
        now = int(time.time() * 1000)
        # ObjectIds: unique across workers without a shared counter (which every batch would contend on),
        # and ordered by time; the sequence number is the id read as an integer.
        out = [replace(m, seq=int(str(ObjectId()), 16)) for m in messages]
        docs = [
            {"_id": ObjectId(format(m.seq, "024x")), "topic": m.topic, "key": m.key, "value": self._seal_value(m.value),
             "headers": _h_dump(m.headers), "created_ms": now}
            for m in out
        ]
        self.mdb["outbox"].insert_many(docs)  # type: ignore[attr-defined]
        return out

    def outbox_pending(self, *, limit: int = 1000, older_than_s: float = 0) -> list[OutboxMessage]:
        """Messages not yet published, oldest first."""
        cutoff = int((time.time() - older_than_s) * 1000)
        cur = self.mdb["outbox"].find({"created_ms": {"$lte": cutoff}}).sort("_id", 1).limit(limit)  # type: ignore[attr-defined]
        return [
            OutboxMessage(d["topic"], self._open_value(bytes(d["value"])), d["key"] and bytes(d["key"]),
                          _h_load(d["headers"]),
                          int(str(d["_id"]), 16))
            for d in cur
        ]

    def outbox_delete(self, seqs: list[int]) -> None:
        """Forget messages the broker has acknowledged."""
        from bson import ObjectId

        if seqs:
            ids = [ObjectId(format(s, "024x")) for s in seqs]
            self.mdb["outbox"].delete_many({"_id": {"$in": ids}})  # type: ignore[attr-defined]

    def dead_letter_add(self, letter: DeadLetter) -> bool:
        """Record a dead letter once per fingerprint; True when it is new."""
        coll = self.mdb["dead_letters"]  # type: ignore[attr-defined]
        existing = coll.find_one({"fingerprint": letter.fingerprint})
        if existing:
            coll.update_one({"_id": existing["_id"]}, {"$inc": {"attempts": 1},
                            "$set": {"reason": letter.reason, "code": letter.code, "status": "dead"}})
            return False
        coll.insert_one({
            "_id": self._next("dead_letters"), "fingerprint": letter.fingerprint, "topic": letter.topic,
            "partition": letter.partition, "offset": letter.offset, "code": letter.code,
            "reason": letter.reason, "value": self._seal_value(letter.value, "dead_letters.value"),
            "headers": _h_dump(letter.headers),
            "at": letter.at, "status": "dead", "redriven_at": None, "attempts": 1,
        })
        return True

    def _letter(self, d: dict) -> DeadLetter:
        return DeadLetter(d["fingerprint"], d["topic"], d["partition"], d["offset"], d["code"], d["reason"],
                          self._open_value(bytes(d["value"]), "dead_letters.value"), _h_load(d["headers"]), d["at"],
                          d["_id"], d["status"], d["redriven_at"])

    def dead_letters(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> list[DeadLetter]:
        """Dead letters, oldest first, optionally by status."""
        q = {"status": status} if status else {}
        cur = self.mdb["dead_letters"].find(q).sort("_id", 1).skip(offset).limit(limit)  # type: ignore[attr-defined]
        return [self._letter(d) for d in cur]

    def dead_letter(self, letter_id: int) -> DeadLetter | None:
        """One dead letter by id."""
        d = self.mdb["dead_letters"].find_one({"_id": letter_id})  # type: ignore[attr-defined]
        return self._letter(d) if d else None

    def dead_letter_mark(self, letter_id: int, *, status: str, at: str) -> None:
        """Set a dead letter's status (``redriven`` after a redrive)."""
        self.mdb["dead_letters"].update_one({"_id": letter_id}, {"$set": {"status": status, "redriven_at": at}})  # type: ignore[attr-defined]

    def dead_letter_count(self, *, status: str | None = None) -> int:
        """How many dead letters, optionally by status."""
        return self.mdb["dead_letters"].count_documents({"status": status} if status else {})  # type: ignore[attr-defined]

    def dead_letter_purge(self, *, before: str) -> int:
        """Delete dead letters kept since before ``before`` (retention: they hold whole raw messages)."""
        return self.mdb["dead_letters"].delete_many({"at": {"$lt": before}}).deleted_count  # type: ignore[attr-defined]


    # -- issue 12, erasure (H4) -----------------------------------------------------------
    def forget_messages(self, *, keys: list[str], needles: list[str]) -> int:
        """Delete outbox rows keyed by any of ``keys`` or holding any of ``needles``, and dead letters
        holding any of ``needles`` (an erased customer's ids); returns how many documents went."""
        gone = 0
        for name, by_key, field in (("outbox", True, "outbox.value"), ("dead_letters", False, "dead_letters.value")):
            coll = self.mdb[name]  # type: ignore[attr-defined]
            # Values are sealed bytes: no server-side match, so the (short) collections are read and opened.
            ids = [d["_id"] for d in coll.find({}, {"key": 1, "value": 1})
                   if (by_key and d.get("key") and bytes(d["key"]).decode("latin-1") in keys)
                   or self._holds(self._open_value(bytes(d["value"]), field), needles)]
            if ids:
                gone += coll.delete_many({"_id": {"$in": ids}}).deleted_count
        return gone

    def dead_letters_delete(self, ids: list[int]) -> None:
        """Delete dead letters by id (they held an erased customer's data)."""
        if ids:
            self.mdb["dead_letters"].delete_many({"_id": {"$in": list(ids)}})  # type: ignore[attr-defined]

    def erased_ids(self, ids: list[str]) -> set[str]:
        """Which of these customer or record ids were erased."""
        if not ids:
            return set()
        return {d["_id"] for d in self.mdb["erased_ids"].find({"_id": {"$in": list(ids)}}, {"_id": 1})}  # type: ignore[attr-defined]

    def note_erased(self, ids: list[str], *, erasure_id: str) -> None:
        """Remember these ids as erased: later messages naming them are dropped."""
        for i in ids:
            self.mdb["erased_ids"].update_one({"_id": i}, {"$setOnInsert": {"erasure_id": erasure_id}},  # type: ignore[attr-defined]
                                              upsert=True)

    def scrub(self) -> None:
        """Nothing to do: a deleted document is gone from what MongoDB serves (its own storage engine and
        oplog are the server's to compact)."""


class SqliteStore(SqliteOutbox):
    """What every service's SQLite store starts from: its own file (``schema`` creates its tables),
    transactions across processes, the outbox and dead letters."""

    schema: str = OUTBOX_SQL
    cached_statements: int = 128  # prepared statements kept per connection (``SqliteDb``)

    def __init__(self, path: Path | str, *, master_key: bytes | None = None) -> None:
        self.db = SqliteDb(path, self.schema, cached_statements=self.cached_statements)
        self.keys = sqlite_keyring(self.db.path, master_key or _default_master_key())
        self.keys.check()

    def transaction(self):
        """One atomic unit of work across processes."""
        return self.db.transaction()

    def close(self) -> None:
        """Close this thread's connections."""
        self.db.close()
        self.keys.close()


class MongoStore(MongoOutbox):
    """What every service's MongoDB store starts from: its database, transactions (on a replica set),
    the outbox and dead letters; ``create_indexes`` adds the service's own indexes at open."""

    def __init__(self, mdb: MongoDb, *, master_key: bytes | None = None) -> None:
        self.mdb = mdb
        self.keys = mongo_keyring(mdb, master_key or _default_master_key())
        self.keys.check()
        self.create_outbox_indexes()
        self.create_indexes()

    def create_indexes(self) -> None:
        """The service's own indexes (idempotent; run when the store opens)."""

    def transaction(self):
        """One atomic unit of work (a multi-document transaction where the server supports one)."""
        return self.mdb.transaction()

    def close(self) -> None:
        """Nothing to release: the client belongs to whoever opened it."""


def _default_master_key() -> bytes:
    # A store opened without a key (tests, tools) uses the deployment's: CRM_MASTER_KEY, or the dev key.
    from shared.settings import get_settings

    return get_settings().master_key_bytes()
