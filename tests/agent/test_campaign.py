"""The campaign loop and its commands (`optforge run / resume / status / init`), end to end: real
subprocesses, the real bubblewrap sandbox, the offline mutation proposer, and a tiny evaluation
config (loss kind: 3 seeds, 3 tier-1 tasks, 1 seed, 1 learning rate, no tier 2).

Crash safety is checked the hard way: a campaign is SIGKILLed at random points and resumed, and the
archive must hold every candidate exactly once, each evaluated once per tier.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from optforge.agent.campaign.directory import archive_path, effective_config, with_overrides
from optforge.agent.campaign.loop import Campaign, CampaignParts
from optforge.agent.cli.main import main
from optforge.agent.config_file import load_config
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.runtime import open_runner
from optforge.agent.proposers.base import Proposal, ProposalRequest
from optforge.archive import (
    ArchiveError,
    ArchiveStore,
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    candidate_id,
    island_violations,
    memberships,
)
from optforge.tasks.baselines import baseline_names

KIND = "loss"  # 3 tier-1 tasks (a subset of the schedule kind's 5): the cheapest campaign
ISLANDS = 3
SEED = "seed"  # CandidateRecord.proposer of the bundled baselines

CONFIG_TOML = f"""\
kind = "{KIND}"
proposer = "mutate"

[search]
islands = {ISLANDS}
migration_interval = 2

[cascade]
tier2_top_k = 0

[evaluation]
seeds = {{1 = 1, 2 = 1}}

[evaluation.sweep]
points = 1
max_extensions = 0
refine = 0

[evaluation.sandbox]
workers = 2
"""


# -- helpers ------------------------------------------------------------------------------------


def _env_removed() -> list[str]:
    """The variables that could point optforge at an LLM or elsewhere."""
    return [k for k in os.environ if k.startswith(("OPTFORGE_", "OPENAI_"))]


def _env(cache: pathlib.Path) -> dict[str, str]:
    """The environment of a user with no LLM configured (so `auto` means the mutation proposer)."""
    env = {k: v for k, v in os.environ.items() if k not in _env_removed()}
    env.update(OPTFORGE_CACHE_DIR=str(cache), PYTHONUNBUFFERED="1")
    return env


def optforge(*args: object, cache: pathlib.Path, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optforge.agent.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(cache),
        cwd=cwd,
        timeout=900,
        check=False,
    )


def start(
    *args: object, cache: pathlib.Path, cwd: pathlib.Path, log: pathlib.Path
) -> subprocess.Popen:
    """`optforge ARGS` in its own session (so its whole process group can be killed)."""
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "optforge.agent.cli.main", *map(str, args)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(cache),
            cwd=cwd,
            start_new_session=True,
        )


@dataclass(frozen=True)
class Snapshot:
    candidates: list[CandidateRecord]
    evaluations: list[EvaluationRecord]
    events: list[EventRecord]
    pending0: list[CandidateRecord]
    pending1: list[CandidateRecord]
    deduplicated: int

    def new(self) -> list[CandidateRecord]:
        return [c for c in self.candidates if c.proposer != SEED]

    def kinds(self, kind: str) -> list[EventRecord]:
        return [e for e in self.events if e.kind == kind]

    def eval_keys(self) -> set[tuple[str, int, float]]:
        return {(e.candidate_id, e.tier, e.created_at) for e in self.evaluations}

    def runs(self) -> int:
        return len(self.kinds("start")) + len(self.kinds("resume"))


def snapshot(directory: pathlib.Path) -> Snapshot | None:
    path = archive_path(directory)
    if not path.exists():
        return None
    try:
        with ArchiveStore.open(path) as store:
            return Snapshot(
                store.candidates(),
                store.evaluations(),
                store.events(),
                store.pending(0),
                store.pending(1),
                store.counts().deduplicated,
            )
    except ArchiveError:  # e.g. briefly locked by the campaign
        return None


def read(directory: pathlib.Path) -> Snapshot:
    snap = snapshot(directory)
    assert snap is not None, f"no readable archive in {directory}"
    return snap


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 300) -> bool:
    """Poll until `condition` holds; False if the process exits or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(ppid, state, start time) of a live process, from /proc."""
    try:
        text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], fields[19]


def descendants(root: int) -> dict[int, str]:
    """pid -> start time of every process below `root` (sandbox workers run in their own sessions,
    so a process-group kill does not reach them: they must die with their parent)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            table[int(entry)] = stat
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, started) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                frontier.append(pid)
    return found


