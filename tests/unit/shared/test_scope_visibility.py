"""Issue 12, scoped access: keys carry a scope (``key:role@store=S01`` / ``@region=east``), and a caller's
scope decides which owning stores it sees and answers an unseen customer exactly as an unknown one."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.identity.domain.owner import changed_owners, owning_store
from shared.access.auth import Authenticator
from shared.access.scope import Scope
from shared.access.visibility import Seeing, Visibility, customer_not_found
from shared.http.errors import Forbidden, NotFound
from shared.settings import Settings
from shared.storage.owners import OwnerRow, newest_per_customer

REGIONS = {"S01": "east", "S02": "east", "S03": "west"}


def test_a_store_scope_sees_its_store_only_and_answers_others_as_unknown():
    seeing = Visibility(Scope("store", "S01"))
    owners = {"c_a": "S01", "c_b": "S02", "c_n": None}
    assert seeing.stores == frozenset({"S01"}) and seeing.visible(owners) == {"c_a"}
    assert seeing.check("c_a", owners.get) == "c_a"
    for other in ("c_b", "c_n"):
        with pytest.raises(NotFound) as caught:
            seeing.check(other, owners.get)
        assert caught.value.payload() == customer_not_found().payload() == {
            "error": {"code": "customer_not_found", "message": "no customer with that id"}}
    with pytest.raises(Forbidden):
        seeing.company_only("launching a campaign")


def test_a_region_scope_sees_the_stores_of_its_region_and_the_company_sees_everyone():
    east = Visibility(Scope("region", "east"), REGIONS.get, frozenset(REGIONS))
    assert east.stores == frozenset({"S01", "S02"})
    assert east.visible({"c_a": "S01", "c_b": "S02", "c_c": "S03", "c_n": None}) == {"c_a", "c_b"}
    everyone = Visibility()
    assert everyone.stores is None and everyone.visible({"c_c": "S03", "c_n": None}) == {"c_c", "c_n"}
    everyone.company_only("launching a campaign")
    # Without the stores registry nothing has a region: a region scope sees nobody rather than everybody.
    assert Visibility(Scope("region", "east")).visible({"c_a": "S01"}) == set()


def test_the_owning_store_is_the_managers_store_else_the_home_store_and_only_changes_are_announced():
    days = [("S01", 2, "2026-11-03"), ("S02", 2, "2026-11-05"), ("S03", 1, "2026-11-09")]
    assert owning_store(days) == "S02"  # a tie on days goes to the most recent
    assert owning_store(days, manager_store="S09") == "S09"
    assert owning_store([]) is None
    assert changed_owners({"c_a": "S01", "c_b": "S02", "c_c": None}, {"c_a": "S01", "c_b": "S01"}) == {"c_b": "S02"}


def test_a_customer_who_never_bought_belongs_to_the_store_of_their_latest_complaint():
    # The same rule alerts route a complaint by: home store first, the complaint store only without one.
    assert owning_store([], complaint_store="S01") == "S01"
    assert owning_store([("S02", 1, "2026-11-01")], complaint_store="S01") == "S02"
    assert owning_store([], complaint_store="S01", manager_store="S09") == "S09"
    assert owning_store([], complaint_store=None) is None


def test_of_several_owner_rows_the_newest_wins_and_a_tie_goes_to_the_last_given():
    rows = [OwnerRow("c_a", "S01", "T2"), OwnerRow("c_a", "S02", "T1"), OwnerRow("c_b", "S01", "T1"),
            OwnerRow("c_b", "S03", "T1")]
    assert {c: r.store_id for c, r in newest_per_customer(rows).items()} == {"c_a": "S01", "c_b": "S03"}


def test_a_route_sees_through_the_stores_registry_the_app_holds():
    class Registry:
        def region_of(self, store_id: str) -> str | None:
            return REGIONS.get(store_id)

        def known(self) -> frozenset[str]:
            return frozenset(REGIONS)

    app = FastAPI()
    app.state.auth = Authenticator(Settings(_env_file=None, api_keys="east-key:reader@region=east,all-key:reader"))
    app.state.stores = Registry()

    @app.get("/stores")
    def stores(seeing: Seeing) -> list[str] | None:
        return sorted(seeing.stores) if seeing.stores is not None else None

    http = TestClient(app)
    assert http.get("/stores", headers={"Authorization": "Bearer east-key"}).json() == ["S01", "S02"]
    assert http.get("/stores", headers={"Authorization": "Bearer all-key"}).json() is None
