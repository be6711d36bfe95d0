"""Issue 13: a service's keyring holds a data key per customer it has met, and with 100,000 customers that
must not cost hundreds of MB (campaigns peaked at 407 MB, identity's workers at 310 MB)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a fresh interpreter: its peak RSS says what the keyring costs, whatever this test process holds.
_SCRIPT = textwrap.dedent("""
    import os, resource, sys, tempfile
    from pathlib import Path
    from shared.storage.crypto import sqlite_keyring

    ring = sqlite_keyring(Path(tempfile.mkdtemp()) / "crm.test.db", os.urandom(32))
    ring.check()
    sealed = ring.seal("c_0", "attributes.city", "Shanghai")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for start in range(0, 40_000, 500):  # as a service meets them: batch by batch
        batch = [f"c_{i}" for i in range(start, start + 500)]
        ring.prepare(batch)
        for c in batch:
            ring.seal(c, "attributes.city", "Shanghai")
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert ring.open("c_0", "attributes.city", sealed) == "Shanghai"
    print(grown_kb)
""")


def test_the_keys_of_40000_customers_cost_a_service_under_a_kilobyte_each():
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    grown_mb = int(done.stdout.split()[-1]) / 1024
    # Each cached key used to keep a ready AES-GCM cipher, some 2.5 KB outside Python's heap: 100 MB here.
    # Raw keys cost about 250 bytes each (10 MB), plus at most 4,096 ready ciphers (10 MB).
    assert grown_mb < 40, f"the keyring grew the process by {grown_mb:.0f} MB for 40,000 customers"