def alive(pid: int, started: str) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[2] == started and stat[1] not in ("Z", "X")


def cmdline_mentions(text: str) -> list[int]:
    """Live processes whose command line mentions `text`."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        stat = _stat(int(entry))
        if text.encode() in raw and stat is not None and stat[1] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def sigkill(proc: subprocess.Popen) -> dict[int, str]:
    """SIGKILL the campaign's process group; returns the processes it had started."""
    os.killpg(proc.pid, signal.SIGSTOP)  # freeze it: it starts nothing new while we look
    tree = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return tree


def assert_no_orphans(tree: dict[int, str], directory: pathlib.Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid, started in tree.items() if alive(pid, started)]
        if not left and not cmdline_mentions(str(directory)):
            return
        time.sleep(0.2)
    left = [pid for pid, started in tree.items() if alive(pid, started)]
    cmds = {pid: pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for pid in left}
    raise AssertionError(
        f"processes outlived the killed campaign: {cmds} {cmdline_mentions(str(directory))}"
    )


def assert_sound(snap: Snapshot) -> None:
    """What every campaign archive must satisfy, killed or not."""
    ids = [c.id for c in snap.candidates]
    assert len(ids) == len(set(ids)), "a candidate was stored twice"
    assert snap.pending0 == [] and snap.pending1 == [], "a candidate was left unevaluated"
    per_tier = Counter((e.candidate_id, e.tier) for e in snap.evaluations)
    assert max(per_tier.values()) == 1, "a candidate was evaluated twice at one tier"
    assert {e.candidate_id for e in snap.evaluations} == set(ids)
    seeds = sorted(c.name for c in snap.candidates if c.proposer == SEED)
    assert seeds == sorted(baseline_names(KIND)), "seeds lost or re-added"
    assert island_violations(snap.candidates, snap.events, ISLANDS) == []
    cascades = Counter(e.data["candidate_id"] for e in snap.kinds("cascade"))
    assert not cascades or max(cascades.values()) == 1, "a cascade decision was taken twice"
    champions = [e.data["candidate_id"] for e in snap.kinds("champion")]
    assert len(champions) == len(set(champions)), "a candidate was promoted twice"
    generations = [e.data["generation"] for e in snap.kinds("migration")]
    assert len(generations) == len(set(generations)), "a migration round was repeated"


def runs_recorded(directory: pathlib.Path, n: int) -> bool:
    snap = snapshot(directory)
    return snap is not None and snap.runs() == n


def child_awaits_tier1(directory: pathlib.Path) -> bool:
    snap = snapshot(directory)
    return snap is not None and any(c.proposer != SEED for c in snap.pending1)


def stop_reason(snap: Snapshot) -> str:
    assert snap.events[-1].kind == "stop", f"the last event is {snap.events[-1].kind!r}"
    return str(snap.events[-1].data["reason"])


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> pathlib.Path:
    """Baseline reference sweeps and the exported train data, shared by the module's campaigns."""
    return tmp_path_factory.mktemp("optforge-cache")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(CONFIG_TOML)
    return path


@dataclass(frozen=True)
class Grown:
    """One campaign taken through run (budget 3), resume (budget 5) and resume (budget reached)."""

    directory: pathlib.Path
    outputs: list[subprocess.CompletedProcess]
    snaps: list[Snapshot]


@pytest.fixture(scope="module")
def grown(tmp_path_factory, cache, config_file) -> Grown:
    work = tmp_path_factory.mktemp("grown")
    directory = work / "D"
    steps = [
        ("run", "--config", config_file, "--dir", directory, "--budget", 3),
        ("resume", directory, "--budget", 5),
        ("resume", directory),
    ]
    outputs, snaps = [], []
    for step in steps:
        outputs.append(optforge(*step, cache=cache, cwd=work))
        snaps.append(read(directory))
    return Grown(directory, outputs, snaps)


