"""The README's plain-PyTorch snippet, read from README.md itself, trains a real model with an
exported file: the documentation cannot rot without this failing."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
import sys

from optforge.agent.export import export_candidate

from .campaigns import make_campaign

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"
SECTION = "## Use a discovered optimizer"


def _plain_loop_snippet() -> str:
    text = README.read_text()
    assert SECTION in text, f"README.md lost its {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    loop = [
        b for b in blocks if "from my_optimizer import DiscoveredOptimizer" in b and "for step" in b
    ]
    assert len(loop) == 1, "expected one plain-loop snippet importing my_optimizer"
    return loop[0]


def test_readme_plain_loop_trains_digits_with_an_exported_optimizer(tmp_path, monkeypatch):
    record = make_campaign(tmp_path / "campaign", "optimizer", ["adamw"])["adamw"]
    export_candidate(tmp_path / "campaign", record.id[:6], tmp_path / "my_optimizer.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_optimizer", raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_plain_loop_snippet(), "README.md", "exec"), {"__name__": "readme_snippet"})
    sys.modules.pop("my_optimizer", None)
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", out.getvalue())]
    assert len(losses) == 5, out.getvalue()
    assert losses[-1] < 0.5 * losses[0], out.getvalue()  # digits: ~2.3 at first
    assert (tmp_path / "optimizer.pt").is_file()


def test_every_readme_snippet_of_the_section_is_valid_python_using_the_documented_hooks():
    section = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    for block in blocks:
        compile(block, "README.md", "exec")  # a SyntaxError names the broken snippet
    joined = "\n".join(blocks)
    assert "optimizer_cls_and_kwargs=(DiscoveredOptimizer," in joined  # Hugging Face Trainer
    assert "def configure_optimizers(self):" in joined  # Lightning


PREFERENCE_SECTION = "## Preference losses"


def _preference_blocks() -> list[str]:
    text = README.read_text()
    assert PREFERENCE_SECTION in text, f"README.md lost its {PREFERENCE_SECTION!r} section"
    section = text.split(PREFERENCE_SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_readme_dpo_step_aligns_a_model_with_an_exported_preference_loss(tmp_path, monkeypatch):
    record = make_campaign(tmp_path / "campaign", "preference_loss", ["dpo"])["dpo"]
    export_candidate(tmp_path / "campaign", record.id[:6], tmp_path / "my_preference_loss.py")
    (step,) = [b for b in _preference_blocks() if "from my_preference_loss import" in b and "for step" in b]
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_preference_loss", raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(step, "README.md", "exec"), {"__name__": "readme_snippet"})
    sys.modules.pop("my_preference_loss", None)
    before, after = (float(v) for v in re.findall(r"margin (-?[0-9.]+) -> (-?[0-9.]+)", out.getvalue())[0])
    assert after > before + 5, out.getvalue()  # the policy now prefers the chosen responses


def test_the_trl_snippet_overrides_dpo_loss_with_the_discovered_loss():
    blocks = _preference_blocks()
    for block in blocks:
        compile(block, "README.md", "exec")
    (trl,) = [b for b in blocks if "DPOTrainer" in b]
    assert "def dpo_loss(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps" in trl
    assert "discovered_preference_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, self.beta)" in trl


SCALING_SECTION = "## Scaling rules"


def test_readme_scaling_snippet_trains_a_wide_model_with_an_exported_rules_param_groups(tmp_path, monkeypatch):
    text = README.read_text()
    assert SCALING_SECTION in text, f"README.md lost its {SCALING_SECTION!r} section"
    section = text.split(SCALING_SECTION, 1)[1].split("\n## ", 1)[0]
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL) if "from my_rule import" in b]
    record = make_campaign(tmp_path / "campaign", "scaling_rule", ["mup"])["mup"]
    export_candidate(tmp_path / "campaign", record.id[:6], tmp_path / "my_rule.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_rule", raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README.md", "exec"), {"__name__": "readme_snippet"})
    sys.modules.pop("my_rule", None)
    printed = out.getvalue()
    # muP from width 64 to 1024: hidden and output learning rates / 16, the rest kept
    assert "hidden: lr 0.000188, weight decay 0.1" in printed and "output: lr 0.000188" in printed
    assert "embedding: lr 0.003, weight decay 0.1" in printed and "vector: lr 0.003, weight decay 0" in printed
    assert float(re.findall(r"loss ([0-9.]+)", printed)[0]) < 0.5  # it trained (the target's variance is 1)
