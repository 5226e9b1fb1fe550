"""One computation per device at a time, first come first served, with each waiter's place in the queue.

A class on one server (or the public demo) sends many runs at once.  They
queue per device instead of oversubscribing a GPU or two CPU cores, in the
order they arrived; a waiting caller can be told its place
(``on_wait(place, queued)`` every half second: ``place`` runs are ahead of
it; the callback runs outside the queue's lock).  A queue may refuse new runs beyond ``limit`` waiting ones
(:class:`QueueFull`, a one-sentence error), which keeps a public server's
backlog bounded.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Callable, Iterator, Optional

from ..errors import VitrepError

OnWait = Callable[[int, int], None]


class QueueFull(VitrepError):
    """Too many runs are waiting for this device."""


class DeviceQueue:
    """A fair (FIFO) lock with visible waiters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._queue: list[int] = []  # tickets in arrival order; the head holds the device
        self.served = 0

    @property
    def waiting(self) -> int:
        """Runs waiting behind the one that holds the device."""
        with self._cond:
            return max(0, len(self._queue) - 1)

    @contextlib.contextmanager
    def hold(self, on_wait: Optional[OnWait] = None, limit: Optional[int] = None) -> Iterator[None]:
        with self._cond:
            if limit is not None and len(self._queue) > limit:
                raise QueueFull(f"The {self.name} is busy with {len(self._queue)} runs queued; "
                                f"try again in a minute.")
            me = next(self._tickets)
            self._queue.append(me)
        try:
            while True:
                with self._cond:
                    if self._queue[0] == me:
                        break
                    place, queued = self._queue.index(me), len(self._queue) - 1
                if on_wait is not None:  # outside the lock: a slow callback (a browser) holds up no one
                    on_wait(place, queued)
                with self._cond:
                    if self._queue[0] != me:
                        self._cond.wait(timeout=0.5)
        except BaseException:  # a caller that leaves while waiting gives up its place
            with self._cond:
                self._queue.remove(me)
                self._cond.notify_all()
            raise
        try:
            yield
        finally:
            with self._cond:
                self._queue.remove(me)
                self.served += 1
                self._cond.notify_all()


_QUEUES: dict[str, DeviceQueue] = {}
_GUARD = threading.Lock()


def device_queue(kind: str) -> DeviceQueue:
    """The queue of a device type (``cpu`` or ``cuda``), one per process."""
    with _GUARD:
        if kind not in _QUEUES:
            _QUEUES[kind] = DeviceQueue("GPU" if kind == "cuda" else "CPU")
        return _QUEUES[kind]
