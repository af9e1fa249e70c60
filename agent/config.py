"""Typed configuration (pydantic, frozen, unknown keys are errors) and the one place that reads the
environment. No field exists before something uses it."""

from __future__ import annotations

import math
import os
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from optforge.archive import SelectionParams
from optforge.tasks.baselines import baseline_names
from optforge.tasks.contracts import Kind
from optforge.tasks.kinds import kind_spec
from optforge.tasks.paths import cache_dir  # noqa: F401  (re-exported: callers import it from here)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SweepConfig(_Frozen):
    """Learning-rate sweep on one fixed grid, the same for every candidate and every baseline.

    The grid is the powers of `factor` (1.0 included). A window of `points` of them is placed at the
    grid point nearest the candidate's default learning rate, extended while the best rate sits on
    its edge, then refined `refine` times around the best at half the spacing in log space (x4 ->
    x2 -> x1.41). Every candidate and baseline gets the same procedure (equal tuning, as AlgoPerf
    and "Fantastic Pretraining Optimizers" insist) and keeps its best.

    Why a fixed grid: a window centred on the candidate's own default made the score depend on
    where that default sat. In the 200-candidate campaign SGD with momentum 0.9 scored 0.918, 1.000,
    1.108 and 1.012 at tier 1 with only its default lr at 0.007, 0.01, 0.014 and 0.02, and moving a
    constant is the commonest mutation. On the fixed grid the default only chooses the window, and
    rates whose best is inside both windows give identical scores (tests/agent/test_sweeps.py).
    Default: 7 points x4 apart (3.6 decades): with 5 (1/16 to 16) tuned AdamW's best rate sat on the
    grid's top edge on 3 of 5 tier-1 tasks, and Lion's and SGD's on theirs.
    """

    points: int = Field(7, ge=1, le=15)
    factor: float = Field(4.0, gt=1.0)
    # While the best learning rate sits on an edge of the window, add the next grid point beyond it,
    # up to this many per side. Measured: on the rotated quadratic tuned AdamW's best rate was the
    # grid's top (0.064) and 0.256 halved its held-out loss, so a fixed window under-tuned it.
    max_extensions: int = Field(3, ge=0, le=10)
    # Refinement rounds after the window settles: each tries the best rate times and over
    # factor ** (1 / 2**r), r = 1, 2, ... (default: one round, so the final resolution is x2).
    refine: int = Field(1, ge=0, le=4)

    def snap(self, lr: float) -> float:
        """The grid point (a power of `factor`) nearest `lr` in log space."""
        if not lr > 0:
            raise ValueError(f"a learning rate must be positive, got {lr!r}: fix HPARAMS['lr']")
        return float(self.factor ** round(math.log(lr) / math.log(self.factor)))

    def learning_rates(self, center: float) -> list[float]:
        """The window: `points` grid points around the one nearest `center`, ascending."""
        k = round(math.log(self.snap(center)) / math.log(self.factor))
        first = k - (self.points - 1) // 2
        return [float(self.factor ** (first + i)) for i in range(self.points)]

    def refinement_step(self, round_index: int) -> float:
        """The multiplicative step of refinement round `round_index` (1-based)."""
        return float(self.factor ** (0.5**round_index))


class SandboxConfig(_Frozen):
    backend: Literal["process", "docker"] = "process"
    workers: int | None = Field(None, ge=1, description="default: one per CPU core")
    allow_unisolated: bool = False  # run without bubblewrap: no network or filesystem isolation
    # One wall-clock limit for every job, in seconds. None (default): each job's limit fits its work
    # (agent/evaluation/limits.py): tier-0 jobs get `tier0_timeout_s`; a training job gets `timeout_multiple`
    # times what the same number of members cost the tuned AdamW reference on that task, and at
    # least `min_job_timeout_s`.
    job_timeout_s: float | None = Field(None, gt=0)
    tier0_timeout_s: float = Field(10.0, gt=0, description="a tier-0 job takes 0.03-0.5 s")
    timeout_multiple: float = Field(10.0, ge=1.0)
    min_job_timeout_s: float = Field(30.0, gt=0)
    memory_mb: int = Field(4096, ge=256)
    # docker only: the image (default: the tag of this host's recipe, `optforge sandbox build`)
    image: str | None = None
    # docker only: None (CPU), "all", or how many GPUs the workers share, one per worker in turn
    gpus: Literal["all"] | Annotated[int, Field(ge=1)] | None = None


