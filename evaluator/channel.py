"""The only ways data crosses between the parent and a worker: sealed memory in, pipes out.

In: the dataset the worker may see (training images and labels, validation and test *images*;
never their labels) in one sealed ``memfd`` the parent fills once per dataset and every worker
maps read-only. Out: two pipes the parent created — a result channel of length-prefixed
frames (JSON events and int32 prediction arrays) and a plain stdout/stderr stream. The parent
reads both non-blocking, with a byte budget and the worker's wall-clock deadline, and never
opens a file the worker could have written or replaced (no symlink, FIFO or ``/dev/zero``
tricks: there is no path to swap). numpy only here (the parent does not import torch).
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import selectors
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_HEADER = struct.Struct(">IB")  # payload length, kind
KIND_JSON, KIND_VAL, KIND_TEST = 1, 2, 3
MAX_JSON_FRAME = 256 * 1024
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


# --- data in: a sealed memfd ----------------------------------------------------------------

def make_data_fd(arrays: dict[str, np.ndarray]) -> tuple[int, str]:
    """Write ``arrays`` into a sealed memfd; returns (fd, layout JSON for ``read_data_fd``).

    Sealed against writes, so one fd serves every worker and none can change what the next
    one trains on.
    """
    layout, offset = [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        layout.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                       "offset": offset})
        offset += arr.nbytes
    fd = os.memfd_create("archlore-data", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, max(1, offset))
        with mmap.mmap(fd, max(1, offset)) as mm:
            for entry, arr in zip(layout, arrays.values(), strict=True):
                arr = np.ascontiguousarray(arr)
                mm[entry["offset"]:entry["offset"] + arr.nbytes] = arr.tobytes()
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd, json.dumps(layout)


def read_data_fd(fd: int, layout_json: str) -> dict[str, np.ndarray]:
    """Copies of the arrays in a data memfd (writable: candidates may modify inputs in place)."""
    layout = json.loads(layout_json)
    size = os.fstat(fd).st_size
    out = {}
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mm:
        for entry in layout:
            dtype = np.dtype(entry["dtype"])
            count = int(np.prod(entry["shape"], dtype=np.int64))
            view = np.frombuffer(mm, dtype=dtype, count=count, offset=entry["offset"])
            out[entry["name"]] = view.reshape(entry["shape"]).copy()
            del view  # the mmap cannot close while a view exports its buffer
    return out


# --- results out: frames on a pipe ----------------------------------------------------------

class FrameWriter:
    """Worker side of the result channel (blocking writes; the parent always drains)."""

    def __init__(self, fd: int):
        self.fd = fd

    def _write(self, kind: int, payload: bytes) -> None:
        data = memoryview(_HEADER.pack(len(payload), kind) + payload)
        while data:
            written = os.write(self.fd, data)
            data = data[written:]

    def event(self, event: dict[str, Any]) -> None:
        payload = json.dumps(event, allow_nan=True).encode()
        if len(payload) > MAX_JSON_FRAME:
            payload = json.dumps({"oversized_event": len(payload)}).encode()
        self._write(KIND_JSON, payload)

    def predictions(self, kind: int, labels: np.ndarray) -> None:
        self._write(kind, np.ascontiguousarray(labels, dtype="<i4").tobytes())


@dataclass
class Inbox:
    """What the parent has read from one worker: events, predictions, output, problems."""

    events: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[int, np.ndarray] = field(default_factory=dict)
    first_event_at: float | None = None
    violation: str = ""  # why the channel was cut (flood, malformed frame)
    output_head: bytearray = field(default_factory=bytearray)
    output_tail: bytearray = field(default_factory=bytearray)
    output_bytes: int = 0

    def output(self, limit: int) -> str:
        head = self.output_head.decode("utf-8", "replace")
        if self.output_bytes <= limit:
            return head + self.output_tail.decode("utf-8", "replace")
        return (head + f"\n[... {self.output_bytes - limit} bytes cut ...]\n"
                + self.output_tail[-(limit - limit // 2):].decode("utf-8", "replace"))


class _FrameParser:
    def __init__(self, inbox: Inbox, expected: dict[int, int], budget: int):
        self.inbox, self.expected, self.budget = inbox, expected, budget
        self.buffer = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> str:
        """Consume bytes; returns a violation ('' when fine)."""
        self.total += len(chunk)
        if self.total > self.budget:
            return f"worker wrote more than {self.budget:,} bytes to its result channel"
        self.buffer += chunk
        while len(self.buffer) >= _HEADER.size:
            length, kind = _HEADER.unpack_from(self.buffer)
            limit = MAX_JSON_FRAME if kind == KIND_JSON else 4 * self.expected.get(kind, 0)
            if kind not in (KIND_JSON, *self.expected) or length > limit:
                return f"malformed result frame (kind {kind}, {length} bytes)"
            if len(self.buffer) < _HEADER.size + length:
                break
            payload = bytes(self.buffer[_HEADER.size:_HEADER.size + length])
            del self.buffer[:_HEADER.size + length]
            if kind == KIND_JSON:
                try:
                    event = json.loads(payload)
                except ValueError:
                    return "malformed JSON frame on the result channel"
                if isinstance(event, dict):
                    self.inbox.events.append(event)
                    if self.inbox.first_event_at is None:
                        self.inbox.first_event_at = time.time()
            elif kind in self.inbox.predictions:  # one answer per split: no second tries
                return "worker sent a second set of predictions (forged frames)"
            elif length != 4 * self.expected[kind]:
                return f"prediction frame of {length} bytes, expected {4 * self.expected[kind]}"
            else:
                self.inbox.predictions[kind] = np.frombuffer(payload, dtype="<i4").copy()
        return ""


def drain(result_fd: int, output_fd: int, *, deadline: float, expected: dict[int, int],
          output_limit: int, max_output: int, exited: Callable[[], bool],
          kill: Callable[[], None]) -> tuple[Inbox, bool]:
    """Read both pipes until the worker has closed them and exited, or the deadline.

    Non-blocking and bounded: at most ``output_limit`` bytes of output kept (head + tail),
    the worker killed when it writes more than ``max_output`` bytes of output or more than the
    result budget. Returns (inbox, timed_out); the caller closes the fds.
    """
    inbox = Inbox()
    budget = 4 * 1024 * 1024 + 4 * sum(expected.values()) + 64 * len(expected)
    parser = _FrameParser(inbox, expected, budget)
    half = output_limit // 2
    sel = selectors.DefaultSelector()
    for fd in (result_fd, output_fd):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    open_fds = {result_fd, output_fd}
    timed_out = False
    try:
        while True:
            now = time.time()
            if not open_fds and exited():
                break
            if now >= deadline:
                timed_out = True
                break
            if not open_fds:  # pipes closed early, worker still running: wait for its exit
                time.sleep(min(0.05, deadline - now))
                continue
            for key, _ in sel.select(timeout=min(0.1, deadline - now)):
                fd = key.fd
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    open_fds.discard(fd)
                    continue
                if fd == result_fd and not inbox.violation:
                    inbox.violation = parser.feed(chunk)
                elif fd == output_fd:
                    inbox.output_bytes += len(chunk)
                    room = half - len(inbox.output_head)
                    if room > 0:
                        inbox.output_head += chunk[:room]
                        chunk = chunk[room:]
                    inbox.output_tail = (inbox.output_tail + chunk)[-half:] if chunk else \
                        inbox.output_tail
                    if inbox.output_bytes > max_output and not inbox.violation:
                        inbox.violation = (f"worker wrote more than {max_output:,} bytes of "
                                           f"output")
                if inbox.violation:
                    kill()
                    open_fds.clear()
                    break
            if inbox.violation:
                break
    finally:
        sel.close()
    return inbox, timed_out
