"""`optforge ls / show / diff / lineage` on a real archive (tests/agent/review/conftest.py), called
through the CLI's `main` as a user would; stdout is not a terminal here, so output is plain text."""

from __future__ import annotations

import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from html import escape as html_escape

import pytest
from rich.console import Console

from optforge.agent.cli.main import main
from optforge.agent.cli.review_display import print_diff, print_show
from optforge.agent.review.view import diff_pair, opened, read_view, unified_diff

from .conftest import LLM_IDEA, LOOP_NOTE, XSS_NAME, Built, sha256

# Verified on tier 2 first: llm_idea's held-out 1.10 ranks above cross's tier-1-only 1.30.
RANKED = ["llm_idea", "cross", "mutant", "adamw", "crisscross", "xss", "lion", "sgd"]
BY_TIER1 = ["cross", "llm_idea", "mutant", "adamw", "crisscross", "xss", "lion", "sgd"]
UNSCORED = ["broken", "diverger", "pending"]  # in the order stored


def run(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args: object):
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def names(built: Built, ids: list[str]) -> list[str]:
    by_id = {v: k for k, v in built.ids.items()}
    return [by_id[i] for i in ids]


# -- ls -----------------------------------------------------------------------------------------


def test_ls_json_ranks_verified_candidates_first_by_their_held_out_score(built, capsys):
    rows = run_json(capsys, "ls", built.directory)
    assert names(built, [r["id"] for r in rows]) == RANKED + UNSCORED
    assert [r["rank"] for r in rows] == list(range(1, 12))
    llm = rows[0]  # 1.20 on tier 1 but ranked by its tier-2 score, above every tier-1-only one
    assert (
        llm["score"] == pytest.approx(1.1)
        and llm["tier"] == 2
        and llm["tier1_score"] == pytest.approx(1.2)
    )
    assert (llm["score_tier"], llm["verified"], llm["ranked_by"]) == (2, True, "tier2")
    assert llm["score_ci"] == pytest.approx([1.1 * 0.95, 1.1 * 1.05])
    assert llm["tier2_ci"] == pytest.approx([1.1 * 0.95, 1.1 * 1.05])
    assert llm["parent_ids"] == [built.ids["adamw"]] and llm["proposer"] == "llm:test-model"
    cross = rows[1]
    assert (cross["score_tier"], cross["verified"], cross["tier2_score"]) == (1, False, None)
    assert cross["parent_ids"] == [built.ids["llm_idea"], built.ids["mutant"]]
    assert {r["status"] for r in rows[-3:]} == {"failed_tier0", "diverged", "pending"}
    assert all(r["score"] is None and r["score_ci"] is None for r in rows[-3:])
    for key in ("id", "name", "score", "status", "parent_ids", "island", "proposer", "tier"):
        assert all(key in r for r in rows)


def test_ls_by_tier1_ranks_by_the_screen_alone(built, capsys):
    rows = run_json(capsys, "ls", built.directory, "--by", "tier1")
    assert names(built, [r["id"] for r in rows]) == BY_TIER1 + UNSCORED
    assert {r["ranked_by"] for r in rows} == {"tier1"}
    code, out, _ = run(capsys, "ls", built.directory, "--by", "tier1", "--top", "2")
    assert code == 0 and "by tier-1 (screen) score alone" in out
    code, out, _ = run(capsys, "ls", built.directory, "--top", "2")
    assert "verified on tier 2 first (by tier-2 score), then tier 1 only" in out
    assert "tier 2 [95% CI]" in out and "tier 1 [95% CI]" in out


def test_ls_filters_keep_the_overall_rank(built, capsys):
    top = run_json(capsys, "ls", built.directory, "--top", "3")
    assert names(built, [r["id"] for r in top]) == RANKED[:3]
    failed = run_json(capsys, "ls", built.directory, "--status", "diverged")
    assert [(r["rank"], r["name"]) for r in failed] == [(10, "diverger")]
    assert run_json(capsys, "ls", built.directory, "--kind", "loss") == []
    assert len(run_json(capsys, "ls", built.directory, "--kind", "optimizer")) == 11


