"""Identity's times order what it announces: a record's membership told by a merge is newer than the one told
by the event that created the record, in one batch as across batches, so downstream services (last writer wins
per record by identity's time) end with the same mapping whichever topic they read first."""

from __future__ import annotations

from services.identity import messages
from shared.contract import topics
from shared.contract.messages import decode
from shared.storage.membership import memberships_of, newest_per_record
from tests.unit.identity.support import PSEUDO, customer_of_phone, event, incoming, make_deps

LI = "+8613800138000"


def test_a_merge_in_the_batch_that_created_the_merged_record_is_newer_whichever_topic_is_read_first(tmp_path):
    deps = make_deps(tmp_path / "identity.db")
    messages.consume(incoming([event("w1", {"wechat_openid": "oX-1"}, source="wechat/oa"),
                               event("w2", {"phone": LI, "wechat_openid": "oX-1"}, source="wechat/oa")]), deps=deps)
    survivor, merged = customer_of_phone(LI), "c_" + PSEUDO("wechat_openid", "oX-1")
    sent = deps.store.outbox_pending()
    events = [m for s in sent if s.topic == topics.CUSTOMER_EVENTS for m in memberships_of(decode(s.value))]
    merges = [m for s in sent if s.topic == topics.CUSTOMER_MERGED for m in memberships_of(decode(s.value))]
    assert any(m.record_id == merged and m.customer_id == merged for m in events)  # w1 made the record its own
    assert any(m.record_id == merged and m.customer_id == survivor for m in merges)
    assert newest_per_record(events + merges)[merged].customer_id == survivor
    assert newest_per_record(merges + events)[merged].customer_id == survivor
