"""Encryption at rest, end to end: a customer's phone, name, birthday, e-mail and free text go through all
four services, and none of it can be read from the SQLite files (their -wal files included) without the
master key, while the APIs, holding the key, show every value as it was sent."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.contract import topics
from shared.settings import Settings
from shared.storage.crypto import MasterKeyError, new_master_key
from tests.e2e.helpers import PersonalData
from tests.integration.flows.support import ADMIN, OPERATOR, READER, Flow, at, event, purchase, running_flow

pytestmark = pytest.mark.broker

PHONE = "13512340001"
BACKUP = "13698760002"
NAME = "Atrest Zhangsanfeng"
NAME_ZH = "张三丰甲"
BIRTHDAY = "1985-03-12"
EMAIL = "sanfeng.atrest@example.com"
COMPLAINT = "waited forty minutes at the jade counter"
COMMENT = "the jade counter staff never smiled"
CUSTOM = "prefers the quiet window seat"
SECRETS = [NAME, NAME_ZH, EMAIL, COMPLAINT, COMMENT, CUSTOM, "sanfeng.atrest", "window seat", "jade counter"]


@pytest.fixture
def master_key() -> str:
    return new_master_key()


@pytest.fixture
def flow(broker, tmp_path, master_key) -> Iterator[Flow]:
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path / "data"),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader",
                        pseudonym_secret="atrest-test-secret-0123456789", master_key=master_key)
    with running_flow(settings) as flow:
        yield flow


def _scenario(flow: Flow) -> str:
    flow.set_clocks(at("2026-11-20T12:00"))
    who = {"phone": "135 1234 0001"}
    flow.ingest(
        purchase(who, at("2026-10-20T12:00"), "120.00", store="SH-004"),
        event("crm.profile", at("2026-10-21T09:00"), {**who, "email": EMAIL, "mobile_backup": BACKUP},
              source="web/shop", name=NAME, birthday=BIRTHDAY, email=EMAIL, gender="F",
              attributes={"custom": CUSTOM, "nickname": NAME_ZH}),
        event("crm.complaint", at("2026-11-20T11:00"), who, source="wechat/oa", text=COMPLAINT,
              store_id="SH-004", severity="high"),
        event("crm.survey", at("2026-11-20T11:30"), who, source="web/shop", score=3, comment=COMMENT),
    )
    # An event that cannot be read at all (cut off): a dead letter, kept before any customer is known.
    cut = f'{{"specversion": "1.0", "id": "cut-1", "source": "pos/SH-004", "data": {{"identity": {{"phone": "{PHONE}"'
    flow.platform.send(topics.CHANNEL_TOPICS["pos"], [cut.encode()])
    flow.platform.settle()
    customer = flow.customer_id(phone=PHONE)
    _loyalty_notes(flow, customer)
    return customer


# Staff notes in loyalty (an adjustment's reason, a cancelled redemption's reason) name the customer.
NOTE = f"{NAME} asked by phone {PHONE}, born {BIRTHDAY}"


def _loyalty_notes(flow: Flow, customer: str) -> None:
    operator = flow.platform["loyalty"].api(OPERATOR)
    admin = flow.platform["loyalty"].api(ADMIN)
    assert operator.post(f"/v1/loyalty/accounts/{customer}/adjustments", json={"points": 500, "reason": NOTE},
                         headers={"Idempotency-Key": "atrest-adj-1"}).status_code == 201
    reward = admin.post("/v1/loyalty/rewards", json={"name": "Tea set", "points_cost": 100, "stock": 5})
    assert reward.status_code == 201, reward.text
    red = operator.post(f"/v1/loyalty/accounts/{customer}/redemptions", json={"reward_id": reward.json()["reward_id"]})
    assert red.status_code == 201, red.text
    cancel = operator.post(f"/v1/loyalty/redemptions/{red.json()['redemption_id']}/cancel", json={"reason": NOTE})
    assert cancel.status_code == 200, cancel.text


def _store_files(data: Path) -> list[Path]:
    files = sorted(p for p in data.rglob("*") if p.is_file() and (".db" in p.name))
    assert any(p.name.endswith("-wal") for p in files), "the scan must cover the WAL files too"
    assert {p.name.split(".")[1] for p in files if p.name.startswith("crm.")} >= {
        "identity", "loyalty", "alerts", "campaigns"}
    return files


def test_no_personal_field_is_readable_in_the_store_files_without_the_master_key(flow: Flow, tmp_path):
    customer = _scenario(flow)
    data = tmp_path / "data"
    scan = PersonalData([PHONE, BACKUP], dates=[BIRTHDAY, BIRTHDAY.replace("-", "")], texts=SECRETS)
    found = []
    for path in _store_files(data):
        raw = path.read_bytes()
        for text in (raw.decode("latin-1"), raw.decode("utf-8", errors="replace")):
            if (m := scan.search(text)) is not None:
                found.append((path.name, m.group(0)))
        found += [(path.name, s) for s in (NAME_ZH, COMPLAINT) if s.encode() in raw]
    assert found == []

    # With the master key, every service shows what was sent (to an admin who reveals it: reads are masked).
    admin = flow.platform["identity"].api(ADMIN)
    view = admin.get(f"/v1/customers/{customer}", params={"reveal": "true"}).json()
    assert view["phone"] == "+8613512340001"
    assert (view["attributes"]["name"], view["attributes"]["birthday"], view["attributes"]["email"]) == (
        NAME, BIRTHDAY, EMAIL)
    assert {(i["type"], i["value"]) for i in view["identifiers"]} >= {("phone", "+8613512340001"), ("email", EMAIL)}
    revealed = admin.get(f"/v1/customers/{customer}/timeline", params={"limit": 50, "reveal": "true"})
    timeline = json.dumps(revealed.json(), ensure_ascii=False)
    assert COMPLAINT in timeline and COMMENT in timeline and CUSTOM in timeline and BACKUP in timeline
    assert admin.get("/v1/customers/lookup", params={"email": EMAIL}).json()["customer_id"] == customer
    letters = admin.get("/v1/deadletters", params={"reveal": "true"}).json()
    assert any(PHONE in json.dumps(x) for x in letters["items"]), letters
    assert set(flow.open_alerts(customer)) >= {"complaint", "survey_low"}
    loyalty = flow.platform["loyalty"].api(ADMIN)
    ledger = loyalty.get(f"/v1/loyalty/accounts/{customer}/ledger", params={"reveal": "true"}).json()["items"]
    assert [e["cause"]["reason"] for e in ledger if e["rule"] in ("manual", "cancel")] == [NOTE, NOTE]


def test_a_store_opened_with_another_master_key_fails_clearly(flow: Flow, tmp_path):
    _scenario(flow)
    from services.identity.app import open_store

    with pytest.raises(MasterKeyError, match="CRM_MASTER_KEY does not open this store's data keys"):
        open_store(f"sqlite:///{tmp_path}/data/crm.db", master_key=os.urandom(32))


def test_every_file_and_directory_under_the_data_dir_is_the_owners_alone(flow: Flow, tmp_path):
    _scenario(flow)
    data = tmp_path / "data"
    loose = [(str(p.relative_to(tmp_path)), oct(stat.S_IMODE(p.stat().st_mode)))
             for p in [data, *data.rglob("*")]
             if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert loose == []
