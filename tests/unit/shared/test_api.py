"""What every service's HTTP API does before and around its routes: the key and role are checked before a
body is read, bodies are bounded and must be JSON, every error answers in the error format (and is in the
OpenAPI document), and no error drops a kept-alive connection."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time

import pytest
import uvicorn
from fastapi import APIRouter, BackgroundTasks, File, UploadFile
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from pymongo.errors import AutoReconnect, OperationFailure

from crm.broker import free_port
from shared.http.api import Caller, caller_dep, service_api
from shared.http.errors import Conflict
from shared.settings import Settings

KEYS = "k-admin:admin,k-op:operator,k-read:reader"
ADMIN, OPERATOR, READER = ({"Authorization": f"Bearer {k}"} for k in ("k-admin", "k-op", "k-read"))
LIMIT = 4096


class Note(BaseModel):
    text: str


def _fail_after_the_answer() -> None:
    raise RuntimeError("a task after the response failed")


def _router() -> APIRouter:
    r = APIRouter(prefix="/things")

    @r.get("")
    def list_things(caller: Caller = caller_dep("reader")) -> dict:
        return {"items": []}

    @r.post("/{thing_id}/notes", status_code=201)
    def post_note(thing_id: str, body: Note, caller: Caller = caller_dep("operator")) -> dict:
        if thing_id == "done":
            raise Conflict("already_done", "this thing is done")
        return {"thing_id": thing_id, "text": body.text}

    @r.post("/open", status_code=204)
    def open_route(body: Note) -> None:
        """A route that asks for no role (as a sign-in would): the gate lets it read its body."""

    @r.post("/upload", status_code=204)
    def upload(file: UploadFile = File(...), caller: Caller = caller_dep("operator")) -> None:
        """A file upload route (as POST /v1/imports is)."""

    @r.get("/crash")
    def crash(caller: Caller = caller_dep("reader")) -> dict:
        raise RuntimeError("boom")

    @r.get("/later")
    def later(background: BackgroundTasks, caller: Caller = caller_dep("reader")) -> dict:
        background.add_task(_fail_after_the_answer)
        return {"queued": True}

    @r.get("/locked")
    def locked(caller: Caller = caller_dep("reader")) -> dict:
        raise sqlite3.OperationalError("database is locked")

    @r.get("/mongo-away")
    def mongo_away(caller: Caller = caller_dep("reader")) -> dict:
        raise AutoReconnect("connection refused")

    @r.get("/write-conflict")
    def write_conflict(caller: Caller = caller_dep("reader")) -> dict:
        # MongoDB aborts a transaction that wrote a document another one wrote meanwhile (each campaigns write
        # bumps the one generation document of its log of changes): the caller may simply try again.
        raise OperationFailure("WriteConflict", code=112, details={"errorLabels": ["TransientTransactionError"]})

    @r.get("/sql-bug")
    def sql_bug(caller: Caller = caller_dep("reader")) -> dict:
        raise sqlite3.OperationalError("no such column: nmae")

    return r


def _app():
    settings = Settings(_env_file=None, api_keys=KEYS, max_body_bytes=LIMIT)
    return service_api("test", settings, [_router()], {}, CollectorRegistry())


@pytest.fixture
def http() -> TestClient:
    return TestClient(_app())


def _error(r) -> dict:
    assert r.headers["content-type"] == "application/json"
    return r.json()["error"]


def test_an_unauthenticated_malformed_body_is_401_not_422(http):
    r = http.post("/v1/things/t1/notes", content=b'{"text": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    assert _error(r) == {"code": "missing_credentials", "message": "send Authorization: Bearer <key>"}
    r = http.post("/v1/things/t1/notes", content=b"{", headers={"Content-Type": "application/json",
                                                                 "Authorization": "Bearer nope"})
    assert (r.status_code, _error(r)["code"]) == (401, "invalid_key")


def test_a_route_that_asks_for_no_role_is_open_and_the_rest_of_v1_is_not(http):
    assert http.post("/v1/things/open", json={"text": "hi"}).status_code == 204
    assert http.post("/v1/things/open", content=b"{", headers={"Content-Type": "application/json"}).status_code == 422
    assert http.get("/v1/things").status_code == 401


def test_a_reader_with_a_malformed_body_on_an_operator_route_is_403_not_422(http):
    r = http.post("/v1/things/t1/notes", content=b"{", headers={**READER, "Content-Type": "application/json"})
    assert (r.status_code, _error(r)["code"]) == (403, "forbidden")


def test_a_body_that_is_not_json_answers_invalid_json_in_the_error_format(http):
    r = http.post("/v1/things/t1/notes", content=b'{"text": ', headers={**OPERATOR, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert _error(r)["code"] == "invalid_json" and "detail" not in r.json()
    r = http.post("/v1/things/t1/notes", content=b'\xff\xfe{"text"', headers={**OPERATOR,
                                                                             "Content-Type": "application/json"})
    assert r.status_code == 422
    assert _error(r) == {"code": "invalid_json", "message": "the body is not valid JSON text (UTF-8)"}


def test_a_malformed_multipart_body_is_the_documented_422_not_a_bare_400(http):
    # Found by the OpenAPI fuzz run on POST /v1/imports: Starlette answers "Invalid multipart data" with a 400.
    boundary = "a222103b9b30b1f9e8be6882ecedb1d2"
    r = http.post("/v1/things/upload", content=f"--{boundary}\r\n[]--{boundary}--\r\n".encode(),
                  headers={"Authorization": "Bearer k-op",
                           "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert (r.status_code, _error(r)["code"]) == (422, "invalid_multipart")
    ok = http.post("/v1/things/upload", files={"file": ("a.csv", b"phone\n")},
                   headers={"Authorization": "Bearer k-op"})
    assert ok.status_code == 204, ok.text


def test_a_body_sent_as_text_plain_is_415_and_json_is_accepted(http):
    r = http.post("/v1/things/t1/notes", content=b'{"text": "hi"}', headers={**OPERATOR, "Content-Type": "text/plain"})
    assert (r.status_code, _error(r)["code"]) == (415, "unsupported_media_type")
    r = http.post("/v1/things/t1/notes", content=b'{"text": "hi"}', headers=OPERATOR)  # no Content-Type at all
    assert r.status_code == 415
    r = http.post("/v1/things/t1/notes", content=b'{"text": "hi"}',
                  headers={**OPERATOR, "Content-Type": "application/json; charset=utf-8"})
    assert (r.status_code, r.json()) == (201, {"thing_id": "t1", "text": "hi"})


def test_a_body_over_the_limit_is_413_whether_its_length_is_declared_or_it_streams(http):
    big = b'{"text": "' + b"x" * LIMIT + b'"}'
    r = http.post("/v1/things/t1/notes", content=big, headers={**OPERATOR, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert _error(r) == {"code": "body_too_large", "message": f"the request body is larger than {LIMIT} bytes",
                         "details": {"max_bytes": LIMIT}}
    chunks = iter([big[:LIMIT // 2], big[LIMIT // 2:]])  # chunked: no Content-Length up front
    r = http.post("/v1/things/t1/notes", content=chunks, headers={**OPERATOR, "Content-Type": "application/json"})
    assert (r.status_code, _error(r)["code"]) == (413, "body_too_large")
    r = http.post("/v1/things/t1/notes", content=iter([b'{"text": ', b'"ok"}']),
                  headers={**OPERATOR, "Content-Type": "application/json"})
    assert (r.status_code, r.json()["text"]) == (201, "ok")


def test_unknown_routes_and_methods_answer_in_the_error_format(http):
    r = http.get("/v1/nothing-here", headers=READER)
    assert (r.status_code, _error(r)["code"]) == (404, "not_found")
    r = http.delete("/v1/things", headers=READER)
    assert (r.status_code, _error(r)["code"], r.headers["allow"]) == (405, "method_not_allowed", "GET")
    assert http.get("/v1/nothing-here").status_code == 401  # nothing under /v1 is told to a stranger


def test_a_busy_or_unreachable_store_is_503_with_retry_after_and_a_query_bug_stays_500(http):
    for path in ("/v1/things/locked", "/v1/things/mongo-away", "/v1/things/write-conflict"):
        r = http.get(path, headers=READER)
        assert (r.status_code, _error(r)["code"], r.headers["retry-after"]) == (503, "store_unavailable", "5")
    r = http.get("/v1/things/sql-bug", headers=READER)
    assert (r.status_code, _error(r)["code"]) == (500, "internal_error")


def test_error_answers_keep_the_connection_usable():
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app(), host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            stream = conn.makefile("rb")
            crash = _exchange(conn, stream, "GET", "/v1/things/crash")
            unread = _exchange(conn, stream, "POST", "/v1/things/t1/notes", b'{"text": ', key="nope")
            typed = _exchange(conn, stream, "POST", "/v1/things/t1/notes", b'{"text": "a"}', kind="text/plain")
            later = _exchange(conn, stream, "GET", "/v1/things/later")  # its background task then fails
            listing = _exchange(conn, stream, "GET", "/v1/things")  # the same connection, still open
        assert crash[0] == 500 and b'"code":"internal_error"' in crash[1]
        assert (unread[0], typed[0], later[0]) == (401, 415, 200)
        assert listing == (200, b'{"items":[]}')
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _exchange(conn: socket.socket, stream, method: str, path: str, body: bytes = b"", *, key: str = "k-op",
              kind: str = "application/json") -> tuple[int, bytes]:
    head = (f"{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n")
    conn.sendall(head.encode() + body)
    status_line = stream.readline()
    assert status_line, "the server closed the connection"
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), stream.read(int(headers["content-length"]))


def test_the_openapi_document_declares_every_error_with_one_error_schema():
    doc = _app().openapi()
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    post = doc["paths"]["/v1/things/{thing_id}/notes"]["post"]["responses"]
    assert set(post) == {"201", "401", "403", "404", "409", "413", "415", "422", "429", "503"}
    assert all(post[code]["content"] == error for code in post if code != "201")
    for code in ("429", "503"):
        assert post[code]["headers"]["Retry-After"]["required"] is True
    listing = doc["paths"]["/v1/things"]["get"]["responses"]
    assert set(listing) == {"200", "401", "403", "422", "429", "503"}
    schemas = doc["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"]
    assert "HTTPValidationError" not in schemas
    assert not any(p.startswith(("/livez", "/readyz", "/metrics")) for p in doc["paths"])


def test_dead_letter_ids_and_offsets_past_64_bits_are_422_not_500(tmp_path):
    from services.loyalty.app import create_app
    from services.loyalty.store.sqlite import SqliteLoyaltyStore

    settings = Settings(_env_file=None, api_keys=KEYS)
    service = create_app(settings, store=SqliteLoyaltyStore(tmp_path / "l.db"), publish=lambda _: None)
    http = TestClient(service.api, headers=ADMIN)
    assert http.get("/v1/deadletters", params={"offset": 2**63}).status_code == 422
    assert http.post(f"/v1/deadletters/{2**67}/redrive").status_code == 422
    # Offsets are bounded by shared.http.bounds (10 million rows) on every list route: at the bound, an empty page.
    assert http.get("/v1/deadletters", params={"offset": 10_000_001}).status_code == 422
    assert http.get("/v1/deadletters", params={"offset": 10_000_000}).json()["items"] == []
    assert http.post(f"/v1/deadletters/{2**63 - 1}/redrive").json()["error"]["code"] == "dead_letter_not_found"
