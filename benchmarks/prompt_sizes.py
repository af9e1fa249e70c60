"""Prompt sizes per kind, in the model's own tokens: what the LLM proposer's templates produce.

For every kind it builds the prompts a proposer sends (system + user, rewrite and diff mode) from
two sources: the test suite's sample requests (tests/agent/llm/samples.py: a parent with per-task
feedback, a short history, one inspiration) and, where a stored campaign archive of the kind
exists, the requests the campaign loop would make at its end (12 history entries, parents and
inspirations sampled as the loop samples them). Each prompt is sent to an OpenAI-compatible server
with max_tokens=1 and the server's `usage.prompt_tokens` is recorded: the tokenizer and chat
template of the model that will read it.

    .ci/llm_server.sh serve .venv-llm 8000 &
    .venv/bin/python benchmarks/prompt_sizes.py --base-url http://127.0.0.1:8000/v1 \
        --model "$(.ci/llm_server.sh model)" --out benchmarks/llm/prompt_sizes.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import re
import statistics
import sys
import tarfile
import tempfile

import openai

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optforge.agent.campaign.selection import ParentSelection  # noqa: E402
from optforge.agent.campaign.state import CampaignArchive  # noqa: E402
from optforge.agent.config import CampaignConfig  # noqa: E402
from optforge.agent.proposers.prompting import build_messages  # noqa: E402
from optforge.archive import ArchiveStore  # noqa: E402
from tests.agent.llm import samples  # noqa: E402

SAMPLES = {
    "optimizer": samples.optimizer_request,
    "loss": samples.loss_request,
    "schedule": samples.schedule_request,
    "preference_loss": samples.preference_request,
    "scaling_rule": samples.scaling_request,
}
ARCHIVES = {
    "optimizer": "screen-150",
    "preference_loss": "preference-60",
    "scaling_rule": "scaling-40",
}
HISTORY_SIZE = 12
DRAWS = 8  # campaign requests per archive (parents and inspirations are sampled)


def count_tokens(client: openai.OpenAI, model: str, messages) -> int:
    try:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            max_tokens=1,
            temperature=0.0,
        )
    except openai.BadRequestError as exc:
        # Longer than the model's window: transformers serve says how long ("The prompt has N
        # tokens, but the model takes at most M").
        detail = exc.body.get("detail", "") if isinstance(exc.body, dict) else ""
        found = re.search(r"prompt has (\d+) tokens", str(detail))
        if found is None:
            raise
        return int(found.group(1))
    return int(reply.usage.prompt_tokens)


def campaign_requests(name: str):
    """The requests the loop would make at the end of the stored campaign `name`."""
    tarball = ROOT / "benchmarks" / "campaigns" / f"{name}.tar.xz"
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        with ArchiveStore.open(pathlib.Path(tmp) / name / "archive.sqlite") as store:
            config = CampaignConfig.model_validate(store.config())
            selection = ParentSelection(CampaignArchive(store), config)
            rng = random.Random(0)
            islands = selection.params.n_islands
            return [selection.request(i % islands, rng) for i in range(DRAWS)]


def measure(client, model: str, label: str, kind: str, requests) -> dict:
    sizes: dict[str, list[int]] = {"rewrite": [], "diff": []}
    chars: list[int] = []
    for request in requests:
        for mode in ("rewrite", "diff"):
            if mode == "diff" and len(request.parents) != 1:
                continue
            messages = build_messages(request, mode, HISTORY_SIZE)
            sizes[mode].append(count_tokens(client, model, messages))
            chars.append(sum(len(m.content) for m in messages))
    row = {"kind": kind, "source": label, "requests": len(requests), "chars_max": max(chars)}
    for mode, values in sizes.items():
        if values:
            row[f"{mode}_median"] = int(statistics.median(values))
            row[f"{mode}_max"] = max(values)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="EMPTY", max_retries=0, timeout=300)
    rows = []
    for kind, make in SAMPLES.items():
        rows.append(measure(client, args.model, "test sample", kind, [make()]))
        if kind in ARCHIVES:
            rows.append(
                measure(client, args.model, ARCHIVES[kind], kind, campaign_requests(ARCHIVES[kind]))
            )
    for row in rows:
        print(json.dumps(row))
    if args.out:
        args.out.write_text(json.dumps({"model": args.model.rsplit("/", 1)[-1], "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
