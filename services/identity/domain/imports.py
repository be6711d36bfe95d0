"""Member and order imports (issue 14): rows of a brand's files checked one by one and turned into the
platform's own channel events, with ids derived from each row's content so an import done twice, or
resumed after a crash, publishes nothing new.

A rejected row is reported by line, column and a reason that never holds the value; it costs no other row.
Pure rules: reading files, publishing and job progress are the handler's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from services.identity.domain.cleaning import Cleaning
from shared.privacy import PhoneError, normalize_phone

MEMBER_COLUMNS = ("phone", "member_id", "wechat_openid", "name", "gender", "birthday", "email", "city",
                  "join_date", "home_store", "tier", "tier_since", "sms_consent")
LOT_COLUMNS = ("phone", "member_id", "points", "earned_at")
MEMBER_IDS = ("phone", "member_id", "wechat_openid")
LOT_IDS = ("phone", "member_id")
# Every imported event comes from this source: (source, id) is what makes two deliveries one event.
SOURCE = "pos/import"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TIER = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_STORE = re.compile(r"^\S{1,64}$")
_YES = {"1", "true", "yes", "y", "t", "是", "同意"}
_NO = {"0", "false", "no", "n", "f", "否", "拒绝"}
_DIGITS = re.compile(r"\D")
_LOCAL_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
# A header cell holding a digit, an @ or a non-ASCII letter is a value (a phone, an e-mail, a Chinese name).
_DATA_LIKE = re.compile(r"[0-9@]|[^\x00-\x7f]")
_LIMITS = {"member_id": 128, "wechat_openid": 128, "name": 128, "gender": 16, "city": 128}


class FileError(ValueError):
    """A file that cannot be imported at all (unknown or missing columns, not CSV or JSON lines)."""


@dataclass(frozen=True)
class RowError:
    """Why one row was rejected: its line, the column at fault and a reason without the value."""

    line: int
    column: str
    reason: str


@dataclass
class Built:
    """What one row becomes: channel events (CloudEvent dicts) or the reasons it was rejected."""

    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def read_rows(text_lines: Iterator[str], *, columns: tuple[str, ...] | None, required_any: tuple[str, ...] = (),
              required_all: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, str] | None]]:
    """Rows of a CSV file (header first) or of JSON lines, each with its line number (the header is line 1
    of a CSV file). ``columns``: the names a header may hold (None: any), ``required_all`` those it must; a
    row that cannot be read at all comes as ``(line, None)``. Raises FileError for an empty file or one whose
    header cannot be imported."""
    lines = iter(text_lines)
    first, number = "", 0
    for first in lines:
        number += 1
        if first.strip():
            break
    else:
        # An empty upload or a wrong file: "done, nothing imported" would look like success.
        raise FileError("the file is empty")
    first = first.lstrip("\ufeff")
    if first.lstrip().startswith("{"):
        yield from _json_lines(first, number, lines, columns=columns)
        return
    yield from _csv_rows(first, number, lines, columns=columns, required_any=required_any,
                         required_all=required_all)


def _json_lines(first: str, number: int, lines: Iterator[str], *,
                columns: tuple[str, ...] | None) -> Iterator[tuple[int, dict[str, str] | None]]:
    for text in _chain(first, lines):
        if text.strip():
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if columns is not None and isinstance(value, dict) and (unknown := [k for k in value if k not in columns]):
                # As a CSV header's: a misspelt key would otherwise drop its value silently.
                named = "a key that is not a column name" if any(_DATA_LIKE.search(k) for k in unknown) else (
                    f"unknown keys {', '.join(sorted(unknown))[:200]}")
                raise FileError(f"line {number}: {named}; expected some of {', '.join(columns)}")
            yield number, ({k: "" if v is None else str(v) for k, v in value.items()}
                           if isinstance(value, dict) else None)
        number += 1


def _chain(first: str, lines: Iterator[str]) -> Iterator[str]:
    yield first
    yield from lines


def _csv_rows(header_line: str, number: int, lines: Iterator[str], *, columns: tuple[str, ...] | None,
              required_any: tuple[str, ...], required_all: tuple[str, ...] = ()
              ) -> Iterator[tuple[int, dict[str, str] | None]]:
    header = [h.strip() for h in next(csv.reader([header_line]))]
    width = len(header)
    while header and not header[-1]:
        header.pop()  # Excel and WPS write a trailing empty column as "phone,name,": nothing is lost by it
    if columns is not None and (unknown := [h for h in header if h not in columns]):
        if any(_DATA_LIKE.search(h) for h in unknown):
            # A file without a header: its first row is a member's data, which an error must not repeat.
            raise FileError(f"the first line is not a header (it holds values, not column names); expected a "
                            f"header naming some of {', '.join(columns)}")
        raise FileError(f"unknown columns {', '.join(sorted(unknown))[:200]}; expected some of {', '.join(columns)}")
    if len(set(header)) != len(header):
        raise FileError("a column is named twice in the header")
    if required_any and not set(required_any) & set(header):
        raise FileError(f"the header needs one of {', '.join(required_any)}")
    if missing := [c for c in required_all if c not in header]:
        # An orders file mapped by the wrong flags would otherwise reject every row as if its values were bad.
        raise FileError(f"the header has no column {', '.join(missing)}")
    reader = csv.reader(lines)
    line = number + 1
    for values in reader:
        start, line = line, number + 1 + reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) == width > len(header) and not any(v.strip() for v in values[len(header):]):
            values = values[:len(header)]
        if len(values) != len(header):
            yield start, None
            continue
        yield start, dict(zip(header, values, strict=True))


def digest(row: dict[str, Any]) -> str:
    """A row's content hash: what its events' ids are made of."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