class ExecutorConfig(_Frozen):
    """Where sandbox jobs run: this machine's pool of warm workers, or Ray actors across a cluster,
    each owning one warm worker of the configured sandbox backend on its node (sandbox/ray_runner.py).
    The campaign loop, the archive and the scoring stay on this machine either way."""

    engine: Literal["local", "ray"] = "local"
    # ray only: None starts a private Ray instance on this machine; "auto" joins the cluster this
    # machine is part of; "host:port" joins the cluster whose head listens there.
    address: str | None = None
    num_cpus: float = Field(1.0, gt=0, description="CPUs Ray reserves per actor")
    num_gpus: float = Field(0.0, ge=0, description="GPUs Ray reserves per actor (1: a device each)")
    # How long one actor may take to start: a node's first one exports the train splits (and the
    # preference task's data, minutes, once per node) and imports torch.
    start_timeout_s: float = Field(900.0, gt=0)


class EvaluationConfig(_Frozen):
    seeds: dict[int, Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: {1: 8, 2: 4}, description="seeds per tier (tiers 1 and 2)"
    )
    sweep: SweepConfig = SweepConfig()
    sandbox: SandboxConfig = SandboxConfig()
    executor: ExecutorConfig = ExecutorConfig()
    # Where the proxy tasks train: "auto" is CUDA when the workers can have a GPU (this machine has
    # one for the local pool; num_gpus > 0 for Ray actors; `sandbox.gpus` set for Docker), else the
    # CPU. "cuda" insists. The preference and scaling tasks train on the CPU either way.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # The most batched mode a job may use (tasks/vectorized.py): tier 0 picks the most batched mode
    # that a candidate's code runs in, and this caps it. Every mode gives the same scores, so this
    # only changes cost; "vmap" or "loop" are for diagnosis and benchmarks.
    max_batching: Literal["vmap_lr", "vmap", "loop"] = "vmap_lr"

    @field_validator("seeds")
    @classmethod
    def _seeded_tiers_exist(cls, seeds: dict[int, int]) -> dict[int, int]:
        unknown = sorted(set(seeds) - {1, 2})
        if unknown:
            raise PydanticCustomError(
                "unknown_tier",
                "seeds are set per tier, 1 (the screen) or 2 (held out); there is no tier {tiers}",
                {"tiers": ", ".join(map(str, unknown))},
            )
        return seeds

    def seeds_for(self, tier: int) -> int:
        return self.seeds.get(tier, 1)


# Used when neither LLMConfig.model nor $OPTFORGE_LLM_MODEL names one: a cheap, capable default.
DEFAULT_LLM_MODEL = "gpt-4o-mini"


class LLMConfig(_Frozen):
    """The language-model proposer (agent/proposers/llm.py) and its client (agent/llm/).

    The API key is deliberately not a field: the config is saved with every run, and a key must never
    be stored. It comes from the environment only (`llm_api_key`). `model` and `base_url` may also
    come from the environment (`resolve_llm_config`); a value set here wins.
    """

    backend: Literal["openai", "litellm"] = "openai"  # litellm needs `pip install 'optforge[litellm]'`
    model: str | None = Field(None, description=f"default: $OPTFORGE_LLM_MODEL, else {DEFAULT_LLM_MODEL}")
    # Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, ...), e.g. http://localhost:8000/v1.
    # None: $OPTFORGE_LLM_BASE_URL, else $OPENAI_BASE_URL, else the provider's own.
    base_url: str | None = None
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(4096, ge=256, description="reply budget in tokens (a 1.3 kB module is ~400)")
    timeout_s: float = Field(120.0, gt=0, description="per HTTP request, not per retried call")
    # Retries (agent/llm/retry.py): exponential backoff with jitter on 429, 5xx, timeouts, connection
    # errors and malformed bodies; never on other 4xx.
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0, description="cap on one wait, Retry-After included")
    max_concurrency: int = Field(4, ge=1, description="LLM requests in flight at once")
    diff_probability: float = Field(
        0.3, ge=0.0, le=1.0, description="chance to ask for SEARCH/REPLACE edits instead of a rewrite"
    )
    history_size: int = Field(12, ge=0, description="earlier candidates shown in a prompt")
    # The model's context window (prompt and reply), e.g. 8192 for SmolLM2 or a llama.cpp server
    # started with -c 8192. When set, a prompt that would not leave max_tokens for the reply drops
    # its weakest history entries, then inspirations (agent/proposers/prompting.py). None: no limit.
    context_tokens: int | None = Field(
        None, ge=1024, description="the model's context window in tokens, to fit prompts into"
    )

    @model_validator(mode="after")
    def _room_for_a_reply(self) -> LLMConfig:
        if self.context_tokens is not None and self.max_tokens >= self.context_tokens:
            raise ValueError(
                f"llm.max_tokens ({self.max_tokens}) must be below llm.context_tokens "
                f"({self.context_tokens}): the prompt needs room too"
            )
        return self


