"""Campaign config files: the annotated template, one-line load errors, and the TOML dump."""

from __future__ import annotations

import pathlib
import re
import tempfile
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from optforge.agent.campaign.directory import config_in_force, with_overrides
from optforge.agent.config import (
    BudgetConfig,
    CampaignConfig,
    CascadeConfig,
    EvaluationConfig,
    LLMConfig,
    SearchConfig,
    SweepConfig,
)
from optforge.agent.config_file import (
    ConfigFileError,
    config_to_toml,
    default_config_text,
    load_config,
    write_default_config,
)

# A commented-out setting in the template: "# key = value" (prose comments never look like this).
COMMENTED_SETTING = re.compile(r"^# ?([A-Za-z0-9_]+ = .*)$", re.MULTILINE)


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _leaf_paths(annotation, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def _uncommented_template() -> str:
    return COMMENTED_SETTING.sub(r"\1", default_config_text())


def _load_text(tmp_path: pathlib.Path, text: str) -> CampaignConfig:
    path = tmp_path / "campaign.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _error(tmp_path: pathlib.Path, text: str) -> str:
    with pytest.raises(ConfigFileError) as info:
        _load_text(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message
    return message


def _round_trip(config: CampaignConfig) -> CampaignConfig:
    with tempfile.TemporaryDirectory() as folder:
        return _load_text(pathlib.Path(folder), config_to_toml(config))


# -- the template ---------------------------------------------------------------------------------


def test_template_loads_to_the_defaults(tmp_path):
    assert _load_text(tmp_path, default_config_text()) == CampaignConfig()


def test_template_shows_every_field_set_or_commented_out():
    shown = tomllib.loads(_uncommented_template())
    missing = []
    for path in _leaf_paths(CampaignConfig):
        table = shown
        for part in path[:-1]:
            table = table.get(part, {})
        if path[-1] not in table:
            missing.append(".".join(path))
    assert not missing, f"document these fields in agent/templates/campaign.toml: {missing}"


def test_template_commented_out_examples_are_valid_values(tmp_path):
    config = _load_text(tmp_path, _uncommented_template())
    assert config.budget.max_llm_cost_usd is not None and config.llm.model is not None


def test_template_never_holds_an_api_key():
    text = default_config_text()
    assert "api_key" not in text
    assert not re.search(r"^#?\s*\w*key\w*\s*=", text, re.MULTILINE | re.IGNORECASE)
    assert "OPTFORGE_LLM_API_KEY" in text  # says where the key goes instead


def test_write_default_config_creates_folders_and_writes_the_template(tmp_path):
    path = tmp_path / "new" / "folder" / "campaign.toml"
    write_default_config(path)
    assert path.read_text(encoding="utf-8") == default_config_text()
    assert load_config(path) == CampaignConfig()


def test_write_default_config_never_overwrites(tmp_path):
    path = tmp_path / "campaign.toml"
    path.write_bytes(b"mine = 1\n")
    with pytest.raises(ConfigFileError, match="already exists: choose another name or delete it"):
        write_default_config(path)
    assert path.read_bytes() == b"mine = 1\n"


# -- load errors ----------------------------------------------------------------------------------


def test_unknown_key_names_it_and_the_known_keys(tmp_path):
    message = _error(tmp_path, "[budget]\nmax_candidate = 10\n")
    assert "budget.max_candidate: unknown key" in message
    assert "known: max_candidates, max_llm_cost_usd, max_wall_minutes" in message
    assert "optforge init" in message


def test_unknown_section_names_the_top_level_keys(tmp_path):
    message = _error(tmp_path, "[budgte]\nmax_candidates = 10\n")
    assert "budgte: unknown key" in message and "budget" in message and "llm" in message


def test_wrong_type_names_the_dotted_location(tmp_path):
    message = _error(tmp_path, '[budget]\nmax_candidates = "many"\n')
    assert message.startswith(str(tmp_path / "campaign.toml"))
    assert "budget.max_candidates:" in message and "'many'" in message


def test_every_problem_is_listed_on_one_line(tmp_path):
    message = _error(tmp_path, 'kind = "optimiser"\n[evaluation.sweep]\npoints = 0\n')
    assert "kind:" in message and "evaluation.sweep.points:" in message and "; " in message


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [("1 = 0", "evaluation.seeds.1: Input should be greater than or equal to 1"),
     ("3 = 4", "there is no tier 3")],
)
def test_seeds_are_positive_and_only_for_tiers_that_exist(tmp_path, seeds, expected):
    assert expected in _error(tmp_path, f"[evaluation.seeds]\n{seeds}\n")


def test_the_replaced_tier2_fraction_says_what_to_write_instead(tmp_path):
    message = _error(tmp_path, "[cascade]\ntier2_fraction = 0.1\n")
    assert "tier2_fraction was replaced by tier2_top_k" in message
    assert "tier2_top_k = 5" in message and "0 turns tier 2 off" in message


def test_a_stored_config_with_tier2_fraction_still_opens_and_translates(tmp_path):
    # An archive made before tier2_top_k stored its config with the old key (`optforge status`
    # and `resume` read it through config_in_force); 0 kept tier 2 off.
    stored = CampaignConfig().model_dump(mode="json")
    del stored["cascade"]["tier2_top_k"]
    stored["cascade"]["tier2_fraction"] = 0.02
    assert config_in_force(stored, []).cascade.tier2_top_k == CascadeConfig().tier2_top_k
    stored["cascade"]["tier2_fraction"] = 0.0
    config = config_in_force(stored, [])
    assert config.cascade.tier2_top_k == 0
    assert "tier2_fraction" not in config_to_toml(config)  # what a resume writes back is current
    # A resume validates the config in force again, with its overrides, without the context.
    assert with_overrides(config, {"budget.max_candidates": 7}).cascade.tier2_top_k == 0


def test_toml_syntax_error_gives_line_and_column(tmp_path):
    message = _error(tmp_path, "seed = 1\nkind = \n")
    assert "invalid TOML" in message and "line 2" in message


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigFileError, match="no such file.*optforge init"):
        load_config(tmp_path / "absent.toml")


