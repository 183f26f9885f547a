"""A fork server with torch preloaded, started by the parent as a separate Python process.

The parent starts one zygote process (scrubbed environment), which imports torch once and then
forks one worker per candidate on request, so a worker starts in milliseconds. Unlike
``multiprocessing``'s forkserver it never re-imports the parent's ``__main__`` in the child.

Protocol, JSON lines: parent -> zygote ``{"id", "args": [code, cfg_json, device, work_dir]}``
or ``{"kill": pid}``; zygote -> parent ``{"ready": true}``, ``{"id", "pid"}``,
``{"pid", "exitcode"}`` (negative: killed by that signal). Workers never hold the protocol
pipes: they replace fds 0-2 before any candidate code runs.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1


def _serve() -> None:  # runs in the zygote process
    import ctypes

    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    from archlore.evaluator.worker import child_main  # the expensive imports, once

    out = sys.stdout

    def send(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    children: set[int] = set()
    send({"ready": True})
    stdin = sys.stdin.buffer
    buffer = b""
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.02)
        if readable:
            chunk = os.read(stdin.fileno(), 1 << 20)
            if not chunk:  # the parent is gone
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                msg = json.loads(line)
                if "kill" in msg:
                    if msg["kill"] in children:  # only our own, not-yet-reaped children
                        os.kill(msg["kill"], signal.SIGKILL)
                    continue
                pid = os.fork()
                if pid == 0:
                    try:
                        child_main(*msg["args"])
                    except BaseException:  # noqa: BLE001 - report in the captured output
                        traceback.print_exc()
                        sys.stderr.flush()
                    finally:
                        os._exit(70)
                children.add(pid)
                send({"id": msg["id"], "pid": pid})
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            send({"pid": pid, "exitcode": os.waitstatus_to_exitcode(status)})


class WorkerHandle:
    """One forked worker: ``wait(timeout) -> exitcode | None`` and ``kill()``."""

    def __init__(self, pid: int, zygote: Zygote):
        self.pid = pid
        self._zygote = zygote
        self._done = threading.Event()
        self.exitcode: int | None = None

    def _finish(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the worker has exited (or the zygote was lost)."""
        return self._done.wait(timeout)

    def kill(self) -> None:
        self._zygote._send({"kill": self.pid})


class Zygote:
    """Client side: starts the zygote process and forks workers through it. Thread-safe."""

    def __init__(self, env: dict[str, str]):
        # Started by module path from the installed package; -P keeps the working directory
        # off sys.path so a stray torch.py (or archlore/) there cannot shadow the real one.
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "archlore.evaluator.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=dict(env), cwd=os.path.abspath(os.sep))
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, Callable[[int], None]] = {}
        self._handles: dict[int, WorkerHandle] = {}
        self._early_exits: dict[int, int] = {}
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True, name="archlore-zygote")
        self._reader.start()

    def alive(self) -> bool:
        return self._proc.poll() is None

    def wait_ready(self, timeout: float = 120.0) -> bool:
        return self._ready.wait(timeout)

    def _send(self, msg: dict[str, Any]) -> None:
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write((json.dumps(msg) + "\n").encode())
            self._proc.stdin.flush()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                msg = None
            if not isinstance(msg, dict):  # a stray print at start-up, not the protocol
                continue
            with self._lock:
                if msg.get("ready"):
                    self._ready.set()
                elif "id" in msg:
                    self._pending.pop(msg["id"])(msg["pid"])
                elif "exitcode" in msg:
                    handle = self._handles.pop(msg["pid"], None)
                    if handle is None:
                        self._early_exits[msg["pid"]] = msg["exitcode"]
                    else:
                        handle._finish(msg["exitcode"])
        with self._lock:  # zygote gone: nobody will report these workers' exits
            self._ready.set()
            for handle in self._handles.values():
                handle._finish(None)
            self._handles.clear()
            for callback in self._pending.values():
                callback(-1)
            self._pending.clear()

    def spawn(self, *args: str, timeout: float = 120.0) -> WorkerHandle:
        """Fork a worker running ``evaluator.worker.child_main(*args)``."""
        got: dict[str, int] = {}
        started = threading.Event()

        def on_pid(pid: int) -> None:
            got["pid"] = pid
            started.set()

        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = on_pid
        self._send({"id": request_id, "args": list(args)})
        if not started.wait(timeout) or got["pid"] < 0:
            raise RuntimeError("the evaluator's zygote process did not fork a worker")
        handle = WorkerHandle(got["pid"], self)
        with self._lock:
            if got["pid"] in self._early_exits:
                handle._finish(self._early_exits.pop(got["pid"]))
            elif not self.alive():
                handle._finish(None)
            else:
                self._handles[got["pid"]] = handle
        return handle

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


if __name__ == "__main__":
    _serve()
