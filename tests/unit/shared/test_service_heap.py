"""Issue 13 (session 22): a service process leaves what it holds for its whole life out of garbage collection and
collects the rest in larger steps; a full collection walking the built service every few seconds, and a young one
every few messages, were a sixth to a fifth of a consumer's CPU."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import weakref

from shared.streaming.runner import GC_THRESHOLDS, settle_heap


def test_once_built_the_heap_is_frozen_and_later_garbage_cycles_are_still_collected():
    threshold = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_threshold() == GC_THRESHOLDS == (10_000, 10, 10)
        assert gc.get_freeze_count() > 0

        class Node:
            pass

        made = Node()
        made.itself = made  # a cycle: only the collector frees it
        gone = weakref.ref(made)
        del made
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


_RUN = """
import gc, json, sys
import shared.streaming.kafka as kafka
from shared.streaming.runner import run_service

class Worker:  # stands for faust's worker: reports the process's collector as the worker would start with it
    def execute_from_commandline(self):
        print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))

kafka.faust_worker = lambda app, loglevel: Worker()
run_service("campaigns", api=False)
"""


def test_a_service_process_starts_its_worker_with_the_built_service_frozen(tmp_path):
    env = {"CRM_DATA_DIR": str(tmp_path), "OTEL_SDK_DISABLED": "true", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", _RUN], env=env, capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["threshold"] == list(GC_THRESHOLDS) and seen["frozen"] > 50_000
