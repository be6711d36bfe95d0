"""Store selection by ``CRM_STORE_URL`` and the pieces every store adapter shares.

``sqlite:///path/crm.db`` gives each service its own file beside it (``crm.identity.db``);
``mongodb://host/…`` gives each service its own database (``crm_identity``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from shared.observability.trace_context import tracer
from shared.storage.files import private_file

_tracer = tracer(__name__)


@dataclass(frozen=True)
class OutboxMessage:
    """A message written in the same transaction as the state it announces."""

    topic: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    seq: int | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A consumed message that could not be processed, with its reason and origin."""

    fingerprint: str
    topic: str
    partition: int
    offset: int
    code: str
    reason: str
    value: bytes
    headers: list[tuple[str, bytes]]
    at: str
    id: int | None = None
    status: str = "dead"
    redriven_at: str | None = None


def store_kind(url: str) -> str:
    """``sqlite`` or ``mongodb``."""
    scheme = urlparse(url).scheme
    if scheme in ("sqlite", "mongodb", "mongodb+srv", "mongomock"):
        return "mongodb" if scheme.startswith("mongo") else "sqlite"
    raise ValueError("CRM_STORE_URL must start with sqlite:/// or mongodb://")


def sqlite_path(url: str, service: str) -> Path:
    """The SQLite file a service uses under a ``sqlite:///…`` URL."""
    raw = url[len("sqlite:///"):] if url.startswith("sqlite:///") else urlparse(url).path
    base = Path(raw)
    return base.with_name(f"{base.stem}.{service}{base.suffix or '.db'}")


def mongo_database(url: str, service: str, client=None) -> MongoDb:
    """The service's MongoDB database (``<db or crm>_<service>``); mongomock when told to."""
    parsed = urlparse(url)
    prefix = parsed.path.strip("/") or "crm"
    if client is None:
        if parsed.scheme == "mongomock":
            import mongomock

            client = mongomock.MongoClient()
        else:
            from pymongo import MongoClient

            client = MongoClient(url, tz_aware=True, retryWrites=True)
    return MongoDb(client[f"{prefix}_{service}"])


class MongoDb:
    """A service's MongoDB database whose writes join the current transaction.

    ``transaction()`` runs a multi-document transaction on a replica set (as production runs), so
    state and outbox commit together; where the server cannot (mongomock, a standalone server) it
    runs the block without one. Collections taken from this object pass the session themselves.
    """

    def __init__(self, database, *, transactions: bool | None = None) -> None:
        self.database = database
        self._transactions = transactions
        self._local = threading.local()
        self.observe: Callable[[float], None] | None = None

    @property
    def client(self):
        return self.database.client

    def _supports_transactions(self) -> bool:
        if self._transactions is None:
            try:
                hello = self.database.client.admin.command("hello")
                self._transactions = bool(hello.get("setName") or hello.get("msg") == "isdbgrid")
            except Exception:  # mongomock and anything that cannot say
                self._transactions = False
        return self._transactions

    def __getitem__(self, name: str) -> _SessionCollection:
        return _SessionCollection(self.database[name], self)

    @property
    def session(self):
        """The session of the transaction this thread is in, if any."""
        return getattr(self._local, "session", None)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work; nested calls join the outer one."""
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        self._local.depth = 1
        started = time.perf_counter()
        try:
            with _tracer.start_as_current_span("mongodb.transaction", attributes={"db.system.name": "mongodb",
                                                                                 "db.namespace": self.database.name}):
                if not self._supports_transactions():
                    yield
                    return
                with self.database.client.start_session() as session, session.start_transaction():
                    self._local.session = session
                    try:
                        yield
                    finally:
                        self._local.session = None
        finally:
            self._local.depth = 0
            if self.observe is not None:
                self.observe(time.perf_counter() - started)


class _SessionCollection:
    """A pymongo collection whose calls carry the current transaction's session."""

    def __init__(self, collection, owner: MongoDb) -> None:
        self._collection = collection
        self._owner = owner

    def __getattr__(self, name: str):
        attr = getattr(self._collection, name)
        session = self._owner.session
        if session is None or not callable(attr) or name in _NO_SESSION:
            return attr

        def call(*args, **kwargs):
            kwargs.setdefault("session", session)
            return attr(*args, **kwargs)

        return call


_NO_SESSION = frozenset({"create_index", "create_indexes", "drop", "with_options"})


class _Connection(sqlite3.Connection):
    """A connection whose bulk write of no rows issues no statement: sqlite3 still compiles and steps it, and most
    of a small batch's bulk writes have nothing to write (a batch of profiles keeps no purchase): about nine of
    alerts' thirty-three statements a batch of 10 (issue 13)."""

    def executemany(self, sql: str, parameters, /):  # type: ignore[override]
        if isinstance(parameters, Sized) and not parameters:
            return self.cursor()
        return super().executemany(sql, parameters)


