"""A fork server with torch preloaded, started by the parent as a separate Python process.

The parent starts one zygote process (scrubbed environment), which imports torch once and then
forks one worker per candidate on request, so a worker starts in milliseconds. Unlike
``multiprocessing``'s forkserver it never re-imports the parent's ``__main__`` in the child.

Protocol: JSON lines over a UNIX stream socket (fd ``--fd``). Parent -> zygote
``{"id", "args": [...]}`` with three file descriptors attached (``SCM_RIGHTS``: the data
memfd, the write ends of the result and output pipes the *parent* created), ``{"kill": pid}``,
``{"ping": n}``; zygote -> parent ``{"ready": true}``, ``{"id", "pid"}``,
``{"pid", "exitcode", "cpu_s", "maxrss_kb"}`` (negative exitcode: killed by that signal;
CPU time and peak memory from the kernel's ``wait4`` accounting, which the worker cannot
forge), ``{"pong": n}``. A worker holds only its own three descriptors and /dev/null.
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
_FDS_PER_SPAWN = 3


def _recv(sock: socket.socket, fds: deque[int]) -> bytes:
    anc_size = socket.CMSG_SPACE(64 * array.array("i").itemsize)
    data, ancdata, _, _ = sock.recvmsg(1 << 20, anc_size)
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
            fds.extend(got)
    return data


def _child(sock: socket.socket, fds: list[int], queued: deque[int], args: list[str],
           child_main) -> None:
    """In the forked worker: keep only its own descriptors, then run the worker."""
    data_fd, result_fd, output_fd = fds
    sock.close()
    for fd in queued:  # descriptors already received for the *next* workers
        os.close(fd)
    for name in os.listdir("/proc/self/fd"):  # and any other pipe or socket of the zygote's
        fd = int(name)
        if fd > 2 and fd not in fds:
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                continue
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    for fd in (null, output_fd):
        os.close(fd)
    child_main(data_fd, result_fd, *args)


def _serve(sock_fd: int) -> None:  # runs in the zygote process
    import ctypes

    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    from archlore.evaluator.worker import child_main  # the expensive imports, once

    sock = socket.socket(fileno=sock_fd)

    def send(msg: dict[str, Any]) -> None:
        sock.sendall((json.dumps(msg) + "\n").encode())

    children: set[int] = set()
    fds: deque[int] = deque()
    send({"ready": True})
    buffer = b""
    while True:
        readable, _, _ = select.select([sock], [], [], 0.02)
        if readable:
            chunk = _recv(sock, fds)
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
                if "ping" in msg:
                    send({"pong": msg["ping"]})
                    continue
                mine = [fds.popleft() for _ in range(_FDS_PER_SPAWN)]
                pid = os.fork()
                if pid == 0:
                    try:
                        _child(sock, mine, fds, msg["args"], child_main)
                    except BaseException:  # noqa: BLE001 - report in the captured output
                        traceback.print_exc()
                        sys.stderr.flush()
                    finally:
                        os._exit(70)
                for fd in mine:  # the zygote keeps nothing of a worker
                    os.close(fd)
                children.add(pid)
                send({"id": msg["id"], "pid": pid})
        while children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            send({"pid": pid, "exitcode": os.waitstatus_to_exitcode(status),
                  "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss})


class WorkerHandle:
    """One forked worker: ``wait(timeout)``, ``kill()``; exit code and kernel accounting."""

    def __init__(self, pid: int, zygote: Zygote):
        self.pid = pid
        self._zygote = zygote
        self._done = threading.Event()
        self.exitcode: int | None = None
        self.usage: dict[str, float] = {}
        try:  # signal it directly, not through a fork server that might be wedged
            self._pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            self._pidfd = None

    def _finish(self, exitcode: int | None, usage: dict[str, float] | None = None) -> None:
        self.exitcode = exitcode
        self.usage = usage or {}
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the worker has exited (or the zygote was lost)."""
        return self._done.wait(timeout)

    def done(self) -> bool:
        return self._done.is_set()

    def kill(self) -> None:
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except OSError:
                pass  # already gone
        try:
            self._zygote._send({"kill": self.pid})
        except OSError:
            pass

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _state(pid: int) -> str:
    """The kernel's one-letter process state ('R', 'S', 'T' stopped, 'Z'...), '' if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read(4096).rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return ""


class Zygote:
    """Client side: starts the zygote process and forks workers through it. Thread-safe."""

    def __init__(self, env: dict[str, str]):
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Started from the installed package; -P keeps the working directory off sys.path so
        # a stray torch.py (or archlore/) there cannot shadow the real one. (-c, not -m: runpy
        # would warn that the package had already imported this module.)
        entry = f"from archlore.evaluator.zygote import _serve; _serve({child_sock.fileno()})"
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-c", entry],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=dict(env),
                cwd=os.path.abspath(os.sep), pass_fds=(child_sock.fileno(),))
        finally:
            child_sock.close()
        self._sock = parent_sock
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, Callable[[int], None]] = {}
        self._handles: dict[int, WorkerHandle] = {}
        self._early_exits: dict[int, tuple[int, dict[str, float]]] = {}
        self._pongs: dict[int, threading.Event] = {}
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True, name="archlore-zygote")
        self._reader.start()

    def alive(self) -> bool:
        return self._proc.poll() is None

    def healthy(self, timeout: float = 5.0) -> bool:
        """Alive, not stopped (SIGSTOP/SIGTSTP), and answering a ping within ``timeout``."""
        if not self.alive() or _state(self._proc.pid) in {"T", "t", "Z", "X", ""}:
            return False
        with self._lock:
            token = self._next_id
            self._next_id += 1
            event = self._pongs[token] = threading.Event()
        try:
            self._send({"ping": token})
        except OSError:
            return False
        answered = event.wait(timeout)
        with self._lock:
            self._pongs.pop(token, None)
        return answered

    def wait_ready(self, timeout: float = 120.0) -> bool:
        return self._ready.wait(timeout) and self.alive()

    def _send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        data = (json.dumps(msg) + "\n").encode()
        with self._send_lock:
            if fds:
                sent = self._sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                    array.array("i", fds))])
                data = data[sent:]
            if data:
                self._sock.sendall(data)

    def _read(self) -> None:
        try:
            self._read_messages()
        except (OSError, ValueError):  # reset or closed: the zygote is gone, as at EOF
            pass
        with self._lock:  # zygote gone: nobody will report these workers' exits
            self._ready.set()
            for handle in self._handles.values():
                handle._finish(None)
            self._handles.clear()
            for callback in self._pending.values():
                callback(-1)
            self._pending.clear()

    def _read_messages(self) -> None:
        reader = self._sock.makefile("rb")
        for raw in reader:
            try:
                msg = json.loads(raw)
            except ValueError:
                msg = None
            if not isinstance(msg, dict):
                continue
            with self._lock:
                if msg.get("ready"):
                    self._ready.set()
                elif "pong" in msg:
                    event = self._pongs.get(msg["pong"])
                    if event is not None:
                        event.set()
                elif "id" in msg:
                    callback = self._pending.pop(msg["id"], None)
                    if callback is not None:
                        callback(msg["pid"])
                elif "exitcode" in msg:
                    usage = {k: float(msg[k]) for k in ("cpu_s", "maxrss_kb") if k in msg}
                    handle = self._handles.pop(msg["pid"], None)
                    if handle is None:
                        self._early_exits[msg["pid"]] = (msg["exitcode"], usage)
                    else:
                        handle._finish(msg["exitcode"], usage)

    def spawn(self, args: list[str], fds: list[int], timeout: float = 15.0) -> WorkerHandle:
        """Fork a worker running ``evaluator.worker.child_main(data_fd, result_fd, *args)``;
        ``fds`` are the data memfd and the write ends of the result and output pipes."""
        got: dict[str, int] = {}
        started = threading.Event()

        def on_pid(pid: int) -> None:
            got["pid"] = pid
            started.set()

        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = on_pid
        self._send({"id": request_id, "args": list(args)}, fds)
        if not started.wait(timeout) or got["pid"] < 0:
            with self._lock:
                self._pending.pop(request_id, None)
            raise RuntimeError("the evaluator's zygote process did not fork a worker")
        handle = WorkerHandle(got["pid"], self)
        with self._lock:
            if got["pid"] in self._early_exits:
                handle._finish(*self._early_exits.pop(got["pid"]))
            elif not self.alive():
                handle._finish(None)
            else:
                self._handles[got["pid"]] = handle
        return handle

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._sock.close()

    def kill(self) -> None:
        """Hard stop (a wedged or stopped fork server): SIGKILL works on stopped processes."""
        self._proc.kill()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:
            self._sock.close()
        except OSError:
            pass


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
