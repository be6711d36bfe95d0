"""The /v1/webhooks routes on the alerts service's port: admin only, the secret shown once, URLs checked."""

from __future__ import annotations

import pytest

from shared.webhooks.config import WebhooksConfig
from tests.integration.webhooks.harness import READER, Host


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path / "alerts.db")
    yield h
    h.stop()


def test_create_shows_a_generated_secret_once(host):
    r = host.api.post("/v1/webhooks", json={"url": "https://hooks.example.com/crm",
                                            "event_types": ["alert.opened", "alert.escalated", "alert.opened"],
                                            "description": "ops pager"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["secret"].startswith("whsec_") and len(made["secret"]) == 54
    assert made["event_types"] == ["alert.opened", "alert.escalated"] and made["enabled"] is True
    assert made["created_by"].startswith("api-key-")
    wid = made["webhook_id"]
    one = host.api.get(f"/v1/webhooks/{wid}").json()
    assert one["secret"] is None and one["url"] == "https://hooks.example.com/crm"
    listed = host.api.get("/v1/webhooks").json()
    assert listed["total"] == 1 and listed["items"][0]["secret"] is None
    assert host.hooks.store.subscription(wid).secret == made["secret"]  # what the dispatcher signs with


def test_a_given_secret_is_kept_and_never_echoed(host):
    r = host.api.post("/v1/webhooks", json={"url": "http://10.0.0.5:8080/in", "event_types": ["tier.changed"],
                                            "secret": "my-own-secret-0123"})
    assert r.status_code == 201 and r.json()["secret"] is None
    assert host.hooks.store.subscription(r.json()["webhook_id"]).secret == "my-own-secret-0123"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com",
                                 "https://user:pw@example.com/x", "http:///nohost", "not a url"])
def test_only_http_urls_are_accepted(host, url):
    r = host.api.post("/v1/webhooks", json={"url": url, "event_types": ["campaign.touch"]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_url"
    assert url not in r.text


def test_private_addresses_are_refused_by_default(tmp_path):
    # The service's own default, not the harness's (whose receivers listen on loopback).
    h = Host(tmp_path / "alerts.db", block_private=WebhooksConfig(_env_file=None).block_private)
    for url in ("http://127.0.0.1:8080/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
                "http://10.1.2.3/x", "http://localhost/x"):
        r = h.api.post("/v1/webhooks", json={"url": url, "event_types": ["campaign.touch"]})
        assert r.status_code == 422 and "private" in r.json()["error"]["message"], (url, r.text)
    r = h.api.post("/v1/webhooks", json={"url": "http://93.184.216.34/x", "event_types": ["campaign.touch"]})
    assert r.status_code == 201


def test_unknown_event_types_are_refused(host):
    r = host.api.post("/v1/webhooks", json={"url": "https://example.com", "event_types": ["alert.closed"]})
    assert r.status_code == 422
    r = host.api.post("/v1/webhooks", json={"url": "https://example.com", "event_types": []})
    assert r.status_code == 422
    assert host.api.get("/v1/webhooks/event-types").json() == [
        "alert.opened", "alert.escalated", "points.expiring", "tier.changed", "campaign.touch"]


def test_patch_and_delete(host):
    wid = host.subscribe("https://example.com/a", "campaign.touch")
    r = host.api.patch(f"/v1/webhooks/{wid}", json={"url": "https://example.com/b",
                                                    "event_types": ["points.expiring"], "enabled": False})
    assert r.status_code == 200
    assert (r.json()["url"], r.json()["event_types"], r.json()["enabled"]) == (
        "https://example.com/b", ["points.expiring"], False)
    assert host.api.patch(f"/v1/webhooks/{wid}", json={"enabled": True}).json()["enabled"] is True
    r = host.api.delete(f"/v1/webhooks/{wid}")
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert host.api.get(f"/v1/webhooks/{wid}").json()["enabled"] is False
    assert host.api.patch(f"/v1/webhooks/{wid}", json={"url": "ftp://x"}).status_code == 422


def test_unknown_ids_are_404(host):
    for method, path in (("get", "/v1/webhooks/wh_nope"), ("delete", "/v1/webhooks/wh_nope"),
                         ("get", "/v1/webhooks/wh_nope/deliveries"),
                         ("post", "/v1/webhooks/wh_nope/deliveries/dl_nope/redeliver")):
        r = getattr(host.api, method)(path)
        assert r.status_code == 404, (method, path, r.text)
    wid = host.subscribe("https://example.com/a", "campaign.touch")
    r = host.api.post(f"/v1/webhooks/{wid}/deliveries/dl_nope/redeliver")
    assert r.status_code == 404 and r.json()["error"]["code"] == "delivery_not_found"


def test_admin_only(host):
    wid = host.subscribe("https://example.com/a", "campaign.touch")
    reader = {"Authorization": f"Bearer {READER}"}
    for method, path in (("get", "/v1/webhooks"), ("get", f"/v1/webhooks/{wid}"),
                         ("get", f"/v1/webhooks/{wid}/deliveries"), ("delete", f"/v1/webhooks/{wid}")):
        assert getattr(host.api, method)(path, headers=reader).status_code == 403
    r = host.api.post("/v1/webhooks", headers=reader, json={"url": "https://e.com", "event_types": ["tier.changed"]})
    assert r.status_code == 403
    assert host.api.get("/v1/webhooks", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_subscription_changes_are_audited(host):
    wid = host.subscribe("https://example.com/a", "campaign.touch")
    host.api.delete(f"/v1/webhooks/{wid}")
    from shared.contract.messages import decode

    acts = [(m.action, m.target) for m in (decode(out.value) for out in host.sent)]
    assert acts == [("webhook.create", wid), ("webhook.disable", wid)]


def test_a_store_scoped_admin_may_not_subscribe(tmp_path):
    from fastapi.testclient import TestClient

    from services.alerts.app import create_app
    from shared.settings import Settings

    settings = Settings(_env_file=None, api_keys="k-s01:admin@store=S01,k-all:admin")
    service = create_app(settings, store=_store(tmp_path), publish=lambda _: None)
    scoped = TestClient(service.api, headers={"Authorization": "Bearer k-s01"})
    r = scoped.post("/v1/webhooks", json={"url": "https://e.com", "event_types": ["alert.opened"]})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden_scope")
    assert scoped.get("/v1/webhooks").status_code == 403
    whole = TestClient(service.api, headers={"Authorization": "Bearer k-all"})
    assert whole.get("/v1/webhooks").status_code == 200


def test_a_reader_with_a_bad_body_is_refused_for_its_role_first(host):
    r = host.api.post("/v1/webhooks", headers={"Authorization": f"Bearer {READER}"}, content=b"{not json")
    assert r.status_code == 403


def _store(tmp_path):
    from services.alerts.store.sqlite import SqliteAlertsStore

    return SqliteAlertsStore(tmp_path / "scoped.db")