def test_non_utf8_file_is_reported(tmp_path):
    path = tmp_path / "campaign.toml"
    path.write_bytes(b'kind = "\xff"\n')
    with pytest.raises(ConfigFileError, match="not UTF-8"):
        load_config(path)


# -- the dump -------------------------------------------------------------------------------------


def test_default_config_round_trips():
    assert _round_trip(CampaignConfig()) == CampaignConfig()


def test_non_default_config_round_trips():
    config = CampaignConfig(
        kind="loss",
        proposer="mix",
        mix={"llm": 0.5, "mutate": 1.5},
        budget=BudgetConfig(max_wall_minutes=5.0),
        cascade=CascadeConfig(seeds_tier2=True),
        evaluation=EvaluationConfig(seeds={1: 3}, sweep=SweepConfig(points=3)),
        llm=LLMConfig(model='a "quoted"\\model\n\x7f', base_url="http://localhost:8000/v1"),
    )
    text = config_to_toml(config)
    assert "max_llm_cost_usd" not in text  # None is left out: TOML has no null
    assert _round_trip(config) == config


@settings(max_examples=40, deadline=None)
@given(
    max_candidates=st.integers(1, 10**9),
    search_temperature=st.floats(0.0, 1e6),
    exploitation=st.floats(0.0, 1.0),
    factor=st.floats(1.0, 1e3, exclude_min=True),
    weights=st.tuples(st.floats(0.0, 1e3), st.floats(0.0, 1e3)),
    seeds=st.dictionaries(st.sampled_from([1, 2]), st.integers(1, 64), max_size=2),
    model=st.text(max_size=30),
)
def test_dump_round_trips_any_values(
    max_candidates, search_temperature, exploitation, factor, weights, seeds, model
):
    config = CampaignConfig(
        mix={"llm": weights[0], "mutate": weights[1]},
        budget=BudgetConfig(max_candidates=max_candidates),
        search=SearchConfig(temperature=search_temperature, exploitation=exploitation),
        evaluation=EvaluationConfig(seeds=seeds, sweep=SweepConfig(factor=factor)),
        llm=LLMConfig(model=model),
    )
    assert _round_trip(config) == config