class SqliteDb:
    """Thread-local SQLite connections in WAL mode; writers take the lock up front."""

    def __init__(self, path: Path | str, schema: str, *, cached_statements: int = 128) -> None:
        self.path = Path(path)
        # Prepared statements each connection keeps by their text (sqlite3's default is 128).
        self._cached_statements = cached_statements
        # 0600 before SQLite opens it (its -wal and -shm files take the database file's mode).
        private_file(self.path)
        self._schema = schema
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_done = False
        # Called with each transaction's duration in seconds (the service's store latency histogram).
        self.observe: Callable[[float], None] | None = None

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False,
                                   cached_statements=self._cached_statements, factory=_Connection)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA foreign_keys=OFF")
            # Deleted rows are overwritten with zeros, not left in free pages: an erased customer's phone must
            # not stay readable in the file (issue 12, erasure).
            conn.execute("PRAGMA secure_delete=ON")
            # Scratch tables (ids joined instead of huge IN lists) and sorts stay in memory: in a temporary file
            # with a 2 MB cache, filling one with 100,000 ids took 3.4 s of a campaign's results (issue 16).
            conn.execute("PRAGMA temp_store=MEMORY")
            with self._schema_lock:
                if not self._schema_done:
                    conn.executescript(self._schema)
                    self._schema_done = True
            self._local.conn = conn
            self._local.depth = 0
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one."""
        conn = self.conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        started = time.perf_counter()
        with _tracer.start_as_current_span("sqlite.transaction", attributes={"db.system.name": "sqlite",
                                                                            "db.namespace": self.path.name}):
            _begin_immediate(conn)
            self._local.depth = 1
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself on some errors (SQLITE_FULL, an I/O error): a second ROLLBACK
                # would fail and hide the error that says whether to retry.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._local.depth = 0
                if self.observe is not None:
                    self.observe(time.perf_counter() - started)

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def in_placeholders(values: Sized) -> str:
    """``?,?,?`` for an SQL ``IN (…)`` over these values, each bound as a parameter."""
    return ",".join("?" * len(values))


def chunks(items: list, size: int) -> Iterator[list]:
    """``items`` in consecutive slices of at most ``size`` (SQLite caps the parameters of one statement)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def insert_rows(conn: sqlite3.Connection, head: str, rows: list[tuple], tail: str = "") -> None:
    """``head VALUES (…),(…)… tail`` for the rows, a few statements of at most about 900 bound values each."""
    # A batch's rows in a few statements, not one each (issue 13). SQLite inserts (and upserts) a multi-row
    # VALUES row by row, so a key given twice meets the row before it, exactly as statements in turn would.
    if not rows:
        return
    # Each statement takes a power of two of rows (37 rows: 32, 4, 1): a few texts per table, not one per batch
    # size. The connection keeps its last 128 statements prepared, and the sizes of a service's batches, table
    # after table, made far more: each was compiled again, which cost more than running it (issue 13).
    marks = f"({','.join('?' * len(rows[0]))})"
    step = max(1, 900 // len(rows[0]))
    start = 0
    while start < len(rows):
        size = 1 << (min(step, len(rows) - start).bit_length() - 1)
        chunk = rows[start:start + size]
        conn.execute(f"{head} VALUES {','.join([marks] * size)}{tail}", [v for row in chunk for v in row])
        start += size


def _begin_immediate(conn: sqlite3.Connection) -> None:
    # busy_timeout covers most waits; a checkpoint can still return BUSY at once.
    for attempt in range(200):
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(min(0.5, 0.005 * (attempt + 1)))
    conn.execute("BEGIN IMMEDIATE")


# What an erased customer's kept facts are filed under (issue 12): ids that name nobody, never in an audience.
ANON_PREFIX = "anon_"

OUTBOX_SQL = """
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL, headers TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  fingerprint TEXT NOT NULL UNIQUE,
  topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
  code TEXT NOT NULL, reason TEXT NOT NULL, value BLOB NOT NULL, headers TEXT NOT NULL,
  at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'dead', redriven_at TEXT, attempts INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS erased_ids (id TEXT PRIMARY KEY, erasure_id TEXT NOT NULL) WITHOUT ROWID;
"""


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: a locked or busy database, a lost or slow MongoDB connection."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        # "full": SQLITE_FULL, a disk with no space left (or a page limit), clears when space returns.
        return any(w in text for w in ("locked", "busy", "disk i/o", "unable to open", "full"))
    try:
        from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout, PyMongoError, WTimeoutError
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError"):
        return True  # a write conflict between concurrent workers: the whole transaction is retried
    return isinstance(exc, AutoReconnect | ConnectionFailure | NetworkTimeout | WTimeoutError)
