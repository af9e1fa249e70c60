"""The preference task's one-time set-up, cached by the hash of its configuration and corpus:
pretrain the reference char-GPT, sample preference pairs from it and label them with the reward,
and measure the reference's own reward on each tier's evaluation prompts (R0).

    optforge prepare preference_loss      # ~5 min once on 2 cores; then read from the cache

What the sandbox may read is exported by `export` (the reference weights and the training pairs);
the evaluation prompts and R0 stay on the trusted side (`EvalSet`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..paths import cache_dir
from . import corpus
from .gpt import CharGPT, GPTConfig, continuation_logps
from .reward import rewards

# Bump when anything below changes what is prepared: it keys the cache (with the config's hash).
PREPARE_VERSION = "prep-1"
REFERENCE_FILE, PAIRS_FILE, STATS_FILE = "reference.safetensors", "pairs.safetensors", "stats.json"


@dataclass(frozen=True)
class PrepareConfig:
    gpt: GPTConfig = GPTConfig()
    pretrain_steps: int = 3000  # AdamW, cosine decay: validation 1.66 nats/char in the spec's prototype
    pretrain_batch: int = 32
    pretrain_lr: float = 3e-3
    prompt_chars: int = 32
    continuation_chars: int = 64
    train_prompts: int = 6000  # two samples each; ties in reward are dropped (~30%)
    eval_prompts: int = 256  # per tier, two samples each
    eval_samples: int = 2
    r0_rounds: int = 8  # reference evaluations pooled into R0 (one has sd ~0.015)
    seed: int = 0

    def key(self) -> str:
        fields = {"config": dataclasses.asdict(self), "corpus": corpus.SDIST_SHA256, "version": PREPARE_VERSION}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Prepared:
    """The cached set-up: where it lies and what it measured."""

    directory: pathlib.Path
    config: PrepareConfig
    stats: dict

    def reference(self) -> CharGPT:
        model = CharGPT(self.config.gpt)
        model.load_state_dict(load_file(self.directory / REFERENCE_FILE))
        return model.eval()

    def pairs(self) -> dict[str, torch.Tensor]:
        return load_file(self.directory / PAIRS_FILE)

    def r0(self, tier: int) -> float:
        return float(self.stats["r0"][str(tier)])


def prepared_dir(config: PrepareConfig) -> pathlib.Path:
    return cache_dir() / "preference" / config.key()


def load(config: PrepareConfig = PrepareConfig()) -> Prepared | None:
    """The cached set-up of `config`, or None when it has not been prepared."""
    directory = prepared_dir(config)
    try:
        stats = json.loads((directory / STATS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return Prepared(directory, config, stats)


def prepare(config: PrepareConfig = PrepareConfig(), log: Callable[[str], None] = print) -> Prepared:
    """The set-up of `config`, from the cache or built now (a few minutes) and cached atomically."""
    found = load(config)
    if found is not None:
        return found
    corpus.plays()  # fails first, in one line, when the corpus has not been fetched
    if config.gpt.vocab != len(corpus.VOCAB):
        raise ValueError(f"the model's vocabulary ({config.gpt.vocab}) must be the corpus's ({len(corpus.VOCAB)})")
    directory = prepared_dir(config)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=directory.parent, prefix=".prepare-"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # measured: two threads per process on 2 shared cores ran 4x slower
    try:
        stats = _build(config, staging, log)
    finally:
        torch.set_num_threads(threads)
    (staging / STATS_FILE).write_text(json.dumps(stats, indent=1, sort_keys=True))
    staging.chmod(0o755)
    for path in staging.iterdir():
        path.chmod(0o644)
    try:
        staging.rename(directory)
    except OSError:  # another process finished first; its set-up is identical
        shutil.rmtree(staging, ignore_errors=True)
    prepared = load(config)
    assert prepared is not None
    return prepared


def _build(config: PrepareConfig, out: pathlib.Path, log: Callable[[str], None]) -> dict:
    started = time.perf_counter()
    log(f"preference task set-up: pretraining the reference char-GPT ({config.pretrain_steps} steps)")
    model, val_loss = pretrain(config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / REFERENCE_FILE)
    pretrain_s = time.perf_counter() - started
    log(f"  validation loss {val_loss:.3f} nats/char ({pretrain_s:.0f} s); sampling and labelling pairs")
    pairs, pair_stats = build_pairs(model, config)
    save_file(pairs, out / PAIRS_FILE)
    log(f"  {len(pairs['prompts'])} pairs; measuring the reference's reward on the evaluation prompts")
    r0 = {str(tier): reference_reward(model, config, tier) for tier in corpus.HELD_OUT_PLAYS}
    return {"val_loss": val_loss, "r0": r0, "pretrain_seconds": pretrain_s,
            "seconds": time.perf_counter() - started, **pair_stats}


def pretrain(config: PrepareConfig) -> tuple[CharGPT, float]:
    """The reference: next-character prediction on the training plays. Returns it and its loss on
    the held-out plays (nats per character)."""
    torch.manual_seed(config.seed)
    text = corpus.encode(corpus.train_text())
    held = corpus.encode("\n".join(corpus.plays()[p] for g in corpus.HELD_OUT_PLAYS.values() for p in g))
    model = CharGPT(config.gpt)
    opt = torch.optim.AdamW(model.parameters(), lr=config.pretrain_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, config.pretrain_steps) / config.pretrain_steps))
    )
    gen = torch.Generator().manual_seed(config.seed)
    span = config.gpt.context + 1
    for _ in range(config.pretrain_steps):
        starts = torch.randint(0, len(text) - span, (config.pretrain_batch,), generator=gen)
        batch = text[starts[:, None] + torch.arange(span)]
        loss = F.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        starts = torch.linspace(0, len(held) - span - 1, 256).long()
        batch = held[starts[:, None] + torch.arange(span)]
        val = float(F.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten()))
    return model, val


@torch.no_grad()
def build_pairs(model: CharGPT, config: PrepareConfig) -> tuple[dict[str, torch.Tensor], dict]:
    """Two continuations per training prompt, sampled from the reference at T=1; the one with the
    higher reward is chosen, ties dropped. With the reference's log-probs of both."""
    prompts = corpus.line_start_prompts(corpus.train_text(), config.prompt_chars, config.train_prompts, config.seed)
    gen = torch.Generator().manual_seed(config.seed + 1)
    a, b = [], []
    for chunk in prompts.split(500):
        a.append(model.sample(chunk, config.continuation_chars, gen))
        b.append(model.sample(chunk, config.continuation_chars, gen))
    first, second = torch.cat(a), torch.cat(b)
    ra, rb = rewards(first), rewards(second)
    keep = ra != rb
    a_wins = (ra > rb)[keep]
    prompts, first, second, ra, rb = prompts[keep], first[keep], second[keep], ra[keep], rb[keep]
    chosen = torch.where(a_wins[:, None], first, second)
    rejected = torch.where(a_wins[:, None], second, first)
    pairs = {
        "prompts": prompts.to(torch.uint8), "chosen": chosen.to(torch.uint8), "rejected": rejected.to(torch.uint8),
        "reference_chosen_logps": _logps(model, prompts, chosen),
        "reference_rejected_logps": _logps(model, prompts, rejected),
    }
    stats = {"pairs": int(keep.sum()), "chosen_reward": float(torch.maximum(ra, rb).mean()),
             "rejected_reward": float(torch.minimum(ra, rb).mean())}
    return pairs, stats