# -- 1. crash safety --------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_loses_and_duplicates_nothing(
    tmp_path, cache, config_file
):
    budget, wanted_kills = 12, 4
    rng = random.Random(20240611)
    directory, log = tmp_path / "D", tmp_path / "campaign.log"
    proc = start(
        "run",
        "--config",
        config_file,
        "--dir",
        directory,
        "--budget",
        budget,
        cache=cache,
        cwd=tmp_path,
        log=log,
    )
    launched, kills, resumes = 1, 0, 0
    evaluated_before_kill: list[set[tuple[str, int, float]]] = []
    killed_mid_tier1 = False
    try:
        while kills < wanted_kills:
            # Each run records its start/resume before it does anything: kill after that, so every
            # resume is counted, at a random moment (or, once, in the middle of a tier-1 evaluation).
            if not wait_for(functools.partial(runs_recorded, directory, launched), proc):
                break
            if kills == 1:
                killed_mid_tier1 = wait_for(lambda: child_awaits_tier1(directory), proc)
            else:
                time.sleep(rng.uniform(1, 8))
            if proc.poll() is not None:
                break
            tree = sigkill(proc)
            kills += 1
            assert tree, "the campaign had no sandbox workers to check"
            assert_no_orphans(tree, directory)
            evaluated_before_kill.append(read(directory).eval_keys())
            proc = start("resume", directory, cache=cache, cwd=tmp_path, log=log)
            launched += 1
            resumes += 1
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert kills >= 3, f"the campaign finished after only {kills} kills"
    assert killed_mid_tier1, "no kill landed while a child awaited its tier-1 evaluation"

    snap = read(directory)
    assert_sound(snap)
    assert len(snap.new()) == budget
    assert len(snap.kinds("start")) == 1
    assert len(snap.kinds("resume")) == resumes
    assert len(snap.kinds("stop")) == 1  # killed runs record none
    assert stop_reason(snap) == f"budget reached: {budget} candidates"
    final = snap.eval_keys()
    for i, before in enumerate(evaluated_before_kill):
        assert before <= final, f"evaluations stored before kill {i + 1} were redone or lost"


# -- 2. budgets ---------------------------------------------------------------------------------


def test_budget_stops_exactly_and_a_resume_counts_earlier_work(grown):
    run, more, again = grown.outputs
    first, second, third = grown.snaps
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(first.new()) == 3
    assert stop_reason(first) == "budget reached: 3 candidates"
    assert_sound(first)

    assert more.returncode == 0, more.stderr[-3000:]
    assert len(second.new()) == 5  # 2 more, not 5 more
    assert {c.id for c in first.candidates} < {c.id for c in second.candidates}
    assert first.eval_keys() <= second.eval_keys()
    assert stop_reason(second) == "budget reached: 5 candidates"
    assert second.kinds("resume")[-1].data["overrides"] == {"budget.max_candidates": 5}
    assert_sound(second)

    # The resumed budget stays the campaign's budget; with it spent, a resume proposes nothing.
    assert again.returncode == 0, again.stderr[-3000:]
    assert third.candidates == second.candidates and third.evaluations == second.evaluations
    tail = third.events[len(second.events) :]
    assert [e.kind for e in tail] == ["resume", "stop"]
    assert stop_reason(third) == "budget reached: 5 candidates"


