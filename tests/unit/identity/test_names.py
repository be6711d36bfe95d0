"""Issue 16: how a name is compared for search (NFKC, case folded, no whitespace) and its keyed index entry."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from services.identity.config import IdentityConfig
from services.identity.domain.names import DEV_NAME_INDEX_KEY, NameIndex, normal_name

KEY = b"k" * 32


def test_full_width_and_half_width_spaces_and_case_compare_equal():
    assert normal_name("ＬＩ　Ｌｅｉ") == normal_name("li lei") == normal_name(" Li\tLEI\n") == "lilei"
    assert normal_name("张 三") == normal_name("张\u3000三") == "张三"
    assert normal_name("Ｊｏｈｎ１２") == "john12"
    assert normal_name("STRAẞE") == normal_name("strasse") == "strasse"  # full case folding, not lower()
    assert normal_name("ｶﾀｶﾅ") == "カタカナ"  # half-width katakana become full-width


def test_the_entry_is_the_hmac_sha256_of_the_normal_form_under_the_key():
    index = NameIndex(KEY)
    expected = hmac.new(KEY, b"lilei", hashlib.sha256).hexdigest()
    assert index.digest("Ｌｉ Ｌｅｉ") == index.digest("LILEI") == expected
    assert NameIndex(b"j" * 32).digest("Li Lei") != expected
    assert index.digest("Li Lei") != index.digest("Li Lie")
    assert [index.digest(v) for v in (None, "", "  \u3000 ", 42)] == [None, None, None, None]
    assert index.fingerprint() != NameIndex(b"j" * 32).fingerprint() and KEY.decode() not in index.fingerprint()


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        NameIndex(b"short")


def test_the_key_comes_from_identitys_settings_and_prod_needs_one(monkeypatch):
    monkeypatch.delenv("CRM_IDENTITY_NAME_INDEX_KEY", raising=False)
    assert IdentityConfig(_env_file=None).name_index_key_bytes("dev") == DEV_NAME_INDEX_KEY
    with pytest.raises(ValueError, match="CRM_IDENTITY_NAME_INDEX_KEY"):
        IdentityConfig(_env_file=None).name_index_key_bytes("prod")
    monkeypatch.setenv("CRM_IDENTITY_NAME_INDEX_KEY", "n" * 40)
    assert IdentityConfig(_env_file=None).name_index_key_bytes("prod") == b"n" * 40
    monkeypatch.setenv("CRM_IDENTITY_NAME_INDEX_KEY", "too-short")
    with pytest.raises(ValueError) as refused:
        IdentityConfig(_env_file=None)
    assert "too-short" not in str(refused.value)  # a secret is never echoed