def test_ls_prints_a_plain_table_in_rank_order(built, capsys):
    code, out, _ = run(capsys, "ls", built.directory)
    assert code == 0 and "\x1b[" not in out  # not a terminal: no colour codes
    cells = [line.split("│") for line in out.splitlines() if line.startswith("│")]
    assert [(c[1].strip(), c[2].strip()) for c in cells] == [
        (str(rank), built.ids[n][:12]) for rank, n in enumerate(RANKED + UNSCORED, 1)
    ]
    assert "1.100 [1.045, 1.155]" in out  # the tier-2 score and CI of llm_idea
    assert XSS_NAME in out  # printed as text, never interpreted as markup


# -- show ---------------------------------------------------------------------------------------


def test_show_resolves_a_prefix_and_prints_code_scores_baselines_and_idea(built, capsys):
    cid = built.ids["llm_idea"]
    code, out, _ = run(capsys, "show", built.directory, cid[:6])
    assert code == 0
    assert cid in out and "llm:test-model" in out
    assert f"idea:      {LLM_IDEA}" in out
    assert "1.100 [1.045, 1.155] x tuned AdamW on tier 2 (rank 1 of 11, verified first; tier 2, ok)" in out
    assert "def update(grad, param, state, step, hp):" in out
    assert "    return (-hp['lr'] * grad.sign(), state)" in out  # the code verbatim
    assert f"{built.ids['adamw'][:12]} adamw 1.000 (tier 1)" in out  # its parent, its score
    # Per-task scores against tuned AdamW, tier 1 and tier 2, and the seeds for comparison.
    assert "illcond_quadratic" in out and "1.440 [1.368, 1.512]" in out
    assert "char_transformer" in out and "1.100 [1.045, 1.155]" in out
    lion_line = next(line for line in out.splitlines() if "│ lion " in line)
    assert "0.908" in lion_line and "1.250" in lion_line and "0.660" in lion_line
    # The seeds have no tier-2 evaluation (as campaigns run by default): it says so.
    assert "no seed baseline was evaluated on tier 2" in out
    assert len([line for line in out.splitlines() if "│ lion " in line]) == 1


def test_show_prints_statuses_and_only_the_first_error_line(built, capsys):
    code, out, _ = run(capsys, "show", built.directory, built.ids["diverger"][:10])
    assert code == 0
    assert "tier 1: diverged" in out and "update produced inf at step 3" in out
    assert "Traceback" not in out
    code, out, _ = run(capsys, "show", built.directory, built.ids["broken"])
    assert "tier 0: failed_tier0" in out and "finite: update returned NaN or inf" in out
    assert "change:    swap * -> / in update" in out


def test_show_says_how_each_tier_batched_and_why_not_more(built, capsys):
    code, out, _ = run(capsys, "show", built.directory, built.ids["mutant"][:10])
    assert code == 0
    assert "tier 0: ok, 0.0s; batching: vmap_lr (all seeds and learning rates in one run)" in out
    assert "tier 1: ok, score 1.050" in out and f"batching: loop (one seed at a time; {LOOP_NOTE})" in out
    data = run_json(capsys, "show", built.directory, built.ids["mutant"][:10])
    assert [(e["batching"], e["batching_note"]) for e in data["evaluations"]] == [("vmap_lr", None), ("loop", LOOP_NOTE)]


def test_show_says_when_an_llm_candidate_stated_no_idea(built, capsys):
    code, out, _ = run(capsys, "show", built.directory, built.ids["xss"][:8])
    assert code == 0 and "idea:      not recorded" in out
    assert XSS_NAME in out


def test_show_json_has_the_evaluations_baselines_and_source(built, capsys):
    data = run_json(capsys, "show", built.directory, built.ids["cross"][:7])
    assert data["id"] == built.ids["cross"] and data["rank"] == 2
    assert data["source"].startswith('"""cross: a test candidate."""')
    assert data["children"] == [built.ids["crisscross"], built.ids["pending"]]
    assert [e["tier"] for e in data["evaluations"]] == [0, 1]
    assert data["evaluations"][1]["tasks"][0]["name"] == "illcond_quadratic"
    assert data["baselines"]["1"]["lion"]["mlp_digits"] == pytest.approx(0.66)
    assert data["baselines"]["2"]["lion"] == {}  # Lion was not evaluated on the held-out tasks


