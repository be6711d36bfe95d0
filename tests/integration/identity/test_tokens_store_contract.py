"""Identity's store contract for signed-out staff tokens: an id kept once until its token would have expired,
looked up and listed the same on every backend."""

from __future__ import annotations


def test_a_signed_out_token_is_kept_until_it_would_have_expired(store):
    with store.transaction():
        store.revoke_token("jti-b", expires_at=2_000, at="2026-12-05T01:00:00.000000Z", now=1_000)
        store.revoke_token("jti-a", expires_at=1_500, at="2026-12-05T01:00:01.000000Z", now=1_000)
        # Signed out twice (a double click): one row, its first expiry kept.
        store.revoke_token("jti-b", expires_at=9_999, at="2026-12-05T01:00:02.000000Z", now=1_000)
    assert (store.token_revoked("jti-a"), store.token_revoked("jti-b"), store.token_revoked("jti-c")) == (
        True, True, False)
    assert store.revoked_tokens(now=1_000) == [("jti-a", 1_500), ("jti-b", 2_000)]
    assert store.revoked_tokens(now=1_500) == [("jti-b", 2_000)]
    # The next sign-out forgets the ids whose tokens have expired: nothing could present them any more.
    with store.transaction():
        store.revoke_token("jti-c", expires_at=3_000, at="2026-12-05T01:30:00.000000Z", now=1_500)
    assert (store.token_revoked("jti-a"), store.token_revoked("jti-b"), store.token_revoked("jti-c")) == (
        False, True, True)
    assert store.revoked_tokens(now=0) == [("jti-b", 2_000), ("jti-c", 3_000)]


def test_a_sign_out_rolled_back_keeps_nothing(tx_store):
    try:
        with tx_store.transaction():
            tx_store.revoke_token("jti-x", expires_at=2_000, at="2026-12-05T01:00:00.000000Z", now=1_000)
            raise RuntimeError("the audit entry failed")
    except RuntimeError:
        pass
    assert tx_store.token_revoked("jti-x") is False
    assert tx_store.revoked_tokens(now=0) == []
