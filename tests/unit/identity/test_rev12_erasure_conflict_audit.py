"""Review of issue 12, D4: a conflict's audit entry names no customer, only the conflict; when one of the
customers in the conflict is erased, the person's names in that entry's reason are masked too."""

from __future__ import annotations

from services.identity import messages
from services.identity.handlers import commands, privacy
from shared.access.audit import AuditQuery
from shared.access.principals import Caller
from shared.access.scope import COMPANY
from tests.unit.identity.support import customer_of_phone, event, incoming, make_deps

LI = "+8613800138000"


def test_the_reason_of_a_conflict_decision_loses_the_erased_persons_name(tmp_path):
    deps = make_deps(tmp_path / "identity.db")
    deps.relay = lambda _outbox: None  # nothing to publish to here
    messages.consume(incoming([event("p1", {"phone": LI}, kind="crm.profile", source="web/shop", name="Zhao Lei"),
                               event("w1", {"wechat_openid": "oX-1"}, source="wechat/oa")]), deps=deps)
    messages.consume(incoming([event("w2", {"phone": LI, "wechat_openid": "oX-1"}, source="wechat/oa")]), deps=deps)
    survivor = customer_of_phone(LI)
    (merge,) = deps.store.merges([survivor])
    commands.unmerge(survivor, merge.merge_id, by="k", deps=deps)
    messages.consume(incoming([event("w3", {"phone": LI, "wechat_openid": "oX-1"}, source="wechat/oa")]), deps=deps)
    (conflict,) = deps.store.conflicts(status="open", customer_id=survivor, offset=0, limit=10)
    ops = Caller("k-ops", "operator", COMPANY, name="ops.wang")
    commands.close_conflict(conflict.conflict_id, status="dismissed", by=ops.name, note=None, deps=deps)
    commands.audit(ops, deps=deps, action="identity.conflict.dismissed", target=conflict.conflict_id,
                   reason="Zhao Lei says the WeChat account is her husband's")
    [before] = deps.store.audit_find(AuditQuery(), after=None, limit=10)
    assert before.customer_id is None and "Zhao Lei" in before.reason  # no customer: no name known to mask

    privacy.erase(survivor, reason="ticket 4711", by="k-admin", deps=deps)
    after = {e.action: e for e in deps.store.audit_find(AuditQuery(), after=None, limit=10)}
    reason = after["identity.conflict.dismissed"].reason
    assert "zhao" not in reason.lower() and "lei" not in reason.lower(), reason
    assert reason.endswith(" says the WeChat account is her husband's")
