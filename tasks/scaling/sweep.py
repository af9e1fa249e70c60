"""The once-only reference sweep of the scaling task (the spec's "cache once"), written to
data/reference.json:

    python -m optforge.tasks.scaling.sweep [--workers 2] [--widths 64,128,256,512]

1. Base: one (lr, weight decay) for all groups at width 32, on a 5 x 4 grid x 2 seeds (minimum mean).
2. Each width: embeddings stay at the base values, vectors at (base lr, 0); the hidden matrices and
   the readout sweep lr = base lr x (32 / width) x 2^k and lr x wd = base lr x base wd x 2^j,
   k in -1..1, j in -3..1 (one seed), each axis extended while the best sits on its edge; the best 4
   cells get seeds 1 and 2 as well, and the best 3-seed mean is the reference, L*(width, seed).

Trusted code only (no candidate), so it runs in plain worker processes, 1 torch thread each
(2 threads per process measured 1.5-3x slower, a fork pool 4x slower than spawn). Every run is
cached on disk by its settings: an interrupted sweep resumes where it stopped. About an hour with
two workers; the result is data, not something CI recomputes (a test re-runs one cell).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import multiprocessing
import pathlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..adapters import SCALING_GROUPS
from ..paths import cache_dir
from . import corpus, evaluation
from .reference import REFERENCE_FILE, REFERENCE_SEEDS
from .train import Hyperparameters, Recipe, train

BASE_WIDTH = 32
BASE_LRS = tuple(0.008 * 2 ** (i / 2) for i in range(-2, 3))  # 0.004 .. 0.016, x sqrt(2) apart
BASE_WDS = (0.05, 0.1, 0.2, 0.4)
BASE_SEEDS = (0, 1)
LR_STEPS = (-1, 0, 1)  # k: lr = base lr x (32 / width) x 2^k
LR_WD_STEPS = (-3, -2, -1, 0, 1)  # j: lr x wd = base lr x base wd x 2^j
MAX_EXTENSIONS = 2
CONFIRMED_CELLS = 4
WIDTHS = (64, 128, 256, 512)
SWEEP_VERSION = "1"


@dataclass(frozen=True)
class RunSpec:
    width: int
    hyperparameters: tuple[tuple[str, float, float], ...]  # (group, lr, wd) in SCALING_GROUPS order
    seed: int

    def key(self) -> str:
        settings = {"width": self.width, "seed": self.seed, "recipe": dataclasses.asdict(Recipe()),
                    "hp": [(g, f"{lr:.6g}", f"{wd:.6g}") for g, lr, wd in self.hyperparameters],
                    "corpus": corpus.STDLIB_SHA256, "windows": [evaluation.EVALUATION_WINDOWS, evaluation.EVALUATION_SEED],
                    "version": SWEEP_VERSION}
        return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def hyperparameters(base_lr: float, base_wd: float, hidden_lr: float, hidden_wd: float) -> tuple[tuple[str, float, float], ...]:
    values = {"embedding": (base_lr, base_wd), "hidden": (hidden_lr, hidden_wd), "output": (hidden_lr, hidden_wd),
              "vector": (base_lr, 0.0)}
    return tuple((g, *values[g]) for g in SCALING_GROUPS)


def _run(spec: RunSpec) -> tuple[RunSpec, float, float]:
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    hp: Hyperparameters = {g: (lr, wd) for g, lr, wd in spec.hyperparameters}
    run = train(spec.width, hp, spec.seed, corpus.train_ids())
    loss = math.inf if run.diverged_at is not None else evaluation.weights_loss(spec.width, run.weights)
    return spec, loss, time.perf_counter() - started


class Runs:
    """Every run's (loss, seconds), cached on disk by RunSpec.key()."""

    def __init__(self, workers: int, directory: pathlib.Path) -> None:
        self.workers, self.directory = workers, directory
        directory.mkdir(parents=True, exist_ok=True)

    def get(self, specs: Iterable[RunSpec]) -> dict[RunSpec, tuple[float, float]]:
        specs = list(dict.fromkeys(specs))
        done = {s: self._cached(s) for s in specs}
        todo = sorted((s for s, v in done.items() if v is None), key=lambda s: -s.width)  # longest first
        if todo:
            print(f"  {len(todo)} runs ({len(specs) - len(todo)} cached), widths {sorted({s.width for s in todo})}", flush=True)
            with multiprocessing.get_context("spawn").Pool(self.workers) as pool:
                for spec, loss, seconds in pool.imap_unordered(_run, todo):
                    (self.directory / f"{spec.key()}.json").write_text(json.dumps({"loss": loss, "seconds": seconds}))
                    done[spec] = (loss, seconds)
                    print(f"    width {spec.width} seed {spec.seed} {spec.hyperparameters[1][1:]}: "
                          f"{loss:.4f} ({seconds:.0f} s)", flush=True)
        return {s: v for s, v in done.items() if v is not None}

    def _cached(self, spec: RunSpec) -> tuple[float, float] | None:
        path = self.directory / f"{spec.key()}.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return float(data["loss"]), float(data["seconds"])


