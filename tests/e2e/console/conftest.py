"""The console's browser tests: the platform started as ``crm up`` starts it (free ports, a temp data dir),
Debian's chromium driven by Playwright, and a screenshot of every page a test visits.

A new page's test reuses ``platform`` (the running platform, its staff and data helpers), ``page`` (a fresh
browser context per test) and ``shoot`` (``shoot(page, "name")`` after each page the test opens)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from crm.broker import free_port
from crm.staff import add_staff
from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
# The flags this machine needs: without the background-networking ones Chromium's calls out are refused.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ADMIN_KEY = "console-test-admin"
PASSWORD = "a long enough password 1"


@dataclass
class ConsolePlatform:
    """A running ``crm up``: the console's URL, the generated dev sign-in, and API access for arranging data."""

    url: str
    data_dir: Path
    ports: dict[str, int]
    banner: str
    dev_password: str
    proc: subprocess.Popen
    out: list[str] = field(default_factory=list)

    def api(self, service: str, token: str = ADMIN_KEY) -> httpx.Client:
        """A client of one service's API (the company-wide admin key unless a staff token is given)."""
        return httpx.Client(base_url=f"http://127.0.0.1:{self.ports[service]}", timeout=30,
                            headers={"Authorization": f"Bearer {token}"})

    def add_staff(self, user: str, *, role: str, store: str | None = None, region: str | None = None) -> str:
        """A staff account in the platform's staff file (read again when it changes); its password."""
        add_staff(user, role=role, store=store, region=region, display_name=user, password=PASSWORD,
                  file=self.data_dir / "staff.json")
        return PASSWORD

    def token(self, user: str) -> str:
        """A staff token, as the console gets one at sign-in."""
        r = httpx.post(f"http://127.0.0.1:{self.ports['identity']}/v1/auth/token",
                       data={"username": user, "password": PASSWORD}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


def wait_until(predicate, *, timeout: float = 120, what: str):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = predicate()
        except httpx.HTTPError:
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="package")
def platform(tmp_path_factory) -> Iterator[ConsolePlatform]:
    """``crm up`` in a subprocess on free ports with no staff file, so it makes and prints a dev admin; one for
    the console tests (each module arranges its own customers with new phones), stopped after their package."""
    home = tmp_path_factory.mktemp("console-platform")
    ports = {name: free_port() for name in ("identity", "loyalty", "alerts", "campaigns", "console")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "OTEL_"))}
    env.update({"CRM_DATA_DIR": str(home / "data"), "CRM_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
                "CRM_API_KEYS": f"{ADMIN_KEY}:admin",
                # Every browser test signs in from 127.0.0.1: the default 10 a minute per address would refuse
                # the package's later sign-ins (the limit itself is tested in tests/integration).
                "CRM_SIGN_IN_RATE_LIMIT": "600/minute", "CRM_SIGN_IN_RATE_LIMIT_BURST": "600",
                # The admin test subscribes hooks.example.com, which resolves nowhere on the test machines: the
                # default refusal of private and unresolved hosts is tested in tests/unit/webhooks.
                "CRM_WEBHOOKS_BLOCK_PRIVATE": "false",
                **{f"CRM_{name.upper()}_PORT": str(port) for name, port in ports.items()}})
    proc = subprocess.Popen([sys.executable, "-m", "crm.cli", "up"], env=env, cwd=home, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("Press Ctrl-C" in line for line in list(out)) or proc.poll() is not None,
                   timeout=240, what="crm up's banner")
        assert proc.poll() is None, "".join(out)
        banner = "".join(out)
        found = re.search(r"console +(http://\S+/) +\(sign in as admin / (\S+), generated for development\)", banner)
        assert found, banner
        yield ConsolePlatform(url=found.group(1).rstrip("/"), data_dir=home / "data", ports=ports, banner=banner,
                              dev_password=found.group(2), proc=proc, out=out)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="package")
def browser():
    """Debian's chromium under Playwright (its own browser download does not work on these machines)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) per test; the test fails on any script error or blocked resource
    the page reports (a missing npm package, a CSP violation), expected 4xx answers aside."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(f"{msg.text} at {msg.location}") if msg.type == "error"
           and "the server responded with a status of 4" not in msg.text else None)
    yield tab
    context.close()
    assert errors == [], errors


@pytest.fixture
def shoot(request):
    """``shoot(page, name)``: a full-page screenshot under .pytest-output/console/<test>/ (or CRM_CONSOLE_SHOTS)."""
    base = Path(os.environ.get("CRM_CONSOLE_SHOTS") or ROOT / ".pytest-output" / "console")
    folder = base / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # only this run's pages in the folder
        old.unlink()
    taken: list[Path] = []

    def take(page, name: str) -> Path:
        path = folder / f"{len(taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        return path

    take.taken = taken  # type: ignore[attr-defined]
    return take


def sign_in(page, platform: ConsolePlatform, user: str, password: str, shoot, *, start: str = "/") -> None:
    """Sign in as a person would, from ``start`` (the console sends an anonymous visitor to the sign-in page),
    and land on customer search; both pages are screenshotted."""
    from playwright.sync_api import expect

    page.goto(platform.url + start)
    expect(page.locator("[data-page=sign-in]")).to_be_visible()
    shoot(page, "sign-in")
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("[data-page=customer-search]")).to_be_visible()
    shoot(page, "signed-in")
