"""Review of issue 12, D7 and D8: ids cannot be probed through unmerge or an erasure's status.

Unmerge answers a made-up merge id, another customer's (another store's) merge id and, to a scoped caller,
a customer it cannot see, with one 404 body each time; 409 ``merge_already_undone`` only for a merge of this
customer. ``GET /v1/erasures/{id}`` is for company-wide admins, like the audit log: a scoped admin gets the
same 403 for any id, known or not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.settings import Settings
from tests.integration.flows.support import identity_alone
from tests.unit.identity.support import event, purchase

ADMIN, S01_ADMIN, S02_ADMIN = "k-rev12-admin-0001", "k-rev12-s01-admin", "k-rev12-s02-admin"
STORES = "store_id,name,region,timezone,parent\nS01,A,east,Asia/Shanghai,\nS02,B,east,Asia/Shanghai,\n"
PHONES = {"S01": "+8613512340001", "S02": "+8613512340002"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def http(tmp_path) -> Iterator[TestClient]:
    """Identity with a customer at S01 and one at S02, each the survivor of one merge (a WeChat follower
    who later gave the phone)."""
    (tmp_path / "stores.csv").write_text(STORES)
    settings = Settings(_env_file=None, data_dir=str(tmp_path), stores_file=str(tmp_path / "stores.csv"),
                        api_keys=f"{ADMIN}:admin,{S01_ADMIN}:admin@store=S01,{S02_ADMIN}:admin@store=S02",
                        pseudonym_secret="rev12-pseudonym-key-0123", token_secret="t" * 40)
    with identity_alone(settings, ADMIN) as (_app, client, ingest):
        for n, (store, phone) in enumerate(PHONES.items()):
            ingest(purchase(f"p{n}", {"phone": phone}, "88.00", store_id=store),
                   event(f"f{n}", {"wechat_openid": f"oRev12{n}"}, kind="crm.follow", source="wechat/oa"))
            ingest(event(f"g{n}", {"wechat_openid": f"oRev12{n}", "phone": phone}, kind="crm.follow",
                         source="wechat/oa"))
        yield client


def customer(http: TestClient, store: str) -> str:
    r = http.get("/v1/customers/lookup", params={"phone": PHONES[store]}, headers=auth(ADMIN))
    assert r.status_code == 200, r.text
    return r.json()["customer_id"]


def merge_of(http: TestClient, store: str) -> str:
    [one] = http.get(f"/v1/customers/{customer(http, store)}/merges", headers=auth(ADMIN)).json()["items"]
    return one["merge_id"]


def test_unmerge_answers_a_made_up_and_another_stores_merge_id_alike(http):
    mine, theirs = customer(http, "S01"), customer(http, "S02")
    mine_merge, their_merge = merge_of(http, "S01"), merge_of(http, "S02")

    def unmerge(key: str, who: str, merge_id: str):
        return http.post(f"/v1/customers/{who}/unmerge", headers=auth(key), json={"merge_id": merge_id})

    made_up = unmerge(S01_ADMIN, mine, "m_made_up_0001")
    assert made_up.status_code == 404, made_up.text
    for key in (S01_ADMIN, ADMIN):  # another store's merge through a customer one may see
        other = unmerge(key, mine, their_merge)
        assert (other.status_code, other.json()) == (404, made_up.json())
    # Undone already: a 409 for that customer's own merge only; through anyone else it is still "no such merge".
    assert unmerge(S02_ADMIN, theirs, their_merge).status_code == 200
    again = unmerge(S02_ADMIN, theirs, their_merge)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "merge_already_undone")
    for key in (S01_ADMIN, ADMIN):
        other = unmerge(key, mine, their_merge)
        assert (other.status_code, other.json()) == (404, made_up.json())
    # A customer the scoped caller cannot see answers as an unknown customer, whatever the merge id.
    unknown = unmerge(S01_ADMIN, "c_" + "0" * 26, mine_merge)
    for merge_id in (their_merge, "m_made_up_0001"):
        hidden = unmerge(S01_ADMIN, theirs, merge_id)
        assert (hidden.status_code, hidden.json()) == (404, unknown.json())
    assert unmerge(S01_ADMIN, mine, mine_merge).status_code == 200


def test_an_erasures_status_is_for_company_wide_admins_only(http):
    erased = http.post(f"/v1/customers/{customer(http, 'S02')}/erasure", headers=auth(ADMIN),
                       json={"reason": "ticket 4711"})
    assert erased.status_code == 202, erased.text
    erasure_id = erased.json()["erasure_id"]
    assert http.get(f"/v1/erasures/{erasure_id}", headers=auth(ADMIN)).json()["services"]["identity"] == "done"
    answers = [http.get(f"/v1/erasures/{eid}", headers=auth(key))
               for key in (S01_ADMIN, S02_ADMIN) for eid in (erasure_id, "er_unknown_000000000000")]
    assert {(r.status_code, r.text) for r in answers} == {(403, answers[0].text)}
    assert answers[0].json()["error"]["code"] == "forbidden_scope"
    assert http.get("/v1/erasures/er_unknown_000000000000", headers=auth(ADMIN)).status_code == 404