def _logps(model: CharGPT, prompts: torch.Tensor, continuations: torch.Tensor) -> torch.Tensor:
    return torch.cat([continuation_logps(model, p, c) for p, c in zip(prompts.split(500), continuations.split(500), strict=True)])


def eval_prompts(config: PrepareConfig, tier: int) -> torch.Tensor:
    """The evaluation prompts of `tier` [N, P]: from its held-out plays, never exported to a sandbox."""
    text = "\n".join(corpus.plays()[p] for p in corpus.HELD_OUT_PLAYS[tier])
    return corpus.line_start_prompts(text, config.prompt_chars, config.eval_prompts, config.seed + 10 * tier)


def reference_reward(model: CharGPT, config: PrepareConfig, tier: int) -> float:
    """R0: the reference's mean reward on `tier`'s prompts, pooled over `r0_rounds` sampling seeds
    (one 512-sample evaluation alone has sd ~0.015, as large as small differences between losses)."""
    prompts = eval_prompts(config, tier).repeat(config.eval_samples, 1)
    total = 0.0
    for round_ in range(config.r0_rounds):
        gen = torch.Generator().manual_seed(1_000_000 + round_)
        total += float(rewards(model.sample(prompts, config.continuation_chars, gen)).mean())
    return total / config.r0_rounds


def export(prepared: Prepared, directory: pathlib.Path) -> None:
    """Copy what a sandbox may read (reference weights, training pairs) into `directory`."""
    target = directory / "preference"
    target.mkdir(parents=True, exist_ok=True)
    for name in (REFERENCE_FILE, PAIRS_FILE):
        shutil.copyfile(prepared.directory / name, target / name)
    (target / "config.json").write_text(json.dumps(dataclasses.asdict(prepared.config), sort_keys=True))
    os.chmod(target, 0o755)
