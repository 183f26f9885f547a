"""OS-level containment of a worker process, applied after torch is imported and before any
candidate code runs. It must hold even when the static policy is bypassed.

Layers (all unprivileged Linux features):
- own session (``setsid``) and ``PR_SET_PDEATHSIG``: the worker dies with its parent;
- rlimits: CPU seconds, address space (on CUDA the data segment instead: the driver reserves
  huge virtual ranges), file size, no core dumps;
- Landlock (``landlock`` package): no file writes at all (the work directory is read-only;
  the dataset comes in a memfd, results go out through pipes); reads only from the Python
  installation, system libraries and a few /proc and /sys files (so secrets in /tmp, /home,
  /root... stay unreadable); on CUDA the /dev devices except shm, mqueue and terminals.
  On CUDA the driver is initialised *before* containment (evaluator.worker): both Landlock and
  seccomp break cuInit, while an initialised driver keeps working under them;
- seccomp (``pyseccomp``): EPERM for execve/execveat, fork/vfork, clone without
  CLONE_THREAD (clone3 gets ENOSYS so glibc falls back to clone for threads), every new
  socket, ptrace and cross-process memory access, signals to other processes (also those the
  kernel sends for F_SETOWN/F_SETSIG/FIOSETOWN), clearing the death signal, SysV IPC, memfds,
  namespaces, mount, bpf, io_uring, kernel keyrings, perf events and file-handle tricks.

A layer the kernel lacks is skipped with a loud "NOT APPLIED" line (and a stderr warning).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import math
import os
import resource
import signal
import sys

from archlore.evaluator.records import EvalConfig

NOT_APPLIED = "NOT APPLIED"
_PR_SET_PDEATHSIG = 1
_CLONE_THREAD = 0x00010000
MAX_FILE_BYTES = 32 * 1024 * 1024  # any single file (the worker can write none but /dev/null)
MAX_OPEN_FILES = 256  # bounds pipe buffers a worker can pin in the kernel

_DENY_ALWAYS = (
    "execve", "execveat", "fork", "vfork", "socket", "ptrace", "process_vm_readv",
    "process_vm_writev", "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "tkill",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "name_to_handle_at", "open_by_handle_at",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "iopl", "ioperm", "syslog", "fanotify_init",
    "mount_setattr", "move_mount", "open_tree", "fsopen", "fsmount", "fspick",
    # Landlock does not cover metadata changes; a worker running as root could otherwise
    # chmod/chown files it can reach, or raise its own rlimits
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "setrlimit", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setgroups", "capset", "settimeofday", "clock_settime", "adjtimex", "sethostname",
    "setdomainname", "mknod", "mknodat",
    # SysV IPC objects outlive the process (a worker once left 3 GiB of shared memory in the
    # kernel); memfds are unbounded anonymous files; the scheduler/IO priority of others
    "shmget", "shmat", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget",
    "msgsnd", "msgrcv", "msgctl", "ipc", "memfd_create", "memfd_secret", "setpriority",
    "ioprio_set", "kcmp", "process_madvise", "migrate_pages", "move_pages",
)
# fcntl commands that make the kernel signal a chosen process (F_SETOWN + O_ASYNC delivers
# SIGKILL/SIGSTOP to any pid, the owner of a lease or dnotify watch is signalled too)
_DENY_FCNTL = (8, 10, 15, 1024, 1026)  # F_SETOWN, F_SETSIG, F_SETOWN_EX, F_SETLEASE, F_NOTIFY
# the same through ioctl (FIOSETOWN, SIOCSPGRP), and typing into a terminal (TIOCSTI,
# TIOCLINUX)
_DENY_IOCTL = (0x8901, 0x8902, 0x5412, 0x541C)
_PR_SET_PDEATHSIG_OPT = 1


def _warn(line: str) -> str:
    print(f"archlore WARNING: containment {line}", file=sys.stderr, flush=True)
    return line


def _apply_rlimits(cfg: EvalConfig, cuda: bool) -> str:
    cpu = int(math.ceil(cfg.timeout_s * max(1, cfg.cpu_threads) + 10))
    limits = [
        (resource.RLIMIT_CORE, 0, "core 0"),
        (resource.RLIMIT_CPU, cpu, f"cpu {cpu}s"),
        (resource.RLIMIT_FSIZE, MAX_FILE_BYTES, f"file size {MAX_FILE_BYTES >> 20} MiB"),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES, f"open files {MAX_OPEN_FILES}"),
    ]
    mem = cfg.memory_mb * 1024 * 1024
    if cuda:  # the driver reserves huge PROT_NONE ranges: bound writable memory instead
        limits.append((resource.RLIMIT_DATA, mem, f"data segment {cfg.memory_mb} MiB"))
    else:
        limits.append((resource.RLIMIT_AS, mem, f"address space {cfg.memory_mb} MiB"))
    applied = []
    for kind, value, label in limits:
        _, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))
        applied.append(label)
    # An over-long write then fails with EFBIG instead of killing the worker silently.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return "rlimits: " + ", ".join(applied)


def _package_dirs(pkg) -> list[str]:
    """The folders archlore's own modules load from (one per part in an editable install)."""
    dirs = {os.path.dirname(os.path.abspath(pkg.__file__))}
    for name in ("evaluator",):
        mod = sys.modules.get(f"archlore.{name}")
        if mod is not None and getattr(mod, "__file__", None):
            dirs.add(os.path.dirname(os.path.abspath(mod.__file__)))
    return sorted(dirs)


