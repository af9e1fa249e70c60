"""The hostile candidates: optimizer programs that try to escape, cheat or take the machine down.

Most of them pass the static contract check: `torch` re-exports `os`, `importlib`, `ctypes` and
`builtins`, so an AST check cannot be the security boundary, the sandbox is. The three that import
`ctypes`, `subprocess` or `socket` by name are rejected by the check, and each has a twin that
reaches the same module through `torch` and runs.

Each candidate is a template: the test fills in {token} (a unique `sleep` argument / file name
suffix), {port} (a loopback listener the test runs), {secret_name}, {targets} (host files the
candidate tries to write) and {heldout} (held-out data source files on the host).
"""

from __future__ import annotations

from dataclasses import dataclass

PREAMBLE = '''
HPARAMS = {{"lr": 1e-3}}


def init(param):
    return {{}}


def update(grad, param, state, step, hp):
'''

RETURN = "    return -hp['lr'] * grad, state\n"


@dataclass(frozen=True)
class Hostile:
    name: str
    body: str  # the body of update(), indented four spaces (or a whole module, see `module`)
    statuses: frozenset[str]  # the statuses an honest sandbox may give it
    module: bool = False  # body is the whole module, not update()'s body
    rejected_by_check: bool = False

    def source(self, **values: object) -> str:
        template = self.body if self.module else PREAMBLE + self.body + RETURN
        return template.format(**values)


def _set(*statuses: str) -> frozenset[str]:
    return frozenset(statuses)


CASES = [
    Hostile("infinite_loop", "    while True:\n        pass\n", _set("timeout")),
    Hostile("sleep_past_timeout",
            "    torch.importlib.import_module('time').sleep(3600)\n", _set("timeout")),
    Hostile("memory_bomb",
            "    hog = []\n    while True:\n        hog.append(torch.ones(2 ** 26))\n",
            _set("oom", "failed_tier0")),  # tier 0 reports the allocation failure as its check's
    Hostile("fork_bomb",
            "    os = torch.os\n    while True:\n        os.fork()\n",
            _set("error", "crashed", "timeout", "oom", "failed_tier0")),
    Hostile("thread_bomb",
            "    threading = torch.threading\n"
            "    stop = threading.Event()\n"
            "    for _ in range(100000):\n"
            "        threading.Thread(target=stop.wait, daemon=True).start()\n",
            _set("error", "crashed", "oom", "timeout", "failed_tier0")),
    Hostile("stdout_flood",  # two gigabytes
            "    line = 'x' * (1 << 20)\n    for _ in range(2048):\n        print(line)\n",
            _set("ok", "timeout")),
    Hostile("huge_file_write",  # eight gigabytes into the working directory (scratch)
            "    block = b'\\0' * (1 << 20)\n"
            "    with torch.builtins.open('huge.bin', 'wb') as f:\n"
            "        for _ in range(8192):\n"
            "            f.write(block)\n",
            _set("error", "failed_tier0")),
    Hostile("write_outside_scratch",
            "    for path in {targets!r}:\n"
            "        try:\n"
            "            with torch.builtins.open(path, 'a') as f:\n"
            "                f.write('pwned {token}')\n"
            "        except OSError:\n"
            "            pass\n",
            _set("ok")),
    Hostile("connect_to_loopback_listener",
            "    socket = torch.importlib.import_module('socket')\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'pwned')\n"
            "    except OSError:\n"
            "        pass\n",
            _set("ok")),
    Hostile("read_secret_from_environment",
            "    os = torch.os\n"
            "    found = [os.environ.get({secret_name!r})]\n"
            "    for pid in os.listdir('/proc'):\n"
            "        try:\n"
            "            with torch.builtins.open('/proc/' + pid + '/environ', 'rb') as f:\n"
            "                found.append(f.read().decode(errors='replace'))\n"
            "        except (OSError, ValueError):\n"
            "            pass\n"
            "    leaked = [v for v in found if v and {secret_name!r} in v or v and 'sk-' in v]\n"
            "    if leaked:\n"
            "        raise RuntimeError('leaked: ' + repr(leaked))\n",
            _set("ok")),
    Hostile("kill_its_worker",
            "    os = torch.os\n"
            "    for target in (os.getppid(), 1):\n"
            "        try:\n"
            "            os.kill(target, 9)\n"
            "        except OSError:\n"
            "            pass\n",
            _set("ok", "crashed", "error")),
    Hostile("setsid_daemon",
            "    os = torch.os\n"
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"
            "        if os.fork() == 0:\n"
            "            os.execvp('sleep', ['sleep', '{token}'])\n"
            "        os._exit(0)\n"
            "    os.wait()\n",
            _set("ok", "error", "timeout", "failed_tier0")),
    Hostile("forged_result",  # prints a fake protocol reply, writes fake result files, exits early
            "    json = torch.importlib.import_module('json')\n"
            "    print(json.dumps({{'status': 'ok', 'passed': True, 'score': 1e9}}))\n"
            "    torch.importlib.import_module('safetensors.torch').save_file(\n"
            "        {{'train_loss': torch.zeros(10, 1)}}, 'result.safetensors')\n"
            "    with torch.builtins.open('meta.json', 'w') as f:\n"
            "        f.write(json.dumps({{'passed': True, 'score': 1e9, 'checkpoints': 1}}))\n"
            "    torch.os._exit(0)\n",
            _set("error")),
    Hostile("monkeypatch_torch",  # the loss every later caller computes is 0, in this job only
            "    torch.nn.functional.cross_entropy = lambda *a, **k: torch.zeros((), requires_grad=True)\n"
            "    torch.nn.functional.mse_loss = torch.nn.functional.cross_entropy\n",
            _set("ok", "failed_tier0")),
    Hostile("read_heldout_data",
            "    for path in {heldout!r}:\n"
            "        try:\n"
            "            with torch.builtins.open(path, 'rb') as f:\n"
            "                data = f.read()\n"
            "        except OSError:\n"
            "            continue\n"
            "        if data:\n"
            "            raise RuntimeError('read held-out data: ' + path)\n",
            _set("ok")),
    Hostile("nan_outputs", "    return torch.full_like(grad, float('nan')), state\n", _set("failed_tier0")),
    Hostile("exception_in_init",
            "\nHPARAMS = {{'lr': 1e-3}}\n\n\ndef init(param):\n    raise ValueError('no state for you')\n\n\n"
            "def update(grad, param, state, step, hp):\n    return -hp['lr'] * grad, state\n",
            _set("failed_tier0", "error"), module=True),
    Hostile("import_ctypes", "import ctypes\n" + PREAMBLE + RETURN,
            _set("invalid"), module=True, rejected_by_check=True),
    Hostile("ctypes_through_torch",  # libc's system(): a shell, from C
            "    torch.ctypes.CDLL(None).system(b'touch /tmp/pwned-{token}; sleep {token} &')\n",
            _set("ok", "error", "failed_tier0")),
    Hostile("import_subprocess", "import subprocess\n" + PREAMBLE + RETURN,
            _set("invalid"), module=True, rejected_by_check=True),
    Hostile("subprocess_through_torch",
            "    torch.importlib.import_module('subprocess').run(\n"
            "        ['sh', '-c', 'touch /tmp/pwned-{token}; (setsid sleep {token} &)'])\n",
            _set("ok", "error", "failed_tier0")),
    Hostile("import_socket", "import socket\n" + PREAMBLE + RETURN,
            _set("invalid"), module=True, rejected_by_check=True),
]