# -- diff ---------------------------------------------------------------------------------------


def test_diff_defaults_to_the_first_parent(built, capsys):
    code, out, _ = run(capsys, "diff", built.directory, built.ids["cross"][:8])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"--- a/{built.ids['llm_idea'][:12]} llm_idea"
    assert lines[1] == f"+++ b/{built.ids['cross'][:12]} cross"
    assert "-    return (-hp['lr'] * grad.sign(), state)" in lines
    assert "+    return (-hp['lr'] * (grad.sign() + grad), state)" in lines
    assert "-NAME = 'llm_idea'" in lines and "+NAME = 'cross'" in lines


def test_diff_of_two_ids_and_json(built, capsys):
    data = run_json(capsys, "diff", built.directory, built.ids["sgd"][:8], built.ids["broken"][:8])
    assert data["old"] == built.ids["sgd"] and data["new"] == built.ids["broken"]
    assert "+    return (grad / 0, state)" in data["diff"].splitlines()


# -- lineage ------------------------------------------------------------------------------------


def test_lineage_tree_reaches_the_seeds_and_marks_repeated_ancestors(built, capsys):
    code, out, _ = run(capsys, "lineage", built.directory, built.ids["crisscross"][:8])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{built.ids['crisscross'][:12]} crisscross  0.970 (tier 1)  ok")
    for name in ("cross", "llm_idea", "mutant", "adamw", "lion"):
        assert any(built.ids[name][:12] in line for line in lines), name
    # llm_idea is a parent of both crisscross and cross: expanded once, then marked.
    llm_lines = [line for line in lines if built.ids["llm_idea"][:12] in line]
    assert len(llm_lines) == 2 and sum("(ancestry shown above)" in line for line in llm_lines) == 1


def test_lineage_json_nests_parents(built, capsys):
    tree = run_json(capsys, "lineage", built.directory, built.ids["cross"][:8])
    assert tree["name"] == "cross" and tree["score"] == pytest.approx(1.3)
    assert [p["name"] for p in tree["parents"]] == ["llm_idea", "mutant"]
    assert tree["parents"][0]["parents"][0]["name"] == "adamw"
    assert tree["parents"][1]["parents"][0]["name"] == "lion"
    assert tree["parents"][1]["parents"][0]["parents"] == []


# -- bad input ----------------------------------------------------------------------------------