def label_sources(data_root: str | None = None) -> list[str]:
    """Files with dataset labels inside otherwise readable trees: scikit-learn's bundled
    data (digits), Debian's /usr/share/datasets, and the data root. A worker gets its data
    from the parent and must not read labels from disk either."""
    import importlib.util

    out = ["/usr/share/datasets"]
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is not None and spec.origin:
        out.append(os.path.join(os.path.dirname(spec.origin), "datasets", "data"))
    if data_root:
        out.append(data_root)
    return sorted({os.path.realpath(p) for p in out if os.path.exists(p)})


def _without(roots: set[str], excluded: list[str]) -> tuple[list[str], list[str]]:
    """``roots`` with the ``excluded`` trees cut out: a root holding an excluded path is
    replaced by its children, recursively along that path only (Landlock only allows).
    Returns (readable paths, directories on the way that stay listable but not readable:
    without listing them Python's importer could not find the modules inside)."""
    out, listed, stack = set(), set(), sorted({os.path.realpath(p) for p in roots})
    while stack:
        path = stack.pop()
        if path in excluded:
            continue
        if not any(e.startswith(path.rstrip(os.sep) + os.sep) for e in excluded):
            out.add(path)
        elif os.path.isdir(path):
            listed.add(path)
            stack.extend(os.path.realpath(os.path.join(path, name)) for name in os.listdir(path))
    return sorted(out), sorted(listed)


@functools.lru_cache(maxsize=1)
def _base_readable() -> tuple[str, ...]:
    """Computed once in the fork server (evaluator.worker calls it at import): listing the
    trees around the cut-outs takes ~0.1 s, too long for every worker."""
    import site

    import archlore
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(),
             site.getusersitepackages(), *_package_dirs(archlore),
             "/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/localtime",
             "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/sys/devices/system/cpu",
             "/sys/fs/cgroup", "/dev/urandom", "/dev/random", "/dev/zero"}
    paths.update(p for p in sys.path if p and "site-packages" in p)
    readable, listed = _without({p for p in paths if p and os.path.exists(p)}, label_sources())
    return tuple(readable), tuple(listed)


def readable_paths(data_root: str | None) -> tuple[list[str], list[str]]:
    """Where a worker may read: the Python installation, system libraries, a few /proc and
    /sys files torch consults. Not /tmp, /home, /root, /work, nor any dataset (its data
    comes from the parent): ``label_sources(data_root)`` are cut out of these trees.
    Returns (readable trees, directories that are only listable)."""
    base, listed = _base_readable()
    root = os.path.realpath(data_root) if data_root else None
    if root and any(root == p or root.startswith(p.rstrip(os.sep) + os.sep) for p in base):
        readable, more = _without(set(base), label_sources(data_root))  # data in a read tree
        return readable, sorted({*listed, *more})
    return list(base), list(listed)


