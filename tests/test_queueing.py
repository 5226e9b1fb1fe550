"""The device queue: first come first served, each waiter told its place, a bounded backlog."""

import threading
import time

import pytest

from vitrep.running.queue import DeviceQueue, QueueFull


def _start(q, name, order, places, hold_s=0.3, limit=None, errors=None):
    def work():
        try:
            with q.hold(on_wait=lambda place, queued: places.setdefault(name, []).append(place), limit=limit):
                order.append(name)
                time.sleep(hold_s)
        except QueueFull as e:
            (errors if errors is not None else []).append((name, str(e)))

    t = threading.Thread(target=work)
    t.start()
    return t


def test_first_come_first_served_with_places():
    q, order, places = DeviceQueue("CPU"), [], {}
    threads = []
    for name in "abcd":
        threads.append(_start(q, name, order, places))
        time.sleep(0.05)  # arrive in this order
    for t in threads:
        t.join(10)
    assert order == list("abcd")
    assert "a" not in places  # the first never waited
    assert places["b"][0] == 1 and places["c"][0] == 2 and places["d"][0] == 3  # runs ahead of each
    assert places["d"] == sorted(places["d"], reverse=True) and min(places["d"]) == 1  # moved up the queue
    assert q.served == 4 and q.waiting == 0


def test_a_full_queue_refuses_with_one_sentence():
    q, order, places, errors = DeviceQueue("CPU"), [], {}, []
    threads = [_start(q, n, order, places, hold_s=0.5, limit=2, errors=errors) for n in ("a", "b", "c")]
    time.sleep(0.1)
    late = _start(q, "late", order, places, limit=2, errors=errors)
    for t in threads + [late]:
        t.join(10)
    assert errors and errors[0][0] == "late" and "busy with 3 runs queued" in errors[0][1]
    assert sorted(order) == ["a", "b", "c"]


def test_a_waiter_that_leaves_gives_up_its_place():
    q = DeviceQueue("CPU")
    inside = threading.Event()
    release = threading.Event()

    def holder():
        with q.hold():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(5)

    class Leave(Exception):
        pass

    def leaving(place, queued):
        raise Leave  # a dashboard session that closed while waiting

    with pytest.raises(Leave):
        with q.hold(on_wait=leaving):
            pass
    assert q.waiting == 0  # its ticket is gone
    release.set()
    t.join(5)
    with q.hold():  # and the device is free again
        pass


def test_on_wait_runs_outside_the_queues_lock():
    """A waiter's callback (a browser update, which can be slow) ran under the queue's lock, so no other run could
    join or leave the queue meanwhile.  Now another thread can use the queue while the callback runs."""
    q = DeviceQueue("CPU")
    inside, release, seen = threading.Event(), threading.Event(), []

    def holder():
        with q.hold():
            inside.set()
            release.wait(10)

    def on_wait(place, queued):
        if seen:
            return
        other = threading.Thread(target=lambda: seen.append(q.waiting))  # needs the queue's lock
        other.start()
        other.join(10)
        seen.append(not other.is_alive())
        release.set()

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(10)
    with q.hold(on_wait=on_wait):
        pass
    t.join(10)
    assert seen == [1, True]  # the other thread read the queue (one waiter) while the callback ran


def test_a_public_queue_refuses_the_ninth_waiting_run(monkeypatch):
    """Public mode: one run on the device, eight waiting; the next is refused with one sentence, and every
    thread ends."""
    from vitrep import limits

    monkeypatch.setenv("VITREP_PUBLIC", "1")
    limit = limits.queue_limit()
    assert limit == 8
    q = DeviceQueue("CPU")
    release, inside, errors = threading.Event(), threading.Event(), []
    before = threading.active_count()

    def holder():
        with q.hold(limit=limit):
            inside.set()
            release.wait(30)

    def waiter():
        try:
            with q.hold(limit=limit):
                pass
        except QueueFull as e:
            errors.append(str(e))

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    inside.wait(10)
    for _ in range(limit):
        threads.append(threading.Thread(target=waiter))
        threads[-1].start()
    while q.waiting < limit:
        time.sleep(0.01)
    with pytest.raises(QueueFull) as e:
        with q.hold(limit=limit):
            pass
    msg = str(e.value)
    assert msg == "The CPU is busy with 9 runs queued; try again in a minute."
    release.set()
    for t in threads:
        t.join(30)
    assert not errors and q.served == 9 and q.waiting == 0 and threading.active_count() == before
