"""A reply resolved to another customer than its touch's member (issue 14 review): a gateway that reports B's
reply under A's touch id must not get A the follow-up. The reply still counts for the touch's status (the
message was delivered and answered), is counted as ``mismatched_replies`` in its group, and moves no one on;
a member merged into another customer since the launch still gets the follow-up for their own reply."""

from __future__ import annotations

import csv
import io

from tests.integration.campaigns.test_receipts import CID, delivery, touches
from tests.integration.campaigns.test_receipts import world as world  # noqa: F401 (the fixture)
from tests.unit.campaigns.factory import at


def _follow_ups(world) -> list[str]:
    return [m["customer_id"] for m in world.messages("crm.campaigns.touches") if m.get("step") == "follow_up"]


def test_a_reply_from_another_customer_counts_for_the_touch_but_moves_no_one_on(world):  # noqa: F811
    sent = touches(world)
    a, b = sorted(sent)[:2]
    world.now = at(10, 7)
    # The gateway reports B's reply (identity resolved it to B) under A's touch id.
    out = world.feed([delivery(b, "r-x", at(10, 3), sent[a]["touch_id"], "replied", reply_text="确认")])
    assert (out.processed, out.counts["follow_up:mismatched_reply"]) == (1, 1)
    assert _follow_ups(world) == []
    got = world.http.get(f"/v1/campaigns/{CID}/results").json()["overall"]["treatment"]["delivery"]
    assert (got["replied"], got["mismatched_replies"], got["follow_ups"]) == (1, 1, 0)
    rows = list(csv.DictReader(io.StringIO(world.http.get(f"/v1/campaigns/{CID}/results.csv").text)))
    [row] = [r for r in rows if (r["breakdown"], r["group"]) == ("overall", "treatment")]
    assert (row["replied"], row["mismatched_replies"], row["follow_ups"]) == ("1", "1", "0")
    [seg] = [s for s in world.http.get(f"/v1/campaigns/{CID}/results").json()["breakdowns"]["age_band"]
             if s["treatment"]["delivery"]["mismatched_replies"]]
    assert seg["treatment"]["delivery"]["mismatched_replies"] == 1
    # A's own reply to the same touch still moves A on.
    world.feed([delivery(a, "r-a", at(10, 4), sent[a]["touch_id"], "replied", reply_text="确认")])
    assert _follow_ups(world) == [a]
    got = world.http.get(f"/v1/campaigns/{CID}/results").json()["overall"]["treatment"]["delivery"]
    assert (got["replied"], got["mismatched_replies"], got["follow_ups"]) == (1, 1, 1)


def test_a_member_merged_into_another_customer_since_the_launch_is_followed_up_for_their_reply(world):  # noqa: F811
    sent = touches(world)
    a = sorted(sent)[0]
    world.now = at(10, 7)
    # Staff merged A into c_rc_survivor: A's record now resolves to the survivor, and the receipt says so.
    out = world.feed([delivery("c_rc_survivor", "r-m", at(10, 3), sent[a]["touch_id"], "replied",
                               reply_text="确认", record=a)])
    assert out.counts["follow_up:mismatched_reply"] == 0
    assert _follow_ups(world) == ["c_rc_survivor"]
    got = world.http.get(f"/v1/campaigns/{CID}/results").json()["overall"]["treatment"]["delivery"]
    assert (got["replied"], got["mismatched_replies"], got["follow_ups"]) == (1, 0, 1)