def resolve_llm_config(config: LLMConfig) -> LLMConfig:
    """`config` with `model` and `base_url` filled from the environment where it leaves them unset."""
    model = config.model or os.environ.get("OPTFORGE_LLM_MODEL") or DEFAULT_LLM_MODEL
    base_url = config.base_url or os.environ.get("OPTFORGE_LLM_BASE_URL")
    if base_url is None and config.backend == "openai":
        base_url = os.environ.get("OPENAI_BASE_URL")  # the openai SDK's own variable
    return config.model_copy(update={"model": model, "base_url": base_url or None})


def llm_api_key(backend: str) -> SecretStr | None:
    """The LLM API key from the environment, wrapped so that it never prints (None when unset).

    $OPTFORGE_LLM_API_KEY wins for every backend. The openai backend then falls back to
    $OPENAI_API_KEY; litellm finds each provider's own variable (ANTHROPIC_API_KEY, ...) itself, so
    it gets no fallback here (an OpenAI key would be wrong for another provider).
    """
    name = llm_api_key_variable(backend)
    return SecretStr(os.environ[name]) if name else None


def llm_api_key_variable(backend: str) -> str | None:
    """The name of the environment variable `llm_api_key` takes the key from (None: no key set).
    Safe to show: it names where the key is, never the key."""
    names = ("OPTFORGE_LLM_API_KEY", "OPENAI_API_KEY") if backend == "openai" else ("OPTFORGE_LLM_API_KEY",)
    return next((name for name in names if os.environ.get(name)), None)


# -- campaigns ------------------------------------------------------------------------------------


class BudgetConfig(_Frozen):
    """When a campaign stops: the first limit reached wins. Work done before a resume counts."""

    # New candidates stored in the archive (the seeds excluded). A proposal whose normalized source
    # is already archived is not a new candidate; one deduplicated by its behaviour fingerprint is
    # (it is stored, with the evaluation it reuses).
    max_candidates: int = Field(200, ge=1)
    max_llm_cost_usd: float | None = Field(None, gt=0, description="stop once LLM spend reaches it")
    # Wall time of this campaign's runs added up over resumes (the time a killed run spent before its
    # last stored record is lost to the count, at most one evaluation).
    max_wall_minutes: float | None = Field(None, gt=0)


# The selection policy's defaults, declared once, with the policy (archive/selection.py).
_POLICY = SelectionParams()


class SearchConfig(_Frozen):
    """Islands, MAP-Elites parent selection and migration (archive/selection.py `SelectionParams`,
    whose defaults these are; agent/campaign/selection.py turns this into one)."""

    islands: int = Field(_POLICY.n_islands, ge=1, le=64)
    migration_interval: int = Field(
        _POLICY.migration_interval, ge=1, description="generations between ring migrations"
    )
    exploitation: float = Field(
        _POLICY.exploitation, ge=0.0, le=1.0, description="chance a parent is drawn by softmax"
    )
    # None: the kind's (KindSpec.selection_temperature; 0.1 for scores that differ by 0.05-0.5).
    temperature: float | None = Field(None, ge=0.0, description="softmax temperature over scores")
    inspirations: int = Field(
        _POLICY.inspirations, ge=0, description="elites from other cells/islands shown to the LLM"
    )
    crossover_rate: float = Field(0.2, ge=0.0, le=1.0, description="chance a child has two parents")


# Pass as `context` when validating a config stored in an archive (agent/campaign/directory.py): settings
# that were renamed since are translated there, and refused with a message in a user's new file.
STORED_CONFIG = {"stored_config": True}


