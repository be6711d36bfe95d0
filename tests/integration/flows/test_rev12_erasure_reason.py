"""Review of issue 12, D4: an erasure leaves none of the erased person's names in clear in what identity
keeps: the erasure's reason, its audit entry, earlier audit entries about the person, and the bytes of
identity's SQLite file and write-ahead log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.access.audit import AuditEntry
from shared.settings import Settings
from shared.storage.base import sqlite_path
from tests.integration.flows.support import identity_alone
from tests.unit.identity.support import event, purchase

ADMIN = "k-rev12-admin-0001"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
PHONE = "+8613512340001"


@pytest.fixture
def identity(tmp_path) -> Iterator[tuple]:
    settings = Settings(_env_file=None, data_dir=str(tmp_path), api_keys=f"{ADMIN}:admin",
                        pseudonym_secret="rev12-pseudonym-key-0123", token_secret="t" * 40)
    with identity_alone(settings, ADMIN) as (app, http, ingest):
        yield app, http, ingest


def _identity_bytes(data_dir: Path) -> bytes:
    path = Path(sqlite_path(f"sqlite:///{data_dir}/crm.db", "identity"))
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_an_erasure_keeps_no_name_of_the_person_in_its_reason_the_audit_log_or_the_file(identity, tmp_path):
    app, http, ingest = identity
    ingest(event("t1", {"phone": PHONE, "wechat_openid": "oWangFang01"}, kind="crm.profile", source="web/shop",
                 name="Wang Fang", birthday="1985-03-12"),
           purchase("t2", {"phone": PHONE}, "10.00", store_id="S01"))
    customer = http.get("/v1/customers/lookup", params={"phone": PHONE}, headers=AUTH).json()["customer_id"]
    # An entry about the person written before their name was known to identity (so nothing masked it then).
    app.deps.store.audit_add([AuditEntry(audit_id="au_before", at="2026-06-01T08:00:00.000000Z", service="loyalty",
                                         actor="ops", role="operator", scope="company", action="loyalty.adjustment",
                                         customer_id=customer, target="adj_1", reason="MRS WANG FANG complained")])
    r = http.post(f"/v1/customers/{customer}/erasure", headers=AUTH,
                  json={"reason": "Wang Fang (oWangFang01) asked to be forgotten, PIPL 47, born 1985-03-12"})
    assert r.status_code == 202, r.text
    erasure_id = r.json()["erasure_id"]

    entries = {e["action"]: e for e in http.get("/v1/audit", headers=AUTH).json()["items"]}
    erasure, before = entries["privacy.erasure"], entries["loyalty.adjustment"]
    # The masks' exact shape is the masking module's; what matters here is what is left of the person.
    assert erasure["target"] == erasure_id and erasure["customer_id"] == customer
    assert erasure["reason"].startswith("W") and "asked to be forgotten, PIPL 47, born " in erasure["reason"]
    assert before["reason"].startswith("MRS W") and before["reason"].endswith(" complained")
    assert app.deps.store.erasure(erasure_id).reason == erasure["reason"]
    for reason in (erasure["reason"], before["reason"]):
        for clear in ("wang", "fang", "owangfang01", "1985"):
            assert clear not in reason.lower(), reason
    kept = _identity_bytes(tmp_path)
    for clear in (b"Wang Fang", b"Wang", b"WANG", b"oWangFang01", b"1985-03-12"):
        assert clear not in kept, clear


def test_audit_reasons_without_a_customer_are_scrubbed_when_kept(identity):
    app, http, _ingest = identity
    # An entry another service published (a campaign moved, a redrive) reaches identity with a phone in it.
    from services.identity.handlers.commands import keep_audit_entries
    keep_audit_entries([AuditEntry(audit_id="au_x", at="2026-06-01T08:00:00.000000Z", service="campaigns",
                                   actor="ops", role="admin", scope="company", action="campaigns.cancel",
                                   customer_id=None, target="cmp_1",
                                   reason="asked by 135 1234 0001, ops@example.com on 2026-05-01")], deps=app.deps)
    [one] = http.get("/v1/audit", headers=AUTH).json()["items"]
    assert one["reason"] == "asked by *******0001, o***@example.com on ****-**-**"
