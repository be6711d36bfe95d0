"""``crm staff add``: write a staff account (argon2id password hash, role, scope) into the staff file."""

from __future__ import annotations

from pathlib import Path

from shared.access.keys import parse_scope
from shared.access.staff import StaffAccount, add_account, hash_password
from shared.settings import ROLES, Settings

MIN_PASSWORD = 12


def staff_file(settings: Settings) -> Path:
    """CRM_STAFF_FILE, else ``staff.json`` in the data directory (where ``crm up`` looks for it)."""
    return Path(settings.staff_file or Path(settings.data_dir) / "staff.json")


def add_staff(user: str, *, role: str, store: str | None, region: str | None, display_name: str, password: str,
              file: Path | None = None, settings: Settings | None = None) -> tuple[Path, bool]:
    """Add or replace ``user`` in the staff file; (the file, whether the user is new). ``ValueError`` on bad input."""
    if role not in ROLES:
        raise ValueError("--role is one of reader/operator/admin")
    if store and region:
        raise ValueError("give --store or --region, not both")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
    scope = parse_scope(f"store={store}" if store else f"region={region}" if region else "", where="scope")
    path = file or staff_file(settings or Settings())
    account = StaffAccount(user, hash_password(password), role, scope, display_name)  # type: ignore[arg-type]
    return path, add_account(path, account)