class Rules:
    """How rows are read: phone region and blocked values (identity's cleaning), the business timezone for
    dates without a time, the moment that stands in for a missing date, and the moment nothing may follow."""

    def __init__(self, cleaning: Cleaning, *, zone: ZoneInfo, default_time: datetime, now: datetime) -> None:
        self.cleaning, self.zone, self.default_time, self.now = cleaning, zone, default_time, now

    # -- one value each -----------------------------------------------------------------
    def phone(self, raw: str) -> str:
        """The E.164 phone, or ValueError with a reason."""
        try:
            return normalize_phone(raw, self.cleaning.region, self.cleaning.blocked_phones)
        except PhoneError as exc:
            raise ValueError(str(exc).removeprefix("phone ")) from None

    def moment(self, raw: str, *, past: bool = True) -> datetime:
        """A date (midnight in the business timezone) or an ISO date-time; never after now when ``past``."""
        text = raw.strip()
        try:
            if m := _LOCAL_DATE.match(text):
                # Excel and most Chinese tills write 2023/1/5 or 2023-1-5 10:30: a local date (and time).
                y, mo, d, h, mi, sec = (int(g) if g else 0 for g in m.groups())
                at = datetime(y, mo, d, h, mi, sec, tzinfo=self.zone)
            else:
                at = datetime.fromisoformat(text.replace("Z", "+00:00"))
                at = at if at.tzinfo else at.replace(tzinfo=self.zone)
        except ValueError:
            raise ValueError("must be a date YYYY-MM-DD (or YYYY/M/D) or an ISO date-time") from None
        if not 1900 <= at.year <= 9998:
            raise ValueError("must be between the years 1900 and 9998")
        if past and at > self.now:
            raise ValueError("must not be in the future")
        return at

    def identity(self, row: dict[str, str], kinds: tuple[str, ...], errors: list[RowError],
                 line: int) -> dict[str, str]:
        """The row's identifiers, cleaned; records an error for a malformed one or when there is none."""
        out: dict[str, str] = {}
        for kind in kinds:
            raw = (row.get(kind) or "").strip()
            if not raw or raw.lower() in self.cleaning.blocked_values:
                continue
            if kind == "phone":
                try:
                    out[kind] = self.phone(raw)
                except ValueError as exc:
                    errors.append(RowError(line, kind, str(exc)))
            elif len(raw) > _LIMITS.get(kind, 128):
                errors.append(RowError(line, kind, f"longer than {_LIMITS.get(kind, 128)} characters"))
            else:
                out[kind] = raw
        if not out and not errors:
            errors.append(RowError(line, kinds[0], f"needs one of {', '.join(kinds)}"))
        return out


def _event(type_: str, eid: str, at: datetime, identity: dict[str, str], **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": eid, "source": SOURCE, "type": type_, "time": at.isoformat(),
            "datacontenttype": "application/json", "data": {"identity": identity, **data}}


def _text(row: dict[str, str], name: str) -> str:
    return (row.get(name) or "").strip()


