"""Issue 15: a till may sell to a non-member (``data.identity`` is ``{}``): identity accepts a purchase or a
refund without identifiers, creates no customer for it and hands it on for store totals only; every other
type still needs an identifier."""

from __future__ import annotations

from services.identity import messages
from services.identity.handlers import commands
from shared.contract import topics
from shared.contract.messages import StoreSaleRecorded, decode
from tests.unit.identity.support import event, incoming, make_deps, purchase


def test_a_non_members_sale_and_refund_are_handed_on_with_no_customer(tmp_path):
    deps = make_deps(tmp_path / "identity.db")
    refund = event("r1", {}, kind="crm.refund", order_id="o-e1", amount="10.00")
    outcome = messages.consume(incoming([purchase("e1", {}, "99.00"), refund]), deps=deps)
    assert (outcome.processed, outcome.dead_lettered, outcome.counts["non_member"]) == (2, 0, 2)
    sent = [m for m in outcome.outbox if m.topic == topics.CUSTOMER_EVENTS]
    bodies = [decode(m.value) for m in sent]
    assert all(isinstance(b, StoreSaleRecorded) for b in bodies)
    assert [(b.event["id"], any(b.event["data"]["identity"].values())) for b in bodies] == [("e1", False),
                                                                                            ("r1", False)]
    assert [m.key for m in sent] == [b"order:o-e1", b"order:o-e1"]  # a refund follows its purchase
    assert deps.store.customer_count() == 0


def test_ingest_accepts_a_sale_without_identifiers_and_refuses_any_other_type(tmp_path):
    deps = make_deps(tmp_path / "identity.db")
    sent: list = []
    results = commands.ingest([purchase("e1", {}, "5.00"), event("e2", {}, kind="crm.survey", score=9),
                               event("e3", {}), purchase("e4", {"phone": "0"}, "5.00")], deps=deps,
                              publish=sent.extend)
    assert [(r["index"], r["status"], r.get("code")) for r in results] == [
        (0, "accepted", None), (1, "rejected", "invalid_event"), (2, "rejected", "invalid_event"),
        (3, "rejected", "no_usable_identifier")]  # a placeholder is not a non-member: the till sent garbage
    assert results[1]["reasons"] == ["data.identity: Value error, identity needs at least one of phone, "
                                     "wechat_unionid, wechat_openid, member_id, web_user_id, email, anonymous_id"]
    assert [(o.topic, o.key) for o in sent] == [("crm.channel.pos", b"order:o-e1")]
