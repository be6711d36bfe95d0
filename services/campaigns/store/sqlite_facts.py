"""Reading customers' facts from campaigns' SQLite file: the folded facts an audience is evaluated from, and the
sales results are measured from (a mixin of ``SqliteCampaignsStore``, as ``mongo_facts`` is of the Mongo store)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from services.campaigns.domain.attribution import Refund, Sale
from services.campaigns.domain.audience import CustomerFacts, flag
from services.campaigns.store import SumsPeriodSales
from shared.contract.facts import FieldValue
from shared.storage.base import ANON_PREFIX
from shared.storage.fact_tables import open_field


class SqliteFactReads(SumsPeriodSales):
    """Customers' facts, folded, and their sales; ``_wanted`` (the connection's scratch table of ids), ``db`` and
    ``keys`` come from the store."""

    def customer_facts(self, *, as_of_ms: int, fields: Collection[str] | None = None,
                       categories: bool = True, customers: Collection[str] | None = None) -> list[CustomerFacts]:
        """Every active customer's facts up to a moment, folded over its records (only the profile
        ``fields`` asked for, all kept ones by default; categories bought only when asked; only the
        ``customers`` named, when named)."""
        c = self.db.conn()
        # Restricted to some customers: their records through the scratch table, joined in that order (CROSS
        # JOIN keeps SQLite from scanning every mapping), the same queries otherwise.
        src, join = "memberships m", "JOIN"
        if customers is not None:
            self._wanted(customers)
            src, join = "temp.wanted w CROSS JOIN memberships m ON m.customer_id = w.id", "CROSS JOIN"
        acc: dict[str, dict] = {r[0]: {} for r in c.execute(f"SELECT DISTINCT m.customer_id FROM {src}")}
        days: dict[str, set] = defaultdict(set)
        stores: dict[str, list] = defaultdict(list)
        newest: dict[str, int] = defaultdict(int)
        # One pass over the purchases, per customer and store; days come back as a list to fold here.
        for cid, store, n, spend, seen, last_ms in c.execute(
                "SELECT m.customer_id, p.store_id, COUNT(*), SUM(p.amount_minor), group_concat(DISTINCT p.day),"
                f" MAX(p.time_ms) FROM {src} {join} purchases p ON p.record_id = m.record_id"
                " WHERE p.time_ms <= ? GROUP BY m.customer_id, p.store_id", (as_of_ms,)):
            held = acc.setdefault(cid, {})
            held["purchase_count"] = held.get("purchase_count", 0) + n
            held["spend_minor"] = held.get("spend_minor", 0) + spend
            newest[cid] = max(newest[cid], last_ms)
            listed = seen.split(",")
            days[cid].update(listed)
            if store is not None:
                stores[cid].append((store, len(listed), max(listed)))
        for cid, seen in days.items():
            acc[cid].update(purchase_days=len(seen), first_day=min(seen), last_day=max(seen))
        for cid, refunded, last_ms in c.execute(
                f"SELECT m.customer_id, SUM(r.amount_minor), MAX(r.time_ms) FROM {src} {join} refunds r"
                " ON r.record_id = m.record_id WHERE r.time_ms <= ? GROUP BY m.customer_id", (as_of_ms,)):
            acc.setdefault(cid, {})["refund_minor"] = refunded
            newest[cid] = max(newest[cid], last_ms)
        bought: dict[str, set] = defaultdict(set)
        if categories:
            for cid, category in c.execute(
                    f"SELECT DISTINCT m.customer_id, j.value FROM {src} {join} purchases p"
                    " ON p.record_id = m.record_id JOIN json_each(p.categories) j WHERE p.time_ms <= ?", (as_of_ms,)):
                bought[cid].add(category)
        attributes = self._newest(as_of_ms, fields, f"{src} {join}")
        tiers = dict(c.execute("SELECT t.customer_id, t.tier FROM "
                               + ("temp.wanted w CROSS JOIN tiers t ON t.customer_id = w.id" if customers is not None
                                  else "tiers t")))
        return [
            CustomerFacts(customer_id=cid, store_days=tuple(sorted(stores[cid])) if cid in stores else (),
                          categories=frozenset(bought.get(cid, ())), attributes=attributes.get(cid, {}),
                          tier=tiers.get(cid), newest_ms=max([newest.get(cid, 0)] + [
                              v.time_ms for v in attributes.get(cid, {}).values()]), **held)
            for cid, held in sorted(acc.items()) if not cid.startswith(ANON_PREFIX)  # erased: in no audience
        ]

    def _newest(self, as_of_ms: int, fields: Collection[str] | None,
                joined: str = "memberships m JOIN") -> dict[str, dict[str, FieldValue]]:
        """Per customer and field, the newest value up to a moment (decoded by SQLite, folded here)."""
        wanted = sorted(fields) if fields is not None else None
        cond = f" AND a.field IN ({','.join('?' * len(wanted))})" if wanted is not None else ""
        out: dict[str, dict[str, FieldValue]] = defaultdict(dict)
        rows = self.db.conn().execute(
            "SELECT m.customer_id, a.record_id, a.field, a.value, a.time_ms, a.source, a.event_id"
            f" FROM {joined} attributes a ON a.record_id = m.record_id WHERE a.time_ms <= ?{cond}",
            [as_of_ms, *(wanted or [])]).fetchall()
        # Personal fields are sealed: opened here, in memory, with each record's key loaded once.
        self.keys.load({r[1] for r in rows})
        for cid, record_id, field, stored, ms, source, eid in rows:
            held = out[cid].get(field)
            if held is None or (ms, source, eid) > (held.time_ms, held.source, held.event_id):
                value = open_field(self.keys, record_id, field, stored)
                out[cid][field] = FieldValue(field, bool(value) if flag(field) else value, ms, source, eid)
        return out

    def customer_ids(self) -> list[str]:
        """Every customer a whole ``customer_facts`` read may return (and erased ones), to read a chunk at a time."""
        return [r[0] for r in self.db.conn().execute("SELECT DISTINCT customer_id FROM memberships ORDER BY 1")]

    def sales(self, customers: Collection[str], *, since_ms: int | None = None,
              until_ms: int | None = None) -> tuple[list[Sale], list[Refund]]:
        """Purchases of these customers in ``[since, until)`` and every refund they made."""
        c = self._wanted(customers)
        conds, args = [], []
        if since_ms is not None:
            conds.append(" AND p.time_ms >= ?")
            args.append(since_ms)
        if until_ms is not None:
            conds.append(" AND p.time_ms < ?")
            args.append(until_ms)
        sales = [Sale(*r) for r in c.execute(
            "SELECT m.customer_id, p.source, p.id, p.order_id, p.amount_minor, p.time_ms, p.day FROM temp.wanted w"
            " CROSS JOIN memberships m ON m.customer_id = w.id CROSS JOIN purchases p ON p.record_id = m.record_id"
            " WHERE 1=1"
            + "".join(conds), args)]
        refunds = [Refund(*r) for r in c.execute(
            "SELECT m.customer_id, r.source, r.id, r.order_id, r.amount_minor FROM temp.wanted w"
            " CROSS JOIN memberships m ON m.customer_id = w.id CROSS JOIN refunds r ON r.record_id = m.record_id")]
        return sales, refunds

    def period_sales_of(self, customers: Collection[str] | None, *, since_ms: int,
                        until_ms: int) -> dict[str, tuple[int, int, int]]:
        """``period_sales`` per customer (of these customers, or of all): purchases, their sum and what was
        refunded of those orders; customers without a purchase in the period left out."""
        if customers is None:
            c, join = self.db.conn(), "memberships m"
        else:
            c, join = self._wanted(customers), "temp.wanted w CROSS JOIN memberships m ON m.customer_id = w.id"
        rows = c.execute(
            "WITH p AS (SELECT m.customer_id AS c, p.order_id AS o, COUNT(*) AS n, SUM(p.amount_minor) AS a"
            f"  FROM {join} CROSS JOIN purchases p ON m.record_id = p.record_id"
            "  WHERE p.time_ms >= ? AND p.time_ms < ? GROUP BY 1, 2),"
            " r AS (SELECT m.customer_id AS c, r.order_id AS o, SUM(r.amount_minor) AS a"
            f"  FROM {join} CROSS JOIN refunds r ON m.record_id = r.record_id GROUP BY 1, 2)"
            " SELECT p.c, SUM(p.n), SUM(p.a), SUM(MIN(COALESCE(r.a, 0), p.a))"
            " FROM p LEFT JOIN r ON r.c = p.c AND r.o = p.o GROUP BY p.c", (since_ms, until_ms))
        return {cust: (n, gross, refunded) for cust, n, gross, refunded in rows}