def member_events(line: int, row: dict[str, str] | None, rules: Rules, *, lines: int = 0) -> Built:
    """A member row's events: its profile (identifiers, fields, join date, home store), its SMS consent and
    its tier (dated at ``tier_since``, else the join date, else the import's start), or the reasons it is
    rejected (a row with any bad value is rejected whole). ``lines``: how many lines the file has (the
    profile and consent are dated a millisecond before the import's start for each line after this one)."""
    out = Built()
    if row is None:
        out.errors.append(RowError(line, "-", "the row cannot be read (wrong number of values, or not an object)"))
        return out
    errors = out.errors
    identity = rules.identity(row, MEMBER_IDS, errors, line)
    profile: dict[str, Any] = {}
    for name in ("name", "gender", "city"):
        if value := _text(row, name):
            if len(value) > _LIMITS[name]:
                errors.append(RowError(line, name, f"longer than {_LIMITS[name]} characters"))
            profile[name] = value
    if value := _text(row, "email"):
        if not _EMAIL.match(value) or len(value) > 254:
            errors.append(RowError(line, "email", "not an e-mail address"))
        profile["email"] = value.lower()
    if value := _text(row, "birthday"):
        try:
            if (m := _LOCAL_DATE.match(value)) is None or m.group(4) is not None:
                raise ValueError("must be a date YYYY-MM-DD (or YYYY/M/D)")
            profile["birthday"] = rules.moment(value).date().isoformat()
        except ValueError as exc:
            errors.append(RowError(line, "birthday", str(exc)))
    joined = rules.default_time
    if value := _text(row, "join_date"):
        try:
            joined = rules.moment(value)
            profile["attributes"] = {"join_date": joined.date().isoformat()}
        except ValueError as exc:
            errors.append(RowError(line, "join_date", str(exc)))
    if value := _text(row, "home_store"):
        if not _STORE.match(value):
            errors.append(RowError(line, "home_store", "must be a store id of at most 64 characters, no spaces"))
        profile["home_store"] = value
    tier, since = _text(row, "tier"), joined
    if tier and not _TIER.match(tier):
        errors.append(RowError(line, "tier", "must be a tier name of at most 32 letters, digits, '.', '_' or '-'"))
    if value := _text(row, "tier_since"):
        try:
            since = rules.moment(value)
        except ValueError as exc:
            errors.append(RowError(line, "tier_since", str(exc)))
    consent: bool | None = None
    if value := _text(row, "sms_consent"):
        if value.lower() in _YES:
            consent = True
        elif value.lower() in _NO:
            consent = False
        else:
            errors.append(RowError(line, "sms_consent", "must be yes/no, true/false or 1/0"))
    if errors:
        return out
    key = digest({"identity": identity, **{c: _text(row, c) for c in MEMBER_COLUMNS}})
    # Dated when the import started: the file is the brand's word as of then, so it outranks what channels said
    # before and a newer channel value (or a corrected file imported later) outranks it. Less a millisecond
    # (identity keeps times to the millisecond) per line after this one: of two rows for one member the later
    # line is newer and wins, as it would had the brand typed them in order, and none is after the start.
    at = rules.default_time - timedelta(milliseconds=max(lines - line, 0))
    out.events.append(_event("crm.profile", f"m-{key}-profile", at, identity, **profile))
    if consent is not None:
        out.events.append(_event("crm.consent", f"m-{key}-sms", at, identity, purpose="sms", granted=consent))
    if tier:
        # Dated at ``tier_since`` (the tier history shows it held since then) and carrying the import's moment:
        # loyalty holds it until the first review after the later of the two, not the review after an old date.
        out.events.append(_event("crm.tier_import", f"m-{key}-tier", since, identity, tier=tier,
                                 imported_at=rules.default_time.isoformat()))
    return out


def lot_events(line: int, row: dict[str, str] | None, rules: Rules, *, occurrence: int) -> Built:
    """A points lot's event (``crm.points_opening`` dated at its earn moment), or the reasons it is rejected;
    ``occurrence`` tells apart identical rows (two equal lots are two lots)."""
    out = Built()
    if row is None:
        out.errors.append(RowError(line, "-", "the row cannot be read (wrong number of values, or not an object)"))
        return out
    identity = rules.identity(row, LOT_IDS, out.errors, line)
    points = 0
    try:
        points = int(_text(row, "points"))
        if not 1 <= points <= 100_000_000:
            raise ValueError
    except ValueError:
        out.errors.append(RowError(line, "points", "must be a whole number of points from 1 to 100,000,000"))
    earned = rules.default_time
    if not _text(row, "earned_at"):
        out.errors.append(RowError(line, "earned_at", "is required: a lot expires by its earn date"))
    else:
        try:
            earned = rules.moment(_text(row, "earned_at"))
        except ValueError as exc:
            out.errors.append(RowError(line, "earned_at", str(exc)))
    if out.errors:
        return out
    key = digest({"identity": identity, "points": points, "earned_at": earned.isoformat(), "n": occurrence})
    out.events.append(_event("crm.points_opening", f"l-{key}", earned, identity, points=points))
    return out


