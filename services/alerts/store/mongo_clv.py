"""Issue 15, clv: the MongoDB side of the customer-value model: each customer's spend per purchase day (what
Gamma-Gamma is fitted on) and the spend model kept per as-of date."""

from __future__ import annotations

from datetime import date

from shared.clv import SpendModel, spend_by_customer, spend_model_doc, spend_model_of


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
