"""A corpus of hostile or broken candidates, each with the outcome expected with the static
policy ON and OFF (OFF probes the OS-level containment alone).

Placeholders replaced per test: SENTINEL (a path outside the worker's directory that must
never be created), SECRET (a file whose content must never reach the result), PORT (a local
listening socket that must never be connected to), TARGET (the pid of a bystander process
that must stay alive and running).

Classes (issue 10): escapes from the process (files, network, processes, signals), forged
accuracy (frames, gc, globals, match patterns, self rebinding, string-keyed setters, torch
modes, forged result frames), hidden cost (batch-size and mode branches, lazy or frozen
parameters, compute the FLOP formulas do not see, compute outside torch), the parent as the
weak point (symlinks, FIFOs, floods, closed channels) and signals/IPC the filters missed
(F_SETOWN/F_SETSIG, death signal, SysV shm, stopping the fork server, disk and memfd use).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAKE_SECRET_ENV = "sk-archlore-test-env-secret-7f3a"  # put in os.environ by conftest


@dataclass(frozen=True)
class Case:
    name: str
    code: str
    on: tuple[str, str]  # (status, reason substring) with the static policy
    off: tuple[str, str]  # ... and without it: the OS layer alone
    cfg: dict = field(default_factory=dict)
    # An "ok" outcome must carry honest accuracies: the attack tries to forge them to 1.0.
    forges_accuracy: bool = False
    klass: str = "escape"  # the attack class of issue 10, for the figures


NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)
        self.setup()

    def setup(self):
        pass

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))
'''


def attack(body: str, imports: str = "") -> str:
    """A valid Net whose constructor runs ``body`` (indented into ``setup``)."""
    indented = "\n".join("        " + line for line in body.strip().splitlines())
    return imports + NET.replace("    def setup(self):\n        pass",
                                 "    def setup(self):\n" + indented)


EPERM = "Operation not permitted"
EACCES = "Permission denied"
FAST = {"timeout_s": 8.0}

CASES: list[Case] = [
    Case("write_outside", attack("open('SENTINEL', 'w').write('escaped')"),
         ("rejected", "denied-name"), ("failed", EACCES)),
    Case("pathlib_write", attack("pathlib.Path('SENTINEL').write_text('escaped')",
                                 "import pathlib\n"),
         ("rejected", "import-not-allowed"), ("failed", EACCES)),
    Case("torch_save_outside", attack("torch.save(self.fc.weight, 'SENTINEL')"),
         ("rejected", "denied-attribute"), ("failed", EACCES)),
    Case("read_secret", attack("print(open('SECRET').read())"),
         ("rejected", "denied-name"), ("failed", EACCES)),
    Case("env_secret", attack("print(dict(os.environ))\nprint(open('/proc/self/environ').read())",
                              "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", EACCES)),
    Case("network_socket", attack("s = socket.socket()\ns.connect(('127.0.0.1', PORT))",
                                  "import socket\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM)),
    Case("unix_socket", attack("socket.socket(socket.AF_UNIX).connect('/run/x.sock')",
                               "import socket\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM)),
    Case("subprocess_run", attack("subprocess.run(['touch', 'SENTINEL'])", "import subprocess\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM)),
    Case("os_system", attack("assert os.system('touch SENTINEL') == 0, 'system blocked'",
                             "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", "system blocked")),
    Case("os_fork", attack("if os.fork() == 0:\n    open('SENTINEL', 'w')", "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM)),
    Case("multiprocessing", attack(
        "multiprocessing.current_process().daemon = False\n"
        "p = multiprocessing.Process(target=print)\np.start()", "import multiprocessing\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM)),
    Case("ctypes_system", attack(
        "assert ctypes.CDLL(None).system(b'touch SENTINEL') == 0, 'libc system blocked'",
        "import ctypes\n"),
         ("rejected", "import-not-allowed"), ("failed", "libc system blocked")),
    Case("loop_in_init", attack("while True:\n    pass"),
         ("timeout", "stage 'build'"), ("timeout", "stage 'build'"), FAST),
    Case("loop_in_forward", NET.replace("        return self.fc", "        while True:\n"
                                        "            pass\n        return self.fc"),
         ("timeout", "stage 'shape'"), ("timeout", "stage 'shape'"), FAST),
    Case("memory_bomb", attack("self.hog = [torch.ones(2 ** 26) for _ in range(1000)]"),
         ("failed", "memory"), ("failed", "memory"), {"memory_mb": 2048}),
    Case("output_flood", attack("while True:\n    print('x' * 100000)"),
         ("failed", "bytes of output"), ("failed", "bytes of output"), FAST, klass="parent"),
    Case("sys_exit", attack("sys.exit(3)", "import sys\n"),
         ("rejected", "import-not-allowed"), ("failed", "sys.exit(3)")),
    Case("raise_system_exit", attack("raise SystemExit(4)"),
         ("failed", "sys.exit(4)"), ("failed", "sys.exit(4)")),
    Case("os_underscore_exit", attack("os._exit(0)", "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", "exited with code 0")),
    Case("kill_parent", attack("os.kill(os.getppid(), 9)", "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM)),
    Case("kill_everyone", attack("os.kill(-1, 9)", "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM)),
    Case("ignore_sigterm_and_hang", attack(
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass",
        "import signal\n"),
         ("rejected", "import-not-allowed"), ("timeout", "wall-clock timeout"), FAST),
    Case("raise_rlimit", attack(
        "resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)",
        "import resource\n"),
         ("rejected", "import-not-allowed"), ("failed", "ValueError")),
    Case("torch_os_chain", attack("assert torch.os.system('touch SENTINEL') == 0, 'blocked'"),
         ("rejected", "denied-attribute"), ("failed", "blocked")),
    Case("dunder_chain", attack(
        "subs = ().__class__.__base__.__subclasses__()\n"
        "wrap = [c for c in subs if c.__name__ == '_wrap_close'][0]\n"
        "assert wrap.__init__.__globals__['system']('touch SENTINEL') == 0, 'blocked'"),
         ("rejected", "dunder-attribute"), ("failed", "blocked")),
    Case("getattr_built_string", attack(
        "mod = getattr(torch, 'o' + 's')\n"
        "assert getattr(mod, 'sys' + 'tem')('touch SENTINEL') == 0, 'blocked'"),
         ("rejected", "getattr-nonliteral"), ("failed", "blocked")),
    Case("decorator_hub", NET.replace(
        "class Net(nn.Module):",
        "@torch.hub.load_state_dict_from_url\nclass Net(nn.Module):"),
         ("rejected", "denied-attribute"), ("failed", EACCES)),
    Case("hub_download", attack(
        "torch.hub.load_state_dict_from_url('http://127.0.0.1:PORT/w.pt')"),
         ("rejected", "denied-attribute"), ("failed", EACCES)),  # no cache dir to write
    Case("lambda_eval", attack("f = lambda: eval(\"open('SENTINEL', 'w')\")\nf()"),
         ("rejected", "denied-name"), ("failed", EACCES)),
    Case("cpp_extension", attack(
        "load_inline('x', cpp_sources='int f(){system(\"touch SENTINEL\");return 0;}', "
        "functions=['f'])",
        "from torch.utils.cpp_extension import load_inline\n"),
         ("rejected", "import-not-allowed"), ("failed", "")),
    Case("pickle_payload", attack(
        "assert pickle.loads(b\"cos\\nsystem\\n(S'touch SENTINEL'\\ntR.\") == 0, 'blocked'",
        "import pickle\n"),
         ("rejected", "import-not-allowed"), ("failed", "blocked")),
    Case("nan_loss", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        out = self.fc(x.mean(dim=(2, 3)))\n"
        "        return out * float('nan') if self.training else out"),
         ("failed", "NaN/inf"), ("failed", "NaN/inf")),
    Case("wrong_shape", NET.replace("nn.Linear(in_channels, num_classes)",
                                    "nn.Linear(in_channels, num_classes + 1)"),
         ("failed", "expected (64, 10)"), ("failed", "expected (64, 10)")),
    Case("syntax_error", NET.replace("def forward(self, x):", "def forward(self, x)"),
         ("rejected", "syntax-error"), ("failed", "SyntaxError")),
    Case("missing_net", NET.replace("class Net(", "class Model("),
         ("rejected", "missing-net"), ("rejected", "no `class Net")),
    # Result forgery inside the worker: a running generator's frame walks up to the cascade
    # and swaps how the result is built. The worker holds no validation/test labels and the
    # parent computes the accuracies from its predictions, so even with the policy off the
    # forgery only changes what the parent ignores: an honest "ok".
    Case("frame_walk_forgery", attack(
        "holder = []\n"
        "def walk():\n"
        "    f = holder[0].gi_frame.f_back\n"
        "    while f is not None:\n"
        "        if 'run_cascade' in f.f_globals:\n"
        "            FORGE_GLOBALS(f.f_globals)\n"
        "        f = f.f_back\n"
        "    yield 0\n"
        "holder.append(walk())\n"
        "next(holder[0])"),
         ("rejected", "denied-attribute"), ("ok", ""), forges_accuracy=True, klass="forge"),
    # The same forgery through modules re-exported by allowed ones (torch.cuda.graphs.gc).
    Case("gc_forgery", attack(
        "for d in torch.cuda.graphs.gc.get_objects():\n"
        "    if isinstance(d, dict) and 'run_cascade' in d and 'Evaluation' in d:\n"
        "        FORGE_GLOBALS(d)"),
         ("rejected", "denied-attribute"), ("ok", ""), forges_accuracy=True, klass="forge"),
    # ... and with attribute names built at run time (typing.operator.attrgetter).
    Case("attrgetter_frame_walk", attack(
        "at = typing.operator.attrgetter\n"
        "holder = []\n"
        "def walk():\n"
        "    f = at('gi_' + 'frame')(holder[0])\n"
        "    while f is not None:\n"
        "        g = at('f_glo' + 'bals')(f)\n"
        "        if 'run_cascade' in g:\n"
        "            FORGE_GLOBALS(g)\n"
        "        f = at('f_' + 'back')(f)\n"
        "    yield 0\n"
        "holder.append(walk())\n"
        "next(holder[0])", "import typing\n"),
         ("rejected", "denied-attribute"), ("ok", ""), forges_accuracy=True, klass="forge"),
    # A match class pattern reads __globals__ by keyword; subscripts then reach __import__.
    Case("match_pattern_globals", attack(
        "match F.relu:\n"
        "    case object(__globals__=g):\n"
        "        imp = g['__builtins__']['__import__']\n"
        "FORGE_GC(imp)", "import torch.nn.functional as F\n"),
         ("rejected", "dunder-attribute"), ("ok", ""), forges_accuracy=True, klass="forge"),
    # Any variable named self may touch private attributes: dataclasses._create_fn execs code.
    Case("self_rebinding", attack(
        "me = self\n"
        "for self in [dataclasses]:\n"
        "    fn = self._create_fn('f', [], ['return __import__'], globals={})\n"
        "imp = fn()\n"
        "self = me\n"
        "FORGE_GC(imp)", "import dataclasses\n"),
         ("rejected", "self-rebinding"), ("ok", ""), forges_accuracy=True, klass="forge"),
    # functools.update_wrapper sets attributes named by strings (here Tensor.argmax).
    Case("update_wrapper_setattr", attack(
        "class Zero:\n"
        "    def argmax(t, *a, **k):\n"
        "        return torch.zeros(len(t), dtype=torch.long)\n"
        "functools.update_wrapper(torch.Tensor, Zero, assigned=('argmax',), updated=())",
        "import functools\n"),
         ("rejected", "denied-attribute"), ("ok", ""), forges_accuracy=True, klass="forge"),
    # A TorchFunctionMode kept pushed by a suspended generator outlives the constructor and
    # intercepts the evaluator's own torch calls (argmax included).
    Case("torch_function_mode", attack(
        "class Mode(torch.overrides.TorchFunctionMode):\n"
        "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
        "        out = func(*args, **(kwargs or {}))\n"
        "        if func is torch.argmax:\n"
        "            return out * 0\n"
        "        return out\n"
        "def keep():\n"
        "    with Mode():\n"
        "        yield\n"
        "self.keeper = keep()\n"
        "next(self.keeper)"),
         ("rejected", "denied-attribute"), ("ok", ""), forges_accuracy=True, klass="forge"),
    # The labels are not in the worker, nor readable from disk: scikit-learn's bundled
    # digits (and any data root) are cut out of the readable trees.
    Case("read_digits_labels", attack(
        "labels = sklearn.datasets.load_digits().target", "import sklearn.datasets\n"),
         ("rejected", "import-not-allowed"), ("failed", EACCES), {"timeout_s": 60.0},
         klass="forge"),
    Case("monkeypatch_tensor_sum", attack(
        "torch.Tensor.sum = lambda t, *a, **k: torch.full((), t.numel())"),
         ("rejected", "attribute-assignment"), ("ok", ""), forges_accuracy=True, klass="forge"),
    Case("tensor_subclass_sum", NET.replace(
        "class Net(nn.Module):",
        "class Fake(torch.Tensor):\n    def sum(self, *a, **k):\n"
        "        return torch.full((), self.numel())\n\n\nclass Net(nn.Module):").replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        return self.fc(x.mean(dim=(2, 3))).as_subclass(Fake)"),
         ("ok", ""), ("ok", ""), forges_accuracy=True, klass="forge"),
    # A forged result frame written to every descriptor (the result pipe among them), through
    # a module path that reaches codecs.open with the policy on.
    Case("fake_result_frame", attack(
        "opener = torch.autograd.profiler_util.json.codecs.open\n"
        "import json, os, struct\n"
        "fake = json.dumps({'result': {'status': 'ok', 'stage': 'eval', 'val_acc': 1.0,\n"
        "                              'test_acc': 1.0, 'macs': 1, 'params': 1}}).encode()\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, struct.pack('>IB', len(fake), 1) + fake)\n"
        "    except OSError:\n"
        "        pass"),
         ("rejected", "denied-attribute"), ("failed", "2 results (forged frames)"), klass="forge"),
    Case("result_padding_flood", attack(
        "opener = torch.profiler.profiler.gzip.open\n"
        "import json, os, struct\n"
        "pad = json.dumps({'pad': 'x' * 200000}).encode()\n"
        "frame = struct.pack('>IB', len(pad), 1) + pad\n"
        "while True:\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            os.write(fd, frame)\n"
        "        except OSError:\n"
        "            pass"),
         ("rejected", "denied-attribute"), ("failed", "bytes to its result channel"), FAST,
         klass="parent"),
    Case("zero_flood", attack(
        "import os\n"
        "while True:\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            os.write(fd, bytes(65536))\n"
        "        except OSError:\n"
        "            pass"),
         ("rejected", "import-not-allowed"), ("failed", "malformed result frame"), FAST,
         klass="parent"),
    # --- hidden cost ----------------------------------------------------------------------
    Case("batch_le2_branch", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        if x.shape[0] > 2:\n            x = self.big(x)\n"
        "        return self.fc(x.mean(dim=(2, 3)))").replace(
        "        self.setup()", "        self.big = BIG"),
         ("rejected", "exceed the cap"), ("rejected", "exceed the cap"),
         {"max_mmacs": 0.01}, klass="cost"),
    Case("batch_exact_branch", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        if x.shape[0] not in (1, 64):\n            x = self.big(x)\n"
        "        return self.fc(x.mean(dim=(2, 3)))").replace(
        "        self.setup()", "        self.big = BIG"),
         ("rejected", "inconsistent cost"), ("rejected", "inconsistent cost"), klass="cost"),
    Case("expensive_in_training", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        if self.training:\n            x = self.big(x)\n"
        "        return self.fc(x.mean(dim=(2, 3)))").replace(
        "        self.setup()", "        self.big = BIG"),
         ("rejected", "in training exceed the cap"), ("rejected", "in training exceed the cap"),
         {"max_mmacs": 0.01}, klass="cost"),
    Case("expensive_after_training", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        if self.training:\n            self.seen = True\n"
        "        elif self.seen:\n            x = self.big(x)\n"
        "        return self.fc(x.mean(dim=(2, 3)))").replace(
        "        self.setup()", "        self.big = BIG\n        self.seen = False"),
         ("rejected", "in evaluation exceed the cap"),
         ("rejected", "in evaluation exceed the cap"), {"max_mmacs": 0.01}, klass="cost"),
    Case("lazy_parameters", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        if self.training and not hasattr(self, 'extra'):\n"
        "            self.extra = nn.Linear(in_features=3, out_features=3000)\n"
        "        if hasattr(self, 'extra'):\n"
        "            return self.fc(self.extra(x.mean(dim=(2, 3)))[:, :3])\n"
        "        return self.fc(x.mean(dim=(2, 3)))"),
         ("rejected", "parameters counted before training"),
         ("rejected", "parameters counted before training"), klass="cost"),
    Case("frozen_then_reenabled", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        if self.training:\n            for p in self.big.parameters():\n"
        "                p.requires_grad_(True)\n"
        "        return self.fc(self.big(x).mean(dim=(2, 3)))").replace(
        "        self.setup()", "        self.big = BIG\n        for p in self.big.parameters():\n"
        "            p.requires_grad_(False)"),
         ("rejected", "parameters exceed the cap"), ("rejected", "parameters exceed the cap"),
         {"max_params": 1000}, klass="cost"),
    Case("unfold_mul_sum", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        u = F.unfold(x.repeat(1, 8, 1, 1), 3, padding=1)\n"
        "        y = (u[:, :, None, :] * self.w).sum(1)\n"
        "        return self.fc(y.mean(dim=2)[:, :3])").replace(
        "        self.setup()", "        self.w = nn.Parameter(torch.randn(1, 24 * 9, 16, 1))"
        ).replace("from torch import nn\n", "from torch import nn\nimport torch.nn.functional as F\n"),
         ("rejected", "uncounted compute"), ("rejected", "uncounted compute"),
         {"max_mmacs": 0.001}, klass="cost"),
    Case("fft_compute", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        f = torch.fft.rfft2(x.repeat(1, 256, 1, 1))\n"
        "        y = torch.fft.irfft2(f * f, s=x.shape[2:])\n"
        "        return self.fc(y.mean(dim=(2, 3))[:, :3])"),
         ("rejected", "uncounted compute"), ("rejected", "uncounted compute"),
         {"max_mmacs": 0.001}, klass="cost"),
    Case("python_compute", NET.replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        s = 0.0\n        for i in range(1500000):\n            s += math.sin(i)\n"
        "        return self.fc(x.mean(dim=(2, 3))) + s * 0").replace(
        "import torch\n", "import math\nimport torch\n", 1),
         ("rejected", "uncounted compute: a forward"), ("rejected", "uncounted compute: a forward"),
         {"timeout_s": 60.0}, klass="cost"),
    Case("over_cap_macs", NET, ("rejected", "exceed the cap"), ("rejected", "exceed the cap"),
         {"max_mmacs": 1e-6}, klass="cost"),
    # --- the parent as the weak point: there is no file to swap, and no way to stall it ---
    Case("symlink_to_environ", attack(
        "for name in ('output.txt', 'progress.jsonl', 'result'):\n"
        "    os.symlink('/proc/self/environ', name)", "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", EACCES), klass="parent"),
    Case("symlink_to_secret", attack("os.symlink('SECRET', 'output.txt')", "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", EACCES), klass="parent"),
    Case("fifo_as_output", attack("os.mkfifo('output.txt')", "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM), klass="parent"),
    Case("close_channels_and_hang", attack(
        "for fd in range(0, 256):\n"
        "    try:\n        os.close(fd)\n    except OSError:\n        pass\n"
        "while True:\n    pass", "import os\n"),
         ("rejected", "import-not-allowed"), ("timeout", "wall-clock timeout"), FAST,
         klass="parent"),
    # --- signals and IPC -------------------------------------------------------------------
    Case("fcntl_setown_kill", attack(
        "r, w = os.pipe()\n"
        "fcntl.fcntl(r, 10, signal.SIGKILL)  # F_SETSIG\n"
        "fcntl.fcntl(r, 8, TARGET)  # F_SETOWN\n"
        "fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC)\n"
        "os.write(w, b'x')", "import fcntl, os, signal\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM), klass="signal"),
    Case("fcntl_setown_stop_zygote", attack(
        "r, w = os.pipe()\n"
        "fcntl.fcntl(r, fcntl.F_SETOWN, os.getppid())\n"
        "fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC)\n"
        "os.write(w, b'x')", "import fcntl, os\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM), klass="signal"),
    Case("stop_zygote", attack("os.kill(os.getppid(), signal.SIGSTOP)", "import os, signal\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM), klass="signal"),
    Case("clear_death_signal", attack(
        "assert ctypes.CDLL(None).prctl(1, 0, 0, 0, 0) == 0, 'death signal locked'",
        "import ctypes\n"),
         ("rejected", "import-not-allowed"), ("failed", "death signal locked"), klass="signal"),
    Case("sysv_shared_memory", attack(
        "assert ctypes.CDLL(None).shmget(0, 1 << 30, 0o1600) >= 0, 'shmget blocked'",
        "import ctypes\n"),
         ("rejected", "import-not-allowed"), ("failed", "shmget blocked"), klass="signal"),
    Case("memfd_fill", attack(
        "fd = os.memfd_create('x')\nos.write(fd, bytes(1 << 20))", "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", EPERM), klass="signal"),
    Case("nested_dirs", attack("for _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')",
                               "import os\n"),
         ("rejected", "import-not-allowed"), ("failed", EACCES), klass="signal"),
    Case("disk_fill", attack(
        "with open('big', 'wb') as f:\n    for _ in range(640):\n        f.write(bytes(1 << 20))"),
         ("rejected", "denied-name"), ("failed", EACCES), klass="signal"),
]

# A 3x16x16 -> 3 channel stack of about 3.6 MMACs per image (hidden-cost cases).
BIG = ("nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1), "
       "nn.Conv2d(64, 3, 3, padding=1))")
# Replace the cascade's Evaluation so every result claims perfect accuracy.
FORGE = ("d['Evaluation'] = (lambda real: lambda **kw: (print('FORGED'), real(**{**kw, "
         "'val_acc': 1.0, 'test_acc': 1.0}))[1])(d['Evaluation']) "
         "if isinstance(d.get('Evaluation'), type) else d.get('Evaluation')")


def expand(code: str) -> str:
    """Fill the shared payloads into a case's code."""
    code = code.replace("BIG", BIG)
    lines = []
    for line in code.splitlines():
        indent = line[:len(line) - len(line.lstrip())]
        if "FORGE_GLOBALS(" in line:
            arg = line.strip()[len("FORGE_GLOBALS("):-1]
            lines.append(f"{indent}d = {arg}; {FORGE}")
        elif "FORGE_GC(" in line:
            arg = line.strip()[len("FORGE_GC("):-1]
            lines += [f"{indent}for d in {arg}('gc').get_objects():",
                      f"{indent}    if isinstance(d, dict) and 'run_cascade' in d and "
                      f"'Evaluation' in d:",
                      f"{indent}        {FORGE}"]
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"