@pytest.fixture
def copy(tmp_path, built) -> Built:
    """A private copy of the archive (closed cleanly: one file) for tests that check nothing was
    written."""
    (tmp_path / "c").mkdir()
    shutil.copyfile(built.archive, tmp_path / "c" / "archive.sqlite")
    return Built(tmp_path / "c", built.ids)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "{dir}", "4c"), "matches more than one candidate"),
        (("show", "{dir}", "fffff"), "no candidate id starts with 'fffff'"),
        (("lineage", "{dir}", "xyz"), "ids are hexadecimal"),
        (("diff", "{dir}", "{adamw}"), "is a seed (a bundled baseline): it has no parent"),
        (("diff", "{dir}", "{cross}", "0"), "matches more than one candidate"),
        (("ls", "{dir}/nowhere"), "no such directory"),
        (("ls", "{dir}", "--top", "0"), "--top must be at least 1"),
        (("show", "{parent}", "0"), "no campaign in"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(copy, capsys, args, message):
    before = sha256(copy.archive)
    fields = {"dir": copy.directory, "parent": copy.directory.parent, **copy.ids}
    code, out, err = run(capsys, *(a.format(**fields) for a in args))
    assert code == 2 and out == ""
    assert err.startswith("optforge: error: ") and err.count("\n") == 1, err
    assert message in err
    assert sha256(copy.archive) == before
    assert sorted(os.listdir(copy.directory)) == ["archive.sqlite"]  # no -wal/-shm left behind


def test_a_file_that_is_not_an_archive_is_refused(tmp_path, capsys):
    (tmp_path / "archive.sqlite").write_bytes(b"not a database at all" * 100)
    code, out, err = run(capsys, "ls", tmp_path)
    assert code == 2 and out == "" and "is not an optforge archive" in err
    assert (tmp_path / "archive.sqlite").read_bytes() == b"not a database at all" * 100


def test_reading_leaves_the_archive_byte_for_byte_unchanged(copy, capsys):
    before = sha256(copy.archive)
    for args in (
        ("ls",),
        ("show", copy.ids["cross"][:6]),
        ("diff", copy.ids["cross"][:6]),
        ("lineage", copy.ids["cross"][:6]),
    ):
        code, _, err = run(capsys, args[0], copy.directory, *args[1:])
        assert code == 0, err
    assert sha256(copy.archive) == before
    assert sorted(os.listdir(copy.directory)) == ["archive.sqlite"]


def test_an_archive_path_works_as_well_as_its_directory(built, capsys):
    rows = run_json(capsys, "ls", pathlib.Path(built.archive), "--top", "1")
    assert rows[0]["id"] == built.ids["llm_idea"]


# -- end to end ---------------------------------------------------------------------------------

TINY_CAMPAIGN = """\
kind = "loss"
proposer = "mutate"

[search]
islands = 2

[cascade]
tier2_top_k = 0

[evaluation]
seeds = {1 = 1, 2 = 1}

[evaluation.sweep]
points = 1
max_extensions = 0
refine = 0

[evaluation.sandbox]
workers = 2
"""


@pytest.mark.slow
def test_review_commands_and_report_on_a_real_campaign(tmp_path, capsys):
    """A real offline campaign (3 loss candidates, real sandbox), then every review command."""
    config, directory = tmp_path / "tiny.toml", tmp_path / "campaign"
    config.write_text(TINY_CAMPAIGN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTFORGE_", "OPENAI_"))}
    env["OPTFORGE_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, "-m", "optforge.agent.cli.main", "run", "--config", str(config),
         "--dir", str(directory), "--budget", "3"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    rows = run_json(capsys, "ls", directory)
    new = [r for r in rows if not r["is_seed"]]
    assert len(new) == 3 and {r["name"] for r in rows if r["is_seed"]} >= {"cross_entropy"}
    scores = [r["score"] for r in rows if r["score"] is not None]
    assert scores == sorted(scores, reverse=True) and scores
    child = new[0]["id"]
    code, out, _ = run(capsys, "show", directory, child[:10])
    assert code == 0 and "def loss(logits, targets):" in out and "cross_entropy" in out
    code, out, _ = run(capsys, "diff", directory, child[:10])
    assert code == 0 and out.startswith(f"--- a/{new[0]['parent_ids'][0][:12]}")
    assert any(line.startswith("+") and not line.startswith("+++") for line in out.splitlines())
    tree = run_json(capsys, "lineage", directory, child[:10])
    node = tree
    while node["parents"]:
        node = node["parents"][0]
    assert node["proposer"] == "seed"  # every ancestry ends at a bundled baseline
    code, out, _ = run(capsys, "report", directory)
    html = (directory / "report.html").read_text(encoding="utf-8")
    assert code == 0 and html.count("<svg") >= 4 and "no LLM calls" in html
    scored = [r for r in new if r["score"] is not None]
    if scored:  # the lineage section starts at the best new candidate
        assert f"<code>{scored[0]['id'][:12]}</code> {html_escape(scored[0]['name'])}" in html
    else:
        assert "no new candidate has a score yet" in html


def test_on_a_terminal_code_and_diffs_are_coloured(built):
    with opened(built.directory) as store:
        view = read_view(store)
        old, new = diff_pair(store, built.ids["cross"][:8], None)
    screen = Console(file=io.StringIO(), force_terminal=True, width=120, color_system="truecolor")
    print_diff(unified_diff(old, new), screen)
    print_show(view, view.candidates[built.ids["cross"]], screen)
    text = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[" in text  # colour codes
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "+    return (-hp['lr'] * (grad.sign() + grad), state)" in plain
    assert re.search(r"\s1 \"\"\"cross: a test candidate.\"\"\"", plain)  # numbered code lines