def _apply_landlock(work_dir: str, cfg: EvalConfig, cuda: bool) -> str:
    try:
        from landlock import FSAccess, Ruleset, landlock_abi_version

        abi = landlock_abi_version()
        ruleset = Ruleset()
        read_dir = FSAccess.READ_FILE | FSAccess.READ_DIR | FSAccess.EXECUTE
        read_file = FSAccess.READ_FILE | FSAccess.EXECUTE
        # The dataset arrives in a memfd from the parent: no data directory to read, and the
        # work dir is read-only, so a worker writes no file at all (no disk quota to exceed,
        # no deep trees or FIFOs to leave behind, nothing for the parent to trip over).
        readable, listed = readable_paths(cfg.data_root)
        for path in [*readable, work_dir]:
            ruleset.allow(path, rules=read_dir if os.path.isdir(path) else read_file)
        for path in listed:
            ruleset.allow(path, rules=FSAccess.READ_DIR)
        ruleset.allow("/dev/null", rules=FSAccess.READ_FILE | FSAccess.WRITE_FILE)
        extra = ""
        if cuda:  # the (already initialised) driver may open more /dev/nvidia* files
            dev = read_dir | FSAccess.WRITE_FILE
            if abi >= 5:
                dev |= FSAccess.IOCTL_DEV
            # every device but shared memory, message queues and terminals
            for name in os.listdir("/dev"):
                if name in {"shm", "mqueue", "pts", "ptmx", "console"} or name.startswith("tty"):
                    continue
                path = os.path.join("/dev", name)
                if os.path.islink(path):  # /dev/fd, /dev/core...: a rule would follow the link
                    continue
                ruleset.allow(path, rules=dev if os.path.isdir(path) else dev & ~FSAccess.READ_DIR)
            extra = "; /dev devices read-write except shm/mqueue/terminals (CUDA)"
        ruleset.apply()
    except Exception as exc:  # noqa: BLE001 - any failure means "not contained": say so
        return _warn(f"landlock: {NOT_APPLIED} ({type(exc).__name__}: {exc}); file reads and "
                     f"writes outside the work dir are NOT blocked")
    return (f"landlock ABI {abi}: no file writes (work dir read-only); reads only Python and "
            f"system libraries, no dataset files ({len(readable)} paths){extra}")


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
        filt.add_rule(eperm, "prlimit64", sc.Arg(2, sc.NE, 0))  # read limits, never set them
        for cmd in _DENY_FCNTL:
            filt.add_rule(eperm, "fcntl", sc.Arg(1, sc.EQ, cmd))
        for cmd in _DENY_IOCTL:
            filt.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, cmd))
        # the death signal set in apply_containment stays: a worker cannot outlive archlore
        filt.add_rule(eperm, "prctl", sc.Arg(0, sc.EQ, _PR_SET_PDEATHSIG_OPT))
        filt.load()
    except Exception as exc:  # noqa: BLE001
        return _warn(f"seccomp: {NOT_APPLIED} ({type(exc).__name__}: {exc}); process "
                     f"creation and network sockets are NOT blocked")
    note = f" (unknown here: {', '.join(skipped)})" if skipped else ""
    return ("seccomp: EPERM for exec, fork/vfork/non-thread clone, all new sockets, ptrace, "
            "signals to other processes (also via F_SETOWN/F_SETSIG), changing the death "
            "signal, SysV IPC, memfd, setting rlimits/ids/capabilities, chmod/chown/xattr, "
            "namespaces/mount/bpf/io_uring/keyrings" + note)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> str:
    """Empty effective/permitted/inheritable capability sets (matters when run as root)."""
    if os.geteuid() != 0:
        return "capabilities: none (not root)"
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        return _warn(f"capabilities: {NOT_APPLIED} (capset: "
                     f"{os.strerror(ctypes.get_errno())}); root keeps its capabilities")
    return "capabilities: all dropped (running as root without capabilities)"


def apply_containment(work_dir: str, cfg: EvalConfig, cuda: bool = False) -> list[str]:
    """Contain the calling process; returns one line per layer saying what was applied."""
    lines = []
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    lines.append(f"process: own session, death signal locked, read-only work dir, wall-clock timeout "
                 f"{cfg.timeout_s:g}s (killed by the parent), output capped at "
                 f"{cfg.max_output_bytes} bytes")
    lines.append(_apply_rlimits(cfg, cuda))
    lines.append(_apply_landlock(work_dir, cfg, cuda))
    lines.append(_drop_capabilities())  # before seccomp, which denies capset
    lines.append(_apply_seccomp())
    return lines


def containment_report() -> list[str]:
    """What a worker on this machine would get, probed without containing this process."""
    lines = ["rlimits: cpu, address space (CPU) or data segment (CUDA), file size, core: available"]
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
