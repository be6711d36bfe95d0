"""Issue 15, clv: the MongoDB side of the customer-value model: each customer's spend per purchase day (what
Gamma-Gamma is fitted on) and the spend model kept per as-of date."""

from __future__ import annotations

from datetime import date

from shared.clv import Spending, SpendModel, spend_by_customer, spend_model_doc, spend_model_of, spendings, summarised


class MongoClv:
    """Mixin of ``MongoAlertsStore`` (uses its ``mdb`` and ``records_of``)."""

    def purchase_spend(self, *, until: date, customer_id: str | None = None) -> dict[str, dict[date, int]]:
        """Spend (minor units) per purchase day up to ``until`` of every customer (or one), the amounts of one
        day summed, through the membership mapping (a merge joins two histories, an unmerge splits them)."""
        # From the customer-value aggregate (a document per record and purchase day), not every purchase.
        mdb = self.mdb  # type: ignore[attr-defined]
        q: dict = {"day": {"$lte": until.isoformat()}}
        if customer_id is not None:
            records = self.records_of(customer_id)  # type: ignore[attr-defined]
            q["record_id"] = {"$in": records}
            owner = dict.fromkeys(records, customer_id)
        else:
            owner = {d["_id"]: d["customer_id"] for d in mdb["memberships"].find({}, {"customer_id": 1})}
        docs = mdb["value_days"].find(q, {"_id": 0, "record_id": 1, "day": 1, "spend_minor": 1})
        return spend_by_customer(((d["record_id"], d["day"], d["spend_minor"]) for d in docs), owner)

    def purchase_summaries(self, *, until: date) -> dict[str, Spending]:
        """Every customer's summary of spend per purchase day up to ``until`` (``spendings`` of
        :meth:`purchase_spend`, exactly), through the membership mapping."""
        # The database sums each record's days (a document per record where the days are ten times as many); a
        # customer of several records (merged: few) is summed from its days, one day of two records counting once.
        mdb = self.mdb  # type: ignore[attr-defined]
        hi = until.isoformat()
        owner = {d["_id"]: d["customer_id"] for d in mdb["memberships"].find({}, {"customer_id": 1})}
        owner = {r: c for r, c in owner.items() if r != c}
        joined = set(owner.values())
        out, apart = {}, []
        for g in mdb["value_days"].aggregate([
                {"$match": {"day": {"$lte": hi}}}, {"$sort": {"record_id": 1, "day": 1}},
                {"$group": {"_id": "$record_id", "first": {"$first": "$day"}, "last": {"$last": "$day"},
                            "n": {"$sum": 1}, "spend": {"$sum": "$spend_minor"},
                            "first_spend": {"$first": "$spend_minor"}}}], allowDiskUse=True):
            if g["_id"] in owner or g["_id"] in joined:
                apart.append(g["_id"])
            else:
                out[g["_id"]] = summarised(date.fromisoformat(g["first"]), date.fromisoformat(g["last"]), g["n"],
                                           g["spend"], g["first_spend"], until)
        docs = mdb["value_days"].find({"record_id": {"$in": apart}, "day": {"$lte": hi}},
                                      {"_id": 0, "record_id": 1, "day": 1, "spend_minor": 1}) if apart else []
        rows = ((d["record_id"], d["day"], d["spend_minor"]) for d in docs)
        out.update(spendings(spend_by_customer(rows, owner), until))
        return out

    def put_spend_model(self, model: SpendModel, *, fitted_at: str) -> None:
        """Keep a fitted spend model for its as-of date (the first one kept stays: one fit per as-of)."""
        # An upsert that only inserts: a duplicate key error would abort the surrounding transaction.
        self.mdb["clv_models"].update_one(  # type: ignore[attr-defined]
            {"_id": model.as_of.isoformat()}, {"$setOnInsert": {**spend_model_doc(model), "fitted_at": fitted_at}},
            upsert=True)

    def spend_model(self, as_of: date) -> tuple[SpendModel, str] | None:
        """The spend model fitted as of a date and when it was fitted, if any."""
        d = self.mdb["clv_models"].find_one({"_id": as_of.isoformat()})  # type: ignore[attr-defined]
        return (spend_model_of(d), d["fitted_at"]) if d else None
