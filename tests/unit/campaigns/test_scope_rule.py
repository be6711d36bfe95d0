"""Issue 12: which campaigns a scoped caller may define: a region-scoped one those confined to its region."""

from __future__ import annotations

import pytest

from services.campaigns.domain.definition import Definition, confined_to
from services.campaigns.handlers.commands import may_define
from shared.access.scope import Scope
from shared.access.visibility import Visibility
from shared.http.errors import Forbidden

REGIONS = {"S01": "east", "S02": "east", "S03": "west"}
EAST = Visibility(Scope("region", "east"), REGIONS.get, frozenset(REGIONS))
BASE = {"name": "Tea", "objective": "promotion", "channel": "sms",
        "starts_at": "2026-11-20T00:00:00+08:00", "ends_at": "2026-11-30T00:00:00+08:00"}


def _definition(**audience) -> Definition:
    return Definition.model_validate({**BASE, "audience": audience})


@pytest.mark.parametrize(("homes", "expected"), [
    (["S01", "S02"], (True, [])),
    (["S03", "S01", "S09"], (False, ["S03", "S09"])),
    (None, (False, [])),
])
def test_an_audience_is_confined_when_every_home_store_is_in_the_stores(homes, expected):
    assert confined_to(_definition(home_stores=homes), frozenset({"S01", "S02"})) == expected


def test_a_region_key_may_define_only_an_audience_confined_to_its_region():
    may_define(_definition(home_stores=["S01", "S02"]), seeing=EAST)
    may_define(_definition(tiers=["A"]), seeing=Visibility())  # company-wide: anything
    with pytest.raises(Forbidden) as caught:
        may_define(_definition(home_stores=["S02", "S03"]), seeing=EAST)
    assert (caught.value.code, caught.value.message, caught.value.details) == (
        "forbidden_scope", "audience.home_stores outside region east: S03", {"stores_outside": ["S03"]})
    with pytest.raises(Forbidden) as caught:
        may_define(_definition(tiers=["A"]), seeing=EAST)
    assert caught.value.message == "a key scoped to region east must give audience.home_stores, every one in its region"
    with pytest.raises(Forbidden) as caught:
        may_define(_definition(home_stores=["S01"]), seeing=Visibility(Scope("store", "S01"), REGIONS.get))
    assert caught.value.code == "forbidden_scope"
