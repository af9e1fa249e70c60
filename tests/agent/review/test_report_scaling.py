"""The report, `optforge show` and `ls` on a scaling-rule campaign (tests/agent/review/scaling_campaign.py):
the rules' hyperparameters and gaps against width next to muP, constant and the tuned optimum, and
wording that speaks of the tuned optimum and widths, not of tuned AdamW."""

from __future__ import annotations

import json
import math
import re
from html import escape

import pytest

from optforge.agent.cli.main import main
from optforge.agent.review.report import build_report
from optforge.agent.review.report_data import (
    differences,
    law_text,
    scaling_candidates,
    scaling_rules,
    seed_row,
    tuned_optimum,
)
from optforge.agent.review.report_svg import Series, line_chart
from optforge.agent.review.view import opened, read_view
from optforge.tasks.scaling import reference

from .scaling_campaign import (
    BASE_LR,
    BASE_WD,
    RULES,
    make_scaling_campaign,
    reference_text,
    tuned_lr,
    tuned_wd,
)

SECTION = "Learning rate and weight decay against width, and per-width gaps"
CHART_TITLES = [
    "hidden learning rate against width",
    "hidden weight decay against width",
    "gap to the tuned optimum against width",
]
SVG = re.compile(r"<svg\b.*?</svg>", re.S)
PATH = re.compile(r'<path d="M([^"]+)"[^>]*><title>([^<]*)</title>')


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    directory = tmp_path_factory.mktemp("scaling") / "campaign"
    return directory, make_scaling_campaign(directory)


@pytest.fixture
def shipped(monkeypatch, tmp_path):
    """Point the scaling task at a reference file of our own (None: no file at all)."""

    def use(text: str | None) -> None:
        path = tmp_path / "reference.json"
        if text is not None:
            path.write_text(text)
        monkeypatch.setattr(reference, "REFERENCE_FILE", path)
        reference.load.cache_clear()

    yield use
    reference.load.cache_clear()  # before monkeypatch puts the real file back


def page(directory) -> str:
    with opened(directory) as store:
        return build_report(store)


def section(html: str) -> str:
    return html.split(f"<h2>{SECTION}</h2>", 1)[1].split("<h2>", 1)[0]