def test_wall_time_budget_stops_a_resumed_campaign(grown, cli, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(grown.directory, copy)
    code, _, err = cli("resume", copy, "--budget", 100, "--max-minutes", 0.01)
    assert code == 0, err
    snap = read(copy)
    assert stop_reason(snap) == "wall-time budget reached: 0.01 minutes"
    assert snap.candidates == grown.snaps[-1].candidates  # earlier runs' time counts: no room left


# -- 3. islands and dedupe --------------------------------------------------------------------


def test_every_island_evolves_and_migrates(grown):
    snap = grown.snaps[-1]
    assert island_violations(snap.candidates, snap.events, ISLANDS) == []
    assert {c.island for c in snap.candidates if c.proposer == SEED} == set(range(ISLANDS))
    children = snap.new()
    assert {c.island for c in children} == set(range(ISLANDS)), "an island never had a child"
    joined = memberships(snap.candidates, snap.events)
    for child in children:
        assert child.parent_ids, f"{child.name} has no parent"
        since = joined.get((child.parent_ids[0], child.island))
        assert since is not None and since <= child.generation, (
            f"{child.name} was born on island {child.island}, where its first parent did not live"
        )
    # Generation 2 begins once every island has had a child (5 children // 3 islands + 1).
    assert max(c.generation for c in children) == 2
    migrations = snap.kinds("migration")
    assert [e.data["generation"] for e in migrations] == [2]
    for move in migrations[0].data["moves"]:
        assert move["to_island"] == (move["from_island"] + 1) % ISLANDS


class ScriptedProposer:
    """Returns, in turn: its parent's source unchanged, then a cosmetic twin of it."""

    name = "scripted"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.parents: list[str] = []

    def propose(self, request: ProposalRequest, rng: random.Random) -> Proposal:
        parent = request.parents[0]
        with self.lock:
            self.calls += 1
            call = self.calls
            self.parents.append(parent.id)
        source = parent.source if call == 1 else twin(parent.source)
        return Proposal(source, f"twin_{call}", self.name, (parent.id,))


def twin(source: str) -> str:
    """`source` with an unused local in `loss`: different code, the same behaviour."""
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "loss")
    fn.body.insert(0, ast.parse("unused_twin_constant = 0.5").body[0])
    return ast.unparse(tree)


def test_duplicate_source_is_skipped_and_a_behavioural_twin_reuses_its_evaluation(
    grown, cache, tmp_path
):
    copy = tmp_path / "copy"
    shutil.copytree(grown.directory, copy)
    proposer = ScriptedProposer()
    with ArchiveStore.open(archive_path(copy)) as store:
        before = read(copy)
        overrides = {"budget.max_candidates": len(before.new()) + 1}
        # One proposal in flight at a time, so the script's order is the loop's order.
        config = with_overrides(effective_config(store), {**overrides, "llm.max_concurrency": 1})
        with open_runner(config.evaluation.sandbox, cache) as runner:
            parts = CampaignParts(runner, BaselineCache(cache), proposer)
            reason = Campaign(store, config, parts).run(overrides)
        after = read(copy)
        deduplicated = store.counts().deduplicated

    assert reason == f"budget reached: {len(before.new()) + 1} candidates"
    assert proposer.calls == 2
    original_id, twin_parent = proposer.parents

    # (a) the same source: recorded as a duplicate, nothing stored, nothing evaluated
    duplicates = after.kinds("duplicate_source")
    assert len(duplicates) == len(before.kinds("duplicate_source")) + 1
    assert duplicates[-1].data["candidate_id"] == original_id

    # (b) the twin: a new candidate, tier 0 run, tier 1 reused from the first of its behaviour
    new = after.candidates[len(before.candidates) :]
    assert after.candidates[: len(before.candidates)] == before.candidates
    assert len(new) == 1
    twin_record = new[0]
    assert twin_record.parent_ids == (twin_parent,)
    assert twin_record.id != twin_parent and twin_record.id == candidate_id(twin_record.source)
    added = [e for e in after.evaluations if e.candidate_id == twin_record.id]
    assert len(after.evaluations) == len(before.evaluations) + len(added)
    by_tier = {e.tier: e for e in added}
    assert sorted(by_tier) == [0, 1]
    assert by_tier[0].reused_from is None and by_tier[0].status == "ok"
    parent_tier0 = next(
        e for e in before.evaluations if e.candidate_id == twin_parent and e.tier == 0
    )
    assert by_tier[0].fingerprint == parent_tier0.fingerprint
    first_of_kind = next(
        e
        for e in before.evaluations
        if e.tier == 0 and e.fingerprint == parent_tier0.fingerprint and e.reused_from is None
    )
    reused = by_tier[1]
    assert reused.reused_from == first_of_kind.candidate_id
    assert reused.seconds == 0
    source_tier1 = next(
        e
        for e in before.evaluations
        if e.candidate_id == first_of_kind.candidate_id and e.tier == 1
    )
    assert (reused.status, reused.score) == (source_tier1.status, source_tier1.score)
    assert deduplicated == before.deduplicated + 1
    assert_sound(after)


# -- 4. the command line ----------------------------------------------------------------------