class CascadeConfig(_Frozen):
    """Tier 0 for every candidate, tier 1 for those that pass, tier 2 (held-out) for the top.

    After every tier-1 result the current top `tier2_top_k` of tier 1 (new candidates that passed
    tier 1 at the current task versions with at least `tier2_min_score`) are verified on tier 2, so
    the leaders always are, whenever they became leaders (agent/campaign/rules.py).
    """

    # A fixed k, not a fraction: with "the top 2% of tier-1 scores so far" (the old
    # `tier2_fraction`) early record-holders reached tier 2 while tier-1 ranks 5-13 never did.
    tier2_top_k: int = Field(5, ge=0, description="tier-1 leaders kept verified on tier 2 (0: off)")
    # None: the kind's (KindSpec.tier2_min_score: 1.0, as good as the reference, for most kinds).
    tier2_min_score: float | None = Field(None, gt=0.0, description="1.0: as good as the reference on tier 1")

    def min_score(self, kind: str) -> float:
        """The tier-1 score a new candidate of `kind` needs to be verified on tier 2."""
        return self.tier2_min_score if self.tier2_min_score is not None else kind_spec(kind).tier2_min_score
    seeds_tier2: bool = Field(False, description="also evaluate the seeds on tier 2 (minutes each)")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object, info: ValidationInfo) -> object:
        """`tier2_fraction` (until issue 13): translated in a stored config, so an archive made
        before it still opens and resumes (0 kept tier 2 off; any other fraction becomes the
        default top k), and refused with what to write instead anywhere else."""
        if not isinstance(data, dict) or "tier2_fraction" not in data:
            return data
        if info.context and info.context.get("stored_config"):
            data = dict(data)
            fraction = data.pop("tier2_fraction")
            default = cls.model_fields["tier2_top_k"].default
            data.setdefault("tier2_top_k", default if fraction else 0)
            return data
        raise PydanticCustomError(
            "renamed_setting",
            "tier2_fraction was replaced by tier2_top_k: the current top k of tier 1 go to tier 2 "
            "as the ranking changes; write e.g. tier2_top_k = 5 (0 turns tier 2 off)",
        )


ProposerName = Literal["auto", "mutate", "llm", "mix"]
MixMember = Literal["llm", "mutate"]


def _default_mix() -> dict[MixMember, float]:
    return {"llm": 0.8, "mutate": 0.2}


class CampaignConfig(_Frozen):
    """One discovery campaign. Saved (frozen) in its archive; `optforge init` writes it annotated."""

    kind: Kind = "optimizer"
    # "auto": the LLM when one is configured (a model, base URL or API key in the environment or
    # here), else the offline mutation proposer with a one-line notice.
    proposer: ProposerName = "auto"
    mix: dict[MixMember, float] = Field(
        default_factory=_default_mix,
        description="weights of the `mix` proposer",
    )
    seed: int = Field(0, ge=0, description="seeds the campaign's random choices")
    # The bundled baselines the search starts from (its seed programs), by name; None: all of the
    # kind's. Fewer seeds reach new candidates sooner: each seed costs a full tier-1 evaluation.
    start_from: list[str] | None = Field(None, min_length=1, description="baselines to start from")
    budget: BudgetConfig = BudgetConfig()
    search: SearchConfig = SearchConfig()
    cascade: CascadeConfig = CascadeConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    llm: LLMConfig = LLMConfig()

    @model_validator(mode="after")
    def _known_baselines(self) -> CampaignConfig:
        if self.start_from is None:
            return self
        known = baseline_names(self.kind)
        unknown = [name for name in self.start_from if name not in known]
        if unknown:
            raise PydanticCustomError(
                "unknown_baseline",
                "start_from names no {kind} baseline {unknown}: choose from {known}",
                {"kind": self.kind, "unknown": ", ".join(unknown), "known": ", ".join(known)},
            )
        if len(set(self.start_from)) != len(self.start_from):
            raise PydanticCustomError(
                "repeated_baseline", "start_from names a baseline twice: list each once"
            )
        return self

    def seed_names(self) -> list[str]:
        """The baselines this campaign starts from, in archive order."""
        return list(self.start_from) if self.start_from is not None else baseline_names(self.kind)


def llm_configured(config: LLMConfig) -> bool:
    """Whether the user has pointed optforge at a language model (config or environment)."""
    env = ("OPTFORGE_LLM_MODEL", "OPTFORGE_LLM_BASE_URL", "OPTFORGE_LLM_API_KEY", "OPENAI_API_KEY")
    return bool(config.model or config.base_url or any(os.environ.get(name) for name in env))
