"""Failure reasons in results (issue 14 review): a gateway's reason is free text that may name the person it
could not reach, so results (JSON and CSV) show it only when it is a code or a common carrier reason, and
count anything else as ``other``; the full reason stays in the store for an admin's export."""

from __future__ import annotations

import csv
import io

from tests.integration.campaigns.test_receipts import CID, delivery, touches
from tests.integration.campaigns.test_receipts import world as world  # noqa: F401 (the fixture)
from tests.unit.campaigns.factory import at

REASONS = ["张伟 refused: wrong person", "SMS:UNDELIV", "E102", "停机", "invalid_number", "号码 13800138000 不存在"]


def test_only_codes_and_carrier_reasons_are_shown_in_results_the_rest_is_other(world):  # noqa: F811
    sent = touches(world)
    treated = sorted(sent)
    world.feed([delivery(c, f"f-{i}", at(10, 1), sent[c]["touch_id"], "failed", reason=r)
                for i, (c, r) in enumerate(zip(treated, REASONS, strict=False))])
    shown = {"E102": 1, "SMS:UNDELIV": 1, "invalid_number": 1, "other": 2, "停机": 1}
    results = world.http.get(f"/v1/campaigns/{CID}/results").json()
    assert results["overall"]["treatment"]["delivery"]["failure_reasons"] == shown
    for seg in results["breakdowns"]["age_band"]:  # segments too
        assert set(seg["treatment"]["delivery"]["failure_reasons"]) <= set(shown)
    rows = list(csv.DictReader(io.StringIO(world.http.get(f"/v1/campaigns/{CID}/results.csv").text)))
    [row] = [r for r in rows if (r["breakdown"], r["group"]) == ("overall", "treatment")]
    assert row["failure_reasons"] == "E102=1;SMS:UNDELIV=1;invalid_number=1;other=2;停机=1"
    assert not any("张伟" in str(v) for r in rows for v in r.values())
    # The admin's export of the person keeps the reason as it was kept (scrubbed of the phone, sealed at rest).
    doc = world.http.get(f"/v1/customers/{treated[0]}/export", headers={"Authorization": "Bearer ad"}).json()
    assert [x["failure_reason"] for x in doc["touches"]] == ["张伟 refused: wrong person"]