@pytest.fixture
def cli(cache, tmp_path, monkeypatch, capsys):
    """`optforge ARGS` in this process (no interpreter start): (exit status, stdout, stderr)."""
    for name in _env_removed():
        monkeypatch.delenv(name)
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)

    def call(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def test_init_writes_a_config_that_run_accepts(cache, cli, tmp_path):
    path = tmp_path / "campaign.toml"
    code, _, err = cli("init", path)
    assert code == 0, err
    expected = load_config(path)
    code, _, err = cli("init", path)  # never overwrites
    assert code == 2 and "already exists" in err

    # The default campaign takes hours: stop it once it has accepted the file and created its
    # archive (the effective config is written next to it).
    directory, log = tmp_path / "D", tmp_path / "run.log"
    proc = start("run", "--config", path, "--dir", directory, cache=cache, cwd=tmp_path, log=log)
    try:
        created = wait_for(lambda: (directory / "campaign.toml").exists(), proc, timeout=120)
    finally:
        if proc.poll() is None:
            sigkill(proc)
    assert created, log.read_text()[-3000:]
    with ArchiveStore.open(archive_path(directory)) as store:
        assert store.config() == expected.model_dump(mode="json")
    assert load_config(directory / "campaign.toml") == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--dir", "{tmp}/new", "--budget", 0), "budget.max_candidates"),
        (("run", "--config", "{tmp}/missing.toml", "--dir", "{tmp}/new"), "no such file"),
        (("resume", "{tmp}"), "no campaign in"),
        (("run", "--dir", "{campaign}", "--kind", "loss"), "already holds a campaign"),
        (("run", "--dir", "{campaign}", "--start-from", "focal"), "already holds a campaign"),
        (
            ("run", "--kind", KIND, "--dir", "{tmp}/new", "--start-from", "focal,adamw"),
            f"start_from names no {KIND} baseline adamw: choose from cross_entropy, focal, ",
        ),
        (
            ("run", "--kind", KIND, "--dir", "{tmp}/new", "--start-from", "focal,focal"),
            "start_from names a baseline twice",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(grown, cli, tmp_path, args, message):
    filled = [str(a).format(tmp=tmp_path, campaign=grown.directory) for a in args]
    before = read(grown.directory)
    code, _, err = cli(*filled)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optforge: error: "), err
    assert message in lines[0]
    assert not (tmp_path / "new").exists()
    assert read(grown.directory).events == before.events  # a refused command changes nothing


def test_bad_input_from_a_real_process_exits_2(cache, tmp_path):
    out = optforge("resume", tmp_path, cache=cache, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"optforge: error: no campaign in {tmp_path} (no archive.sqlite): start one with "
        f"`optforge run --dir {tmp_path}`"
    ]


def test_start_from_seeds_only_the_named_baselines_and_the_search_grows_from_them(
    cache, config_file, tmp_path
):
    directory = tmp_path / "D"
    out = optforge(
        "run", "--config", config_file, "--dir", directory, "--budget", 2,
        "--start-from", "focal", cache=cache, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    snap = read(directory)
    seeds = [c for c in snap.candidates if c.proposer == SEED]
    assert [s.name for s in seeds] == ["focal"]
    new = [c for c in snap.candidates if c.proposer != SEED]
    assert len(new) == 2 and all(c.parent_ids for c in new)
    # Every child descends from the one seed: no other baseline was ever in the archive to breed.
    ids = {c.id: c for c in snap.candidates}
    for child in new:
        ancestor = child
        while ancestor.parent_ids:
            ancestor = ids[ancestor.parent_ids[0]]
        assert ancestor.name == "focal"
    assert load_config(directory / "campaign.toml").start_from == ["focal"]


def test_status_prints_the_counts_and_json(grown, cli):
    code, out, err = cli("status", grown.directory)
    assert code == 0, err
    assert "stopped: budget reached: 5 candidates" in out
    assert "5/5 candidates (+3 seeds)" in out  # the budget as resumed, not as created

    code, out, err = cli("status", grown.directory, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["done"], data["budget"], data["n_seeds"], data["kind"]) == (5, 5, 3, KIND)
    assert data["stopped_reason"] == "budget reached: 5 candidates"
    # per status, e.g. {"ok": 5}: keys are status names, values add up to the candidates
    assert sum(data["statuses"].values()) == 5, data["statuses"]
    assert all(key.isidentifier() for key in data["statuses"]), data["statuses"]
