"""A corpus of hostile or broken candidates, each with the outcome expected with the static
policy ON and OFF (OFF probes the OS-level containment alone).

Placeholders replaced per test: SENTINEL (a path outside the worker's directory that must
never be created), SECRET (a file whose content must never reach the result), PORT (a local
listening socket that must never be connected to).
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
         ("failed", "File too large"), ("failed", "File too large"), FAST),
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
         ("rejected", "denied-attribute"), ("failed", "AttributeError")),
    Case("hub_download", attack(
        "torch.hub.load_state_dict_from_url('http://127.0.0.1:PORT/w.pt')"),
         ("rejected", "denied-attribute"), ("failed", EPERM)),
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
         ("failed", "expected (2, 10)"), ("failed", "expected (2, 10)")),
    Case("syntax_error", NET.replace("def forward(self, x):", "def forward(self, x)"),
         ("rejected", "syntax-error"), ("failed", "SyntaxError")),
    Case("missing_net", NET.replace("class Net(", "class Model("),
         ("rejected", "missing-net"), ("rejected", "no `class Net")),
    # Result forgery happens inside the worker, where OS containment cannot help: a running
    # generator's frame walks up to the cascade and swaps its accuracy function. The policy
    # must reject it; with the policy off the forgery succeeds (test_frame_walk_is_live).
    Case("frame_walk_forgery", attack(
        "holder = []\n"
        "def walk():\n"
        "    f = holder[0].gi_frame.f_back\n"
        "    while f is not None:\n"
        "        if 'run_cascade' in f.f_globals:\n"
        "            f.f_globals['accuracy'] = lambda model, x, y: 1.0\n"
        "        f = f.f_back\n"
        "    yield 0\n"
        "holder.append(walk())\n"
        "next(holder[0])"),
         ("rejected", "denied-attribute"), ("ok", "")),
    # The same forgery through modules re-exported by allowed ones (torch.cuda.graphs.gc).
    Case("gc_forgery", attack(
        "for d in torch.cuda.graphs.gc.get_objects():\n"
        "    if isinstance(d, dict) and 'run_cascade' in d and 'accuracy' in d:\n"
        "        d['accuracy'] = lambda model, x, y: 1.0"),
         ("rejected", "denied-attribute"), ("ok", "")),
    # ... and with attribute names built at run time (typing.operator.attrgetter).
    Case("attrgetter_frame_walk", attack(
        "at = typing.operator.attrgetter\n"
        "holder = []\n"
        "def walk():\n"
        "    f = at('gi_' + 'frame')(holder[0])\n"
        "    while f is not None:\n"
        "        g = at('f_glo' + 'bals')(f)\n"
        "        if 'run_cascade' in g:\n"
        "            g['accuracy'] = lambda model, x, y: 1.0\n"
        "        f = at('f_' + 'back')(f)\n"
        "    yield 0\n"
        "holder.append(walk())\n"
        "next(holder[0])", "import typing\n"),
         ("rejected", "denied-attribute"), ("ok", "")),
    Case("monkeypatch_tensor_sum", attack(
        "torch.Tensor.sum = lambda t, *a, **k: torch.full((), t.numel())"),
         ("ok", ""), ("ok", ""), forges_accuracy=True),
    Case("tensor_subclass_sum", NET.replace(
        "class Net(nn.Module):",
        "class Fake(torch.Tensor):\n    def sum(self, *a, **k):\n"
        "        return torch.full((), self.numel())\n\n\nclass Net(nn.Module):").replace(
        "        return self.fc(x.mean(dim=(2, 3)))",
        "        return self.fc(x.mean(dim=(2, 3))).as_subclass(Fake)"),
         ("ok", ""), ("ok", ""), forges_accuracy=True),
    Case("over_cap_macs", NET, ("rejected", "exceed the cap"), ("rejected", "exceed the cap"),
         {"max_mmacs": 1e-6}),
]