def _extended(axis: list[int], best: int, extensions: dict[str, int], name: str) -> bool:
    """Add the grid point beyond `best` when it sits on an edge of `axis` (at most MAX_EXTENSIONS)."""
    if extensions[name] >= MAX_EXTENSIONS:
        return False
    if best == axis[0]:
        axis.insert(0, best - 1)
    elif best == axis[-1]:
        axis.append(best + 1)
    else:
        return False
    extensions[name] += 1
    return True


def sweep_base(runs: Runs) -> dict[str, object]:
    """Step 1: the base (lr, wd) at width 32, shared by all groups (vectors without decay)."""
    lrs, wds = list(range(len(BASE_LRS))), list(range(len(BASE_WDS)))
    extensions = {"lr": 0, "wd": 0}

    def spec(i: int, j: int, seed: int) -> RunSpec:
        lr, wd = BASE_LRS[2] * 2 ** ((i - 2) / 2), BASE_WDS[2] * 2.0 ** (j - 2)
        return RunSpec(BASE_WIDTH, hyperparameters(lr, wd, lr, wd), seed)

    while True:
        results = runs.get(spec(i, j, s) for i in lrs for j in wds for s in BASE_SEEDS)
        means = {(i, j): sum(results[spec(i, j, s)][0] for s in BASE_SEEDS) / len(BASE_SEEDS) for i in lrs for j in wds}
        bi, bj = min(means, key=lambda c: means[c])
        if not (_extended(lrs, bi, extensions, "lr") | _extended(wds, bj, extensions, "wd")):
            break
    best = spec(bi, bj, 0).hyperparameters[1]
    cells = [{"lr": spec(i, j, 0).hyperparameters[1][1], "weight_decay": spec(i, j, 0).hyperparameters[1][2],
              "losses": {str(s): results[spec(i, j, s)][0] for s in BASE_SEEDS}} for i in lrs for j in wds]
    return {"lr": best[1], "weight_decay": best[2], "cells": cells,
            "seconds_per_run": sum(v[1] for v in results.values()) / len(results)}


def sweep_width(runs: Runs, width: int, base_lr: float, base_wd: float) -> dict[str, object]:
    """Step 2 at one width: the (k, j) grid on seed 0, then 3 seeds on the best cells."""
    ks, js = list(LR_STEPS), list(LR_WD_STEPS)
    extensions = {"k": 0, "j": 0}

    def spec(k: int, j: int, seed: int) -> RunSpec:
        lr = base_lr * (BASE_WIDTH / width) * 2.0 ** k
        return RunSpec(width, hyperparameters(base_lr, base_wd, lr, base_lr * base_wd * 2.0 ** j / lr), seed)

    while True:
        first = runs.get(spec(k, j, 0) for k in ks for j in js)
        bk, bj = min(((k, j) for k in ks for j in js), key=lambda c: first[spec(c[0], c[1], 0)][0])
        if not (_extended(ks, bk, extensions, "k") | _extended(js, bj, extensions, "j")):
            break
    ranked = sorted(((k, j) for k in ks for j in js), key=lambda c: first[spec(c[0], c[1], 0)][0])[:CONFIRMED_CELLS]
    confirmed = runs.get(spec(k, j, s) for k, j in ranked for s in REFERENCE_SEEDS)
    mean = {c: sum(confirmed[spec(c[0], c[1], s)][0] for s in REFERENCE_SEEDS) / len(REFERENCE_SEEDS) for c in ranked}
    bk, bj = min(ranked, key=lambda c: mean[c])
    every = {**first, **confirmed}
    cells = []
    for k in ks:
        for j in js:
            seeds = {str(s): every[spec(k, j, s)][0] for s in REFERENCE_SEEDS if spec(k, j, s) in every}
            _, lr, wd = spec(k, j, 0).hyperparameters[1]
            cells.append({"k": k, "j": j, "lr": lr, "weight_decay": wd, "losses": seeds})
    _, lr, wd = spec(bk, bj, 0).hyperparameters[1]
    return {"best": {"k": bk, "j": bj, "lr": lr, "weight_decay": wd,
                     "losses": {str(s): confirmed[spec(bk, bj, s)][0] for s in REFERENCE_SEEDS}},
            "on_edge": bk in (ks[0], ks[-1]) or bj in (js[0], js[-1]),
            "cells": cells, "seconds_per_run": sum(v[1] for v in every.values()) / len(every)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    parser.add_argument("--output", type=pathlib.Path, default=REFERENCE_FILE)
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    runs = Runs(args.workers, cache_dir() / "scaling-runs")
    started = time.perf_counter()
    print(f"base width {BASE_WIDTH}", flush=True)
    base = sweep_base(runs)
    print(f"  base lr {base['lr']:.4g}, weight decay {base['weight_decay']:.3g}", flush=True)
    entries = {}
    for width in widths:
        print(f"width {width}", flush=True)
        entries[str(width)] = sweep_width(runs, width, float(base["lr"]), float(base["weight_decay"]))  # type: ignore[arg-type]
    data = {"version": SWEEP_VERSION, "corpus_sha256": corpus.STDLIB_SHA256, "recipe": dataclasses.asdict(Recipe()),
            "evaluation": {"windows": evaluation.EVALUATION_WINDOWS, "seed": evaluation.EVALUATION_SEED},
            "base_width": BASE_WIDTH, "base": base, "widths": entries,
            "sweep_seconds": round(time.perf_counter() - started)}
    args.output.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
