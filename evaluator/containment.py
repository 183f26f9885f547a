"""OS-level containment of a worker process, applied after torch is imported and before any
candidate code runs. It must hold even when the static policy is bypassed.

Layers (all unprivileged Linux features):
- own session (``setsid``) and ``PR_SET_PDEATHSIG``: the worker dies with its parent;
- rlimits: CPU seconds, address space (CPU devices only: CUDA maps huge virtual ranges),
  file size, no core dumps;
- Landlock (``landlock`` package): the whole filesystem read-only, the private work
  directory writable (plus /dev read-write for CUDA device files);
- seccomp (``pyseccomp``): EPERM for execve/execveat, fork/vfork, clone without
  CLONE_THREAD (clone3 gets ENOSYS so glibc falls back to clone for threads), every new
  socket, ptrace and cross-process memory access, signals to other processes, namespaces,
  mount, bpf, io_uring, kernel keyrings, perf events and file-handle tricks.

A layer the kernel lacks is skipped with a loud "NOT APPLIED" line (and a stderr warning).
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import resource
import signal
import sys

from evaluator.records import EvalConfig

NOT_APPLIED = "NOT APPLIED"
_PR_SET_PDEATHSIG = 1
_CLONE_THREAD = 0x00010000
MAX_FILE_BYTES = 32 * 1024 * 1024  # any single file the worker writes (output, scratch)

_DENY_ALWAYS = (
    "execve", "execveat", "fork", "vfork", "socket", "ptrace", "process_vm_readv",
    "process_vm_writev", "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "tkill",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "name_to_handle_at", "open_by_handle_at",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "iopl", "ioperm", "syslog", "fanotify_init",
    "mount_setattr", "move_mount", "open_tree", "fsopen", "fsmount", "fspick",
)


def _warn(line: str) -> str:
    print(f"archlore WARNING: containment {line}", file=sys.stderr, flush=True)
    return line


def _apply_rlimits(cfg: EvalConfig, cuda: bool) -> str:
    cpu = int(math.ceil(cfg.timeout_s * max(1, cfg.cpu_threads) + 10))
    limits = [
        (resource.RLIMIT_CORE, 0, "core 0"),
        (resource.RLIMIT_CPU, cpu, f"cpu {cpu}s"),
        (resource.RLIMIT_FSIZE, MAX_FILE_BYTES, f"file size {MAX_FILE_BYTES >> 20} MiB"),
    ]
    if not cuda:
        mem = cfg.memory_mb * 1024 * 1024
        limits.append((resource.RLIMIT_AS, mem, f"address space {cfg.memory_mb} MiB"))
    applied = []
    for kind, value, label in limits:
        _, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))
        applied.append(label)
    # An over-long write then fails with EFBIG instead of killing the worker silently.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    note = "" if not cuda else " (no address-space limit on CUDA)"
    return "rlimits: " + ", ".join(applied) + note


def _apply_landlock(work_dir: str, cuda: bool) -> str:
    try:
        from landlock import FSAccess, Ruleset, landlock_abi_version

        abi = landlock_abi_version()
        ruleset = Ruleset()
        read_only = FSAccess.READ_FILE | FSAccess.READ_DIR | FSAccess.EXECUTE
        ruleset.allow("/", rules=read_only)
        ruleset.allow(work_dir)
        ruleset.allow("/dev/null", rules=FSAccess.READ_FILE | FSAccess.WRITE_FILE)
        extra = ""
        if cuda:  # the driver opens /dev/nvidia* read-write and issues ioctls
            dev = read_only | FSAccess.WRITE_FILE
            if abi >= 5:
                dev |= FSAccess.IOCTL_DEV
            ruleset.allow("/dev", rules=dev)
            extra = ", /dev read-write (CUDA)"
        ruleset.apply()
    except Exception as exc:  # noqa: BLE001 - any failure means "not contained": say so
        return _warn(f"landlock: {NOT_APPLIED} ({type(exc).__name__}: {exc}); file writes "
                     f"outside the work dir are NOT blocked")
    return f"landlock ABI {abi}: filesystem read-only, work dir writable{extra}"


def _apply_seccomp() -> str:
    try:
        import pyseccomp as sc

        pid = os.getpid()
        filt = sc.SyscallFilter(sc.ALLOW)
        filt.set_attr(sc.Attr.CTL_TSYNC, 1)  # all threads torch already started, too
        eperm = sc.ERRNO(errno.EPERM)
        skipped = []
        for name in _DENY_ALWAYS:
            try:
                filt.add_rule(eperm, name)
            except (OSError, ValueError):  # syscall unknown on this arch/libseccomp
                skipped.append(name)
        filt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
        filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # glibc then falls back to clone
        for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
            filt.add_rule(eperm, name, sc.Arg(0, sc.NE, pid))  # only signal ourselves
        filt.add_rule(eperm, "prlimit64", sc.Arg(0, sc.NE, 0))  # only our own limits
        filt.load()
    except Exception as exc:  # noqa: BLE001
        return _warn(f"seccomp: {NOT_APPLIED} ({type(exc).__name__}: {exc}); process "
                     f"creation and network sockets are NOT blocked")
    note = f" (unknown here: {', '.join(skipped)})" if skipped else ""
    return ("seccomp: EPERM for exec, fork/vfork/non-thread clone, all new sockets, ptrace, "
            "signals to other processes, namespaces/mount/bpf/io_uring/keyrings" + note)


def apply_containment(work_dir: str, cfg: EvalConfig, cuda: bool = False) -> list[str]:
    """Contain the calling process; returns one line per layer saying what was applied."""
    lines = []
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    lines.append(f"process: own session, private work dir, wall-clock timeout "
                 f"{cfg.timeout_s:g}s (killed by the parent), output capped at "
                 f"{cfg.max_output_bytes} bytes")
    lines.append(_apply_rlimits(cfg, cuda))
    lines.append(_apply_landlock(work_dir, cuda))
    lines.append(_apply_seccomp())
    return lines


def containment_report() -> list[str]:
    """What a worker on this machine would get, probed without containing this process."""
    lines = ["rlimits: cpu, address space (CPU), file size, core: available"]
    try:
        from landlock import landlock_abi_version

        lines.append(f"landlock: available, ABI {landlock_abi_version()}")
    except Exception as exc:  # noqa: BLE001
        lines.append(f"landlock: {NOT_APPLIED} — unavailable ({type(exc).__name__}: {exc})")
    try:
        import pyseccomp  # noqa: F401

        with open("/proc/self/status") as f:
            supported = any(line.startswith("Seccomp:") for line in f)
        lines.append("seccomp: available" if supported
                     else f"seccomp: {NOT_APPLIED} — kernel without seccomp")
    except Exception as exc:  # noqa: BLE001
        lines.append(f"seccomp: {NOT_APPLIED} — unavailable ({type(exc).__name__}: {exc})")
    return lines