def lot_key(row: dict[str, str] | None) -> str | None:
    """What makes two lot rows identical (the occurrence counter's key), whatever notation each writes its
    phone and date in: two rows of one lot in two notations must be two occurrences, not two zeroth ones that
    would share an id. Cheap on purpose (the file's reader computes it for every row before the workers clean
    them): a key coarser than the cleaned identity is harmless, since the lot's id holds the cleaned identity."""
    if row is None:
        return None
    phone = _DIGITS.sub("", _text(row, "phone"))
    phone = phone[4:] if phone.startswith("0086") else phone[2:] if len(phone) == 13 and phone[:2] == "86" else phone
    earned = _text(row, "earned_at")
    if m := _LOCAL_DATE.match(earned):
        earned = "-".join(str(int(g or 0)) for g in m.groups())
    return digest({"phone": phone, "member_id": _text(row, "member_id"), "points": _text(row, "points").lstrip("0"),
                   "earned_at": earned})


UNKNOWN_MEMBER = "no member with this phone or member_id in the member file or the platform"


def member_hash(kind: str, value: str) -> int:
    """A cleaned identifier as 8 bytes (a signed 64-bit int): what the member file's index holds."""
    return int.from_bytes(hashlib.blake2b(f"{kind}\0{value}".encode(), digest_size=8).digest(), "little",
                          signed=True)


class Members:
    """The phones and member ids of a member file's accepted rows, as 64-bit hashes in one sorted array (16 MB
    for 1,000,000 members with both; a set of strings would take ten times that). A lot of someone else passes
    for a member only if its hash equals one of the file's: about 2,000,000 chances in 2**64."""

    def __init__(self) -> None:
        self.added = array("q")
        self.sorted: np.ndarray | None = None

    def add(self, hashes: list[int]) -> None:
        """Hold a chunk's member hashes."""
        if self.sorted is not None:
            self.added, self.sorted = array("q", self.sorted.tobytes()), None
        self.added.extend(hashes)

    def known(self, hashes: list[int]) -> list[bool]:
        """Which of these hashes a member row of the file holds."""
        if self.sorted is None:
            # One sorted copy, the growing array let go: 8 bytes an identifier once the points file starts.
            self.sorted = np.frombuffer(self.added, dtype=np.int64).copy()
            self.sorted.sort()
            self.added = array("q")
        if not hashes or not len(self.sorted):
            return [False] * len(hashes)
        wanted = np.array(hashes, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.sorted, wanted), len(self.sorted) - 1)
        return (self.sorted[at] == wanted).tolist()


@dataclass(frozen=True)
class OrderColumns:
    """Which column of an orders file holds what (``crm import orders`` flags)."""

    phone: str = "phone"
    member_id: str = "member_id"
    amount: str = "amount"
    date: str = "date"
    store: str = "store_id"
    order: str = "order_id"


def order_events(line: int, row: dict[str, str] | None, rules: Rules, cols: OrderColumns) -> Built:
    """A historical order as a ``crm.purchase`` (id: its order id, so the same order imported twice is one),
    or the reasons it is rejected."""
    out = Built()
    if row is None:
        out.errors.append(RowError(line, "-", "the row cannot be read (wrong number of values, or not an object)"))
        return out
    mapped = {"phone": row.get(cols.phone, ""), "member_id": row.get(cols.member_id, "")}
    identity = rules.identity(mapped, LOT_IDS, out.errors, line)
    out.errors = [RowError(e.line, cols.phone if e.column == "phone" else cols.member_id, e.reason)
                  for e in out.errors]
    amount = Decimal(0)
    try:
        amount = Decimal(_text(row, cols.amount))
        if not amount.is_finite() or amount < 0 or amount > Decimal("100000000") or amount != amount.quantize(
                Decimal("0.01")):
            raise InvalidOperation
    except InvalidOperation:
        out.errors.append(RowError(line, cols.amount, "must be an amount from 0 to 100,000,000 with at most 2 "
                                                      "decimal places"))
    when = rules.default_time
    try:
        when = rules.moment(_text(row, cols.date))
    except ValueError as exc:
        out.errors.append(RowError(line, cols.date, str(exc)))
    store = _text(row, cols.store)
    if store and not _STORE.match(store):
        out.errors.append(RowError(line, cols.store, "must be a store id of at most 64 characters, no spaces"))
    order = _text(row, cols.order)
    if len(order) > 200:
        out.errors.append(RowError(line, cols.order, "longer than 200 characters"))
    if out.errors:
        return out
    order = order or "h-" + digest({"identity": identity, "amount": str(amount), "at": when.isoformat(),
                                    "store": store})
    data: dict[str, Any] = {"order_id": order, "amount": str(amount.quantize(Decimal("0.01"))), "currency": "CNY",
                            "items": []}
    if store:
        data["store_id"] = store
    # Tills number receipts per store: 1001 at two stores is two sales, so the store is part of the id.
    out.events.append(_event("crm.purchase", f"o-{store}/{order}" if store else f"o-{order}", when, identity, **data))
    return out
