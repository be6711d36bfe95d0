"""Where a batch's identifiers point: read from the store once for the whole batch, then kept current in
memory as the batch's own events create, link and merge records (issue 13: a lookup per event was the
largest store cost of resolution)."""

from __future__ import annotations

from collections.abc import Iterable

from services.identity.domain.cleaning import Ident
from services.identity.domain.resolution import Found
from services.identity.store import IdentityStore


class Known:
    """The identifier → record → customer graph a batch resolves against.

    Only three writes change what ``store.find`` answers during consumption: a new record (its own
    customer, with a phone or not), new identifiers linked to a record (a known identifier keeps its
    record), and a merge (every record under the merged customer moves to the survivor). Each is
    noted here as the handler makes it, so :meth:`find` answers what the store would, without a read.
    """

    def __init__(self, store: IdentityStore, idents: Iterable[Ident]) -> None:
        wanted = dict.fromkeys(idents)
        found = store.find(wanted)
        # Phones staff replaced on a customer (issue 14), read only when some phone ever was: an event that
        # happened before a replacement belongs to the customer who held the number then (a till's late
        # upload); after the last one, a number nobody holds names a record of its own.
        self._store = store
        self._replacements: dict[Ident, list[tuple[str, str]]] = {}
        if store.has_replaced_identifiers():
            self._replacements = store.replacements([i for i in wanted if i[0] == "phone"])
        self.replaced = {ident: len(held) for ident, held in self._replacements.items() if ident not in found}
        self._record = {ident: f.record_id for ident, f in found.items()}
        self._root = {f.record_id: f.root_id for f in found.values()}  # each record's customer when read
        self._phone = {f.root_id: f.root_has_phone for f in found.values()}  # whether a customer has a phone
        self._moved: dict[str, str] = {}  # a customer merged in this batch -> the one it was merged into
        self._gone: set[str] = set()  # records that held a replaced phone once, erased since

    def find(self, idents: Iterable[Ident]) -> dict[Ident, Found]:
        """What ``store.find`` answers now for these identifiers."""
        out: dict[Ident, Found] = {}
        for ident in idents:
            record = self._record.get(ident)
            if record is not None:
                root = self._customer(self._root[record])
                out[ident] = Found(record, root, self._phone[root])
        return out

    def held_then(self, phone: Ident, at: str) -> Found | None:
        """Where a replaced phone pointed at ``at`` (a fixed-width UTC timestamp), if that was before its last
        replacement: the record that held it until the first replacement after ``at``, under its customer now
        (None as well when that customer was erased since: see :meth:`erased_then`)."""
        record = self._holder_then(phone, at)
        if record is None or not self._exists(record):
            return None
        root_id = self._customer(self._root[record])
        return Found(record, root_id, self._phone.get(root_id, True))

    def erased_then(self, phone: Ident, at: str) -> bool:
        """Whether the customer who held a replaced phone at ``at`` was erased since: the event (a replay, or a
        till's late upload) was that person's, never the number's holder now."""
        record = self._holder_then(phone, at)
        return record is not None and not self._exists(record)

    def _holder_then(self, phone: Ident, at: str) -> str | None:
        return next((r for replaced_at, r in self._replacements.get(phone, ()) if at < replaced_at), None)

    def _exists(self, record: str) -> bool:
        # A record is only ever deleted by an erasure (which keeps its replaced numbers, see the store's erase).
        if record in self._root:
            return True
        if record in self._gone:
            return False
        held = self._store.record(record)
        root = self._store.record(held.root_id) if held is not None else None
        if root is None:
            self._gone.add(record)
            return False
        self._root[record] = root.id
        self._phone[root.id] = root.phone is not None
        return True

    def created(self, record_id: str, *, phone: str | None) -> None:
        """A new record, its own customer (a record is named after the identifier that created it and
        linked to it in the same transaction, so one this batch does not know by its identifiers is new)."""
        if record_id not in self._root:
            self._root[record_id] = record_id
            self._phone[record_id] = phone is not None

    def linked(self, record_id: str, idents: Iterable[Ident]) -> None:
        """Identifiers attached to a record; one already known keeps its record."""
        for ident in idents:
            self._record.setdefault(ident, record_id)

    def merged(self, survivor_id: str, merged_id: str) -> None:
        """Every record of ``merged_id`` now belongs to ``survivor_id``."""
        self._moved[merged_id] = survivor_id

    def _customer(self, root: str) -> str:
        while root in self._moved:
            root = self._moved[root]
        return root
