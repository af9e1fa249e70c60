"""Would batching the preference task's betas under torch.func.vmap make a candidate cheaper?

Times one alignment step (forward, backward, Adam) of the char-GPT on the task's real batches: one
policy at a time, against 2 and 4 policies (members) stacked under vmap over the same batch. The
preference task needs the set-up (`optforge prepare preference_loss`).

    .venv/bin/python benchmarks/preference_batching.py [--steps 20]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch.func import functional_call, vmap

from optforge.tasks.preference import prepare
from optforge.tasks.preference.gpt import continuation_logps
from optforge.tasks.preference.train import TrainRecipe, batch_order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    prepared = prepare.load()
    if prepared is None:
        raise SystemExit("run `optforge prepare preference_loss` first")
    reference = prepared.reference()
    pairs = {k: (v.long() if v.dtype == torch.uint8 else v) for k, v in prepared.pairs().items()}
    order = batch_order(len(pairs["prompts"]), TrainRecipe(), 0)

    def batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = order[i]
        return pairs["prompts"][idx].repeat(2, 1), torch.cat([pairs["chosen"][idx], pairs["rejected"][idx]])

    policy = copy.deepcopy(reference).train()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-4)
    started = time.perf_counter()
    for i in range(args.steps):
        logps = continuation_logps(policy, *batch(i))
        opt.zero_grad()
        logps.mean().backward()
        opt.step()
    one = (time.perf_counter() - started) / args.steps
    print("| members | ms per step | ms per member-step | vs one at a time |")
    print("|---|---|---|---|")
    print(f"| 1 (loop) | {one * 1000:.0f} | {one * 1000:.0f} | 1.00x |")

    def member_logps(params: dict, prompts: torch.Tensor, continuations: torch.Tensor) -> torch.Tensor:
        ids = torch.cat([prompts, continuations], dim=1)
        logits = functional_call(reference, params, (ids[:, :-1],))[:, prompts.shape[1] - 1 :]
        return torch.gather(torch.log_softmax(logits, -1), 2, continuations.unsqueeze(-1)).squeeze(-1).sum(1)

    for members in (2, 4):
        params = {k: v.detach().unsqueeze(0).repeat(members, *[1] * v.dim()).requires_grad_(True)
                  for k, v in reference.named_parameters()}
        opt = torch.optim.Adam(params.values(), lr=1e-4)
        started = time.perf_counter()
        for i in range(args.steps):
            logps = vmap(member_logps, in_dims=(0, None, None))(params, *batch(i))
            opt.zero_grad()
            logps.mean(1).sum().backward()
            opt.step()
        batched = (time.perf_counter() - started) / args.steps
        print(f"| {members} (vmap) | {batched * 1000:.0f} | {batched / members * 1000:.0f} | "
              f"{one * members / batched:.2f}x |")


if __name__ == "__main__":
    main()
