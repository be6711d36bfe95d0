"""``crm up``: the whole platform on one machine, no Docker: broker, topics, one process per service."""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from crm.broker import reachable, start_broker
from shared.settings import Settings
from shared.storage.crypto import new_master_key
from shared.storage.files import private_dir, private_opener
from shared.streaming.kafka import ensure_topics

SERVICES = ("identity", "loyalty", "alerts", "campaigns")
CONSOLE = "console"  # issue 16: the ops console, a fifth process over the four services' APIs
DEV_ADMIN = "admin"


def service_command(name: str, *, api: bool = True) -> list[str]:
    """The ``crm`` arguments that run one service: the same here, in the container and in Kubernetes.
    Extra workers of a service run without the API (one process serves each port)."""
    return ["service", name] if api else ["service", name, "--no-api"]


def console_port(env: dict[str, str]) -> int:
    """The console's port (CRM_CONSOLE_PORT, 8000 by default)."""
    return int(env.get("CRM_CONSOLE_PORT") or 8000)


def dev_console_admin(settings: Settings, env: dict[str, str]) -> str | None:
    """In dev, when no staff file exists yet, a development admin with a random password (kept 0600 in the
    data dir, so later starts print it again); the password to print, or None when staff are configured."""
    if settings.env != "dev" or settings.staff_file:
        return None
    from crm.staff import add_staff

    data = Path(settings.data_dir)
    staff, kept = Path(env["CRM_STAFF_FILE"]), data / "console-admin-password"
    if not staff.exists():
        kept.unlink(missing_ok=True)  # a password of a staff file since deleted signs nobody in
        password = _secret_file(kept, lambda: secrets.token_urlsafe(15))
        add_staff(DEV_ADMIN, role="admin", store=None, region=None, display_name="Development admin",
                  password=password, file=staff)
        return password
    return kept.read_text().strip() if kept.exists() else None


def console_banner(settings: Settings, env: dict[str, str], password: str | None) -> str:
    """What ``crm up`` says about the console: its URL and, in dev, the generated sign-in."""
    line = f"  console    http://{settings.api_host}:{console_port(env)}/"
    if password:
        line += f"   (sign in as {DEV_ADMIN} / {password}, generated for development)"
    return line


def available_services() -> list[str]:
    """The services this checkout has."""
    # find_spec raises for a missing parent package, so look for the package first.
    return [s for s in SERVICES
            if importlib.util.find_spec(f"services.{s}") is not None
            and importlib.util.find_spec(f"services.{s}.app") is not None]


def _secret_file(path: Path, make) -> str:
    if path.exists():
        return path.read_text().strip()
    private_dir(path.parent)
    value = make()
    # Created 0600 in one step: write-then-chmod would leave the secret readable for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def dev_environment(settings: Settings) -> dict[str, str]:
    """Environment for the children: in dev, a generated API key, pseudonym key and token key kept in the data
    dir, and the staff file ``crm staff add`` writes there by default."""
    env = dict(os.environ)
    data = Path(settings.data_dir)
    env["CRM_DATA_DIR"] = str(data)
    private_dir(data, narrow=True)
    if settings.env == "dev":
        if not settings.api_keys:
            key = _secret_file(data / "dev-api-key", lambda: "dev-" + secrets.token_urlsafe(18))
            env["CRM_API_KEYS"] = f"{key}:admin"
        if settings.pseudonym_secret is None:
            env["CRM_PSEUDONYM_SECRET"] = _secret_file(data / "pseudonym.key", lambda: secrets.token_hex(32))
        # Every service verifies staff tokens with this one secret; kept beside the others, never printed.
        if settings.token_secret is None:
            env["CRM_TOKEN_SECRET"] = _secret_file(data / "token.key", lambda: secrets.token_hex(32))
        if not settings.staff_file:  # read once it appears: `crm staff add` may come after `crm up`
            env["CRM_STAFF_FILE"] = str(data / "staff.json")
        if settings.master_key is None:
            env["CRM_MASTER_KEY"] = _secret_file(data / "master.key", new_master_key)
        # Identity's name index key (search by name), apart from the master key: names indexed under it stay
        # findable across restarts, as with a key set in production.
        from services.identity.config import IdentityConfig

        if IdentityConfig().name_index_key is None:
            env["CRM_IDENTITY_NAME_INDEX_KEY"] = _secret_file(data / "name-index.key", lambda: secrets.token_hex(32))
    return env


