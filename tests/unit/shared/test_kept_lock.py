"""Issue 16: ``shared.kept`` never computes one key in two threads at once, however requests for it interleave
(campaigns' results are brought forward by a timer's thread while the API thread reads them)."""

from __future__ import annotations

import inspect
import sys
import threading
import time

from shared.kept import Kept

WAIT_LINE = next(n for n, line in enumerate(inspect.getsourcelines(Kept.get)[0], inspect.getsourcelines(Kept.get)[1])
                 if "with busy:" in line)


def waits_for_the_key(thread: threading.Thread) -> bool:
    """Whether a thread is blocked on a key's lock in ``Kept.get``."""
    frame = sys._current_frames().get(thread.ident)
    return frame is not None and frame.f_code is Kept.get.__code__ and frame.f_lineno == WAIT_LINE


def until(holds, what: str) -> None:
    deadline = time.monotonic() + 5
    while not holds():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_a_request_arriving_as_a_computation_hands_over_waits_instead_of_computing_alongside():
    kept = Kept()
    inside, most, done = [], [0], []
    gate = {name: threading.Event() for name in "abc"}
    entered = {name: threading.Event() for name in "abc"}

    def compute(name):
        def run():
            inside.append(name)
            most[0] = max(most[0], len(inside))
            entered[name].set()
            assert gate[name].wait(5)
            inside.remove(name)
            return name
        return run

    def ask(name, generation):
        t = threading.Thread(target=lambda: done.append((name, kept.get("k", generation, compute(name)))))
        t.start()
        return t

    a = ask("a", 1)
    assert entered["a"].wait(5)
    b = ask("b", 2)  # a newer generation: it waits for a, then computes its own
    until(lambda: waits_for_the_key(b), "b waits for a")
    gate["a"].set()
    assert entered["b"].wait(5)
    c = ask("c", 2)  # arrives while b computes: it must wait for b, not compute beside it
    until(lambda: waits_for_the_key(c) or entered["c"].is_set(), "c waits or computes")
    gate["b"].set()
    gate["c"].set()
    for t in (a, b, c):
        t.join(5)
    assert most[0] == 1 and not entered["c"].is_set()
    assert sorted(done) == [("a", "a"), ("b", "b"), ("c", "b")]


def test_a_value_kept_at_a_newer_generation_answers_a_request_at_an_older_one():
    kept = Kept()
    assert kept.get("k", 5, lambda: ["new"]) == ["new"]
    # Read before a write that another request has already computed over: not computed again, not replaced.
    assert kept.get("k", 4, lambda: ["old"]) == ["new"]
    assert kept.peek("k", 5) == ["new"]