def charts(html: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Chart title -> series label -> the pixel coordinates of its points."""
    found = {}
    for svg in SVG.findall(section(html)):
        title = re.search(r"<title>(.*?)</title>", svg).group(1)  # type: ignore[union-attr]
        found[title] = {label: [_xy(p) for p in d.split(" L")] for d, label in PATH.findall(svg)}
    return found


def _xy(point: str) -> tuple[float, float]:
    x, y = point.split(",")
    return float(x), float(y)


def steps(points: list[tuple[float, float]], axis: int) -> list[float]:
    """The pixel steps between neighbouring points along x (0) or y (1)."""
    return [b[axis] - a[axis] for a, b in zip(points, points[1:], strict=False)]


def even(values: list[float]) -> bool:
    """Equal to the drawing's precision (0.1 pixel, rounded)."""
    return max(values) - min(values) <= 0.21


def test_the_report_draws_lr_weight_decay_and_gap_against_width(campaign, shipped):
    directory, records = campaign
    shipped(reference_text())
    html = page(directory)
    assert escape("scores are x tuned optimum (exp(-mean gap in held-out loss to each width's tuned optimum") in html
    assert "tier 2 = width 512, never scored on tier 1" in html
    assert "tuned AdamW" not in html and "Held-out loss curves" not in html and "Reward-vs-KL" not in html
    drawn = charts(html)
    assert list(drawn) == CHART_TITLES
    steeper, readout = f"{records['steeper'].id[:8]} steeper", f"{records['readout_fixed'].id[:8]} readout_fixed"
    for series in drawn.values():  # the best new rules first, then the seeds
        assert list(series) == ["tuned optimum", steeper, readout, "mup", "constant"]
    lr, wd, gap = (drawn[t] for t in CHART_TITLES)
    # Log width: every doubling is the same step across; muP halves its hidden lr at each, so on a
    # log lr axis it falls by the same step each time (constant stays level).
    assert len(lr["mup"]) == 4 and even(steps(lr["mup"], 0)) and steps(lr["mup"], 0)[0] > 50
    assert even(steps(lr["mup"], 1)) and steps(lr["mup"], 1)[0] > 20  # pixels grow downwards
    assert not even(steps(lr["tuned optimum"][1:], 1) + steps(lr["mup"], 1))  # -0.85 is not -1
    assert set(steps(lr["constant"], 1)) == {0.0} and set(steps(wd["mup"], 1)) == {0.0}
    assert len(lr[readout]) == 3  # tier 1 only: widths 64-256
    # The tuned optimum starts at the base width, one doubling to the left of 64.
    assert len(lr["tuned optimum"]) == 5 == len(wd["tuned optimum"])
    assert even(steps(lr["tuned optimum"], 0) + steps(lr["mup"], 0))
    assert '<text x="' in html and ">32</text>" in section(html) and ">512</text>" in section(html)
    assert set(steps(gap["tuned optimum"], 1)) == {0.0}  # the gap's zero
    assert "not drawn" not in section(html)


def test_the_report_tables_every_group_and_says_where_a_rule_departs_from_mup(campaign, shipped):
    directory, records = campaign
    shipped(reference_text())
    body = section(page(directory))
    mup_rows = body.split("<td>mup</td>", 1)[1].split("<td>constant</td><td>embedding</td>", 1)[0]
    hidden = mup_rows.split("<td>hidden</td>", 1)[1].split("</tr>", 1)[0]
    assert "<td>~ width^-1.00</td><td>constant</td>" in hidden
    assert all(f"<td>{BASE_LR / r:.3g} / {BASE_WD:.3g}</td>" in hidden for r in (2, 4, 8, 16))
    assert "<td>+0.500 [+0.500, +0.500] (tier 2)</td>" in body  # constant's capped gap at 512
    departures = body.split("<ul>", 1)[1].split("</ul>", 1)[0]
    steeper, readout = departures.split("</li>")[:2]
    assert "steeper" in steeper and escape("hidden lr x1.07 to x1.32 muP's at widths 64-512") in steeper
    assert escape("(~ width^-0.90; muP's ~ width^-1.00)") in steeper and "output" not in steeper
    assert "readout_fixed" in readout and escape("embedding lr x2 muP's at widths 64-256") in readout
    assert escape("output lr x2 to x8 muP's") in readout and "hidden" not in readout
    # The header's bar: against the best seed on tier 2, per width.
    html = page(directory)
    assert "against the best baseline rule on tier 2, mup" in html
    assert escape("(mup's held-out loss / the candidate's, paired over 3 seeds on 1 width)") in html


def test_the_chart_data_come_from_the_archive(campaign, shipped):
    directory, records = campaign
    shipped(reference_text())
    with opened(directory) as store:
        view = read_view(store)
    top = scaling_candidates(view, [r for r in view.ranked() if not r.is_seed], 3)
    assert [r.name for r in top] == ["steeper", "readout_fixed"]  # verified on tier 2 first
    rules, missing = scaling_rules(view, top)
    assert [r.name for r in rules] == ["steeper", "readout_fixed", "mup", "constant"] and missing == []
    mup = rules[2]
    assert [w.tier for w in mup.widths] == [1, 1, 1, 2]
    assert mup.values("hidden", 0) == [(64.0, 0.005), (128.0, 0.0025), (256.0, 0.00125), (512.0, 0.000625)]
    assert mup.values("vector", 1) == [(w, 0.0) for w in (64.0, 128.0, 256.0, 512.0)]
    constant = rules[3]
    assert constant.gaps()[-1] == (512.0, pytest.approx(0.5)) and constant.widths[-1].gap_ci == (0.5, 0.5)
    optimum = tuned_optimum(view, rules)
    assert optimum.base_width == 32 and optimum.note is None
    assert optimum.lr == ((32.0, BASE_LR), *((float(w), pytest.approx(tuned_lr(w))) for w in (64, 128, 256, 512)))
    assert optimum.weight_decay[0] == (32.0, BASE_WD) and optimum.weight_decay[-1] == (512.0, pytest.approx(tuned_wd(512)))
    assert law_text(mup.values("hidden", 0)) == "~ width^-1.00" and law_text(mup.values("vector", 1)) == "none"
    assert differences(mup, mup, ("embedding", "hidden", "output", "vector")) == []


@pytest.mark.parametrize("shipped_text, note", [
    (None, "no reference file"),
    (reference_text().replace('"lr": 0.01', '"lr": 0.02'), "is not the one these results were scored against"),
])
def test_without_the_evaluations_reference_the_base_point_is_left_out(campaign, shipped, shipped_text, note):
    directory, _ = campaign
    shipped(shipped_text)
    html = page(directory)
    lr, wd, _ = (charts(html)[t] for t in CHART_TITLES)
    assert len(lr["tuned optimum"]) == 4 and "tuned optimum" not in wd  # the tuned lrs are in the results
    assert ">32</text>" not in section(html)
    assert note in section(html) and "not drawn" in section(html)


def test_notes_instead_of_charts_when_there_is_nothing_to_draw(tmp_path, shipped):
    shipped(None)
    seeds_only = tmp_path / "seeds"
    make_scaling_campaign(seeds_only, tuple(r for r in RULES if r[0] in ("constant", "mup")))
    body = section(page(seeds_only))
    assert "<svg" not in body and "no new candidate has a score yet: nothing to compare with muP" in body
    without_mup = tmp_path / "no_mup"
    make_scaling_campaign(without_mup, (("constant", (1,)), ("readout_fixed", (1,))))
    body = section(page(without_mup))
    assert len(SVG.findall(body)) == 3 and "not drawn: no mup seed" in body
    assert "departs from the muP seed" not in body  # nothing to compare with


def test_line_chart_log_x_with_given_ticks_and_a_dot_at_every_point():
    points = ((32.0, 1.0), (64.0, 2.0), (512.0, 3.0))
    chart = line_chart([Series("s", points, "#000")], title="t", x_label="width", y_label="y",
                       log_x=True, x_ticks=(32, 64, 128, 256, 512, 1024), dots=True)
    assert "width (log scale)" in chart and chart.count("<circle") == 3
    assert [t for t in ("32", "64", "128", "256", "512", "1024") if f">{t}</text>" in chart] == ["32", "64", "128", "256", "512"]
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', chart)]
    assert math.isclose((xs[2] - xs[1]) / (xs[1] - xs[0]), 3.0, rel_tol=0.01)  # 64 -> 512 is 3 doublings
    linear = line_chart([Series("s", ((0.0, 1.0), *points), "#000")], title="t", x_label="x", y_label="y", log_x=True)
    assert "log scale" not in linear and linear.count("<circle") == 1  # a 0 on x: linear, as before


def test_show_gives_each_widths_gap_and_the_rules_values_per_group(campaign, capsys):
    directory, records = campaign
    with opened(directory) as store:
        view = read_view(store)
    assert main(["show", str(directory), records["steeper"].id[:10]]) == 0
    out = capsys.readouterr().out
    assert "x tuned optimum on tier 2" in out
    assert "tier 1 per width (score = exp(-gap); gap = held-out loss - tuned optimum's, in nats, capped)" in out
    assert "tuned AdamW" not in out and "candidate's final" not in out
    tier2 = view.evaluation(records["steeper"].id, 2)
    task = tier2.tasks[0]
    lo, hi = task.paired_diff_ci
    row = next(line for line in out.splitlines() if "stdlib_resmlp_heldout_w512" in line and "ok" in line)
    assert f"{task.final - task.reference_final:+.4f} [{lo:+.4f}, {hi:+.4f}]" in row
    assert f"{task.lr:.4g}" in row and f"{tuned_lr(512):.4g}" in row
    groups = next(line for line in out.splitlines() if "embedding" in line and "hidden" in line)
    assert groups.split() == ["┃", "task", "┃", "embedding", "┃", "hidden", "┃", "output", "┃", "vector", "┃"]
    assert main(["show", str(directory), records["mup"].id[:10]]) == 0
    out = capsys.readouterr().out
    w128 = next(line for line in out.splitlines() if "stdlib_resmlp_w128" in line and "/" in line)
    assert [c.strip() for c in w128.split("│")[1:-1]] == [
        "stdlib_resmlp_w128", "0.01 / 0.2", "0.0025 / 0.2", "0.0025 / 0.2", "0.01 / 0"]
    assert seed_row(view, "mup") is not None


def test_ls_says_tier_2_is_a_held_out_width(campaign, capsys):
    directory, _ = campaign
    assert main(["ls", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "scores x tuned optimum; tier 2 = held-out width" in " ".join(out.split())
    assert "AdamW" not in out


@pytest.mark.slow
def test_a_headless_browser_renders_the_scaling_charts_offline(campaign, shipped, tmp_path):
    from . import browser as chrome
    from .test_report import CHECK_CHARTS, PAGE_AND_WINDOW_WIDTHS, _box, pixel_spread

    path = chrome.find_chromium()
    if path is None:
        pytest.skip("chromium is not installed: run `make browser-deps` (apt-get install chromium)")
    directory, _ = campaign
    shipped(reference_text())
    html_file = tmp_path / "report.html"
    html_file.write_text(page(directory), encoding="utf-8")
    with chrome.chromium(path, width=800) as browser:
        session = chrome.open_page(browser, html_file.as_uri(), offline=True)
        charts = [c for c in json.loads(chrome.evaluate(browser, session, CHECK_CHARTS)) if c["title"] in CHART_TITLES]
        shots = [chrome.screenshot(browser, session, _box(c)) for c in charts]
        page_width, window = chrome.evaluate(browser, session, PAGE_AND_WINDOW_WIDTHS)
        errors = chrome.page_errors(browser)
    assert errors == [] and [c["title"] for c in charts] == CHART_TITLES
    for chart, png in zip(charts, shots, strict=True):
        assert chart["drawn"] >= 10 and pixel_spread(png) > 10, chart
    assert page_width <= window  # the per-group table wraps rather than widening the page