def key_banner(settings: Settings, env: dict[str, str]) -> str:
    """What ``crm up`` says about API keys: the generated development admin key, never a configured one."""
    if not settings.api_keys and env.get("CRM_API_KEYS", "").endswith(":admin"):
        key = env["CRM_API_KEYS"].rpartition(":")[0]
        return f"  API key    {key}   (admin, generated for development; send as Authorization: Bearer <key>)"
    roles = sorted(set(settings.key_roles().values()), key=("reader", "operator", "admin").index)
    return (f"  API keys   {len(settings.key_roles())} configured in CRM_API_KEYS "
            f"({', '.join(roles)}; not printed)")


def dev_key(settings: Settings) -> str:
    """An admin key for local tools (``crm demo``): CRM_API_KEY, else the generated dev key."""
    if os.environ.get("CRM_API_KEY"):
        return os.environ["CRM_API_KEY"]
    for key, role in settings.key_roles().items():
        if role == "admin":
            return key
    path = Path(settings.data_dir) / "dev-api-key"
    if path.exists():
        return path.read_text().strip()
    raise SystemExit("no API key: set CRM_API_KEY or run `crm up` first")


@dataclass
class Platform:
    """The running processes of an embedded platform."""

    settings: Settings
    env: dict[str, str]
    services: list[str]
    broker: subprocess.Popen | None = None
    children: dict[tuple[str, int], subprocess.Popen] = field(default_factory=dict)
    stopping: bool = False

    @property
    def log_dir(self) -> Path:
        return Path(self.settings.data_dir) / "logs"

    def workers(self) -> list[tuple[str, int]]:
        """Every worker process to run: (service, index); index 0 of each also serves its API."""
        return [(name, i) for name in self.services for i in range(self.settings.workers_of(name))]

    def start(self) -> None:
        """Broker (unless one is configured), topics, then each service as its own process."""
        private_dir(self.settings.data_dir, narrow=True)
        private_dir(self.log_dir, narrow=True)
        bootstrap = self.settings.kafka_bootstrap
        host, _, port = bootstrap.split(",")[0].rpartition(":")
        if reachable(bootstrap):
            if "CRM_KAFKA_BOOTSTRAP" not in os.environ:
                raise SystemExit(f"something already listens on {bootstrap}; set CRM_KAFKA_BOOTSTRAP to use it")
        elif host in ("127.0.0.1", "localhost"):
            self.broker = start_broker(int(port), log_path=self.log_dir / "broker.log")
        else:
            raise SystemExit(f"CRM_KAFKA_BOOTSTRAP names {bootstrap} but no broker answers there")
        ensure_topics(self.settings)
        for worker in self.workers():
            self.spawn(worker)
        if importlib.util.find_spec(f"services.{CONSOLE}") is not None:
            self.spawn((CONSOLE, 0))

    def spawn(self, worker: tuple[str, int]) -> None:
        """Start (or restart) one worker process of a service."""
        name, index = worker
        log = open(self.log_dir / f"{name}.log", "ab", opener=private_opener)  # noqa: SIM115 - owned by the child
        args = [CONSOLE] if name == CONSOLE else service_command(name, api=index == 0)
        self.children[worker] = subprocess.Popen(
            [sys.executable, "-m", "crm.cli", *args], env=self.env,
            stdout=log, stderr=log, start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 90) -> None:
        """Poll each service's /readyz until it answers 200."""
        deadline = time.monotonic() + timeout_s
        ports = {name: getattr(self.settings, f"{name}_port") for name in self.services}
        if (CONSOLE, 0) in self.children:
            ports[CONSOLE] = console_port(self.env)
        for name, port in ports.items():
            url = f"http://{self.settings.api_host}:{port}/readyz"
            while True:
                if self.children[(name, 0)].poll() is not None:
                    raise SystemExit(f"{name} exited at start; see {self.log_dir / (name + '.log')}")
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} not ready after {timeout_s:.0f} s; see {self.log_dir}")
                time.sleep(0.2)

    def supervise(self) -> None:
        """Restart a service that dies (crash-only: its batch is redelivered) until told to stop."""
        while not self.stopping:
            for worker, proc in list(self.children.items()):
                if proc.poll() is not None and not self.stopping:
                    print(f"{worker[0]} (worker {worker[1]}) exited with {proc.returncode}; restarting", flush=True)
                    self.spawn(worker)
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop services first (they commit and close), then the broker."""
        self.stopping = True
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.broker is not None and self.broker.poll() is None:
            self.broker.terminate()
            try:
                self.broker.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.broker.kill()
