"""Typed view of params.yaml: the single source of truth for every stage.

Each section of params.yaml is a frozen pydantic model. A bad setting raises
:class:`ConfigError` naming the key and what is expected, never a raw traceback.

>>> params = Params()
>>> params.bant.threshold
3.0
>>> sorted(params.bant.letters)
['authority', 'budget', 'need', 'timeline']
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lead_ml.crm import CrmConfig

#: The six MEDDIC dimensions, then the two signals outside MEDDIC, in report order.
MEDDIC_DIMENSIONS: tuple[str, ...] = (
    "metrics",
    "economic_buyer",
    "decision_criteria",
    "decision_process",
    "identify_pain",
    "champion",
)
DIMENSIONS: tuple[str, ...] = (*MEDDIC_DIMENSIONS, "fit", "engagement")
BANT_LETTERS: tuple[str, ...] = ("budget", "authority", "need", "timeline")


class ConfigError(ValueError):
    """A setting in params.yaml is missing or wrong; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SyntheticConfig(_Section):
    """Size and shape of the built-in synthetic CRM."""

    n_deals: int = Field(40_000, ge=100, description="deals to generate")
    n_accounts: int = Field(8_000, ge=10, description="accounts the deals belong to")
    start: date = Field(date(2023, 1, 1), description="first created_at")
    months: int = Field(36, ge=3, description="months of history up to the export")
    activities_per_deal: float = Field(
        28.0, gt=0, description="mean activity-log rows per deal (roughly)"
    )


class DataConfig(_Section):
    """How raw tables are written and read."""

    format: Literal["parquet", "csv"] = "parquet"


class FeaturizeConfig(_Section):
    """Point-in-time feature settings."""

    snapshot_days: int = Field(
        14,
        ge=0,
        description="features use only what was known this many days after created_at",
    )
    half_life_days: float = Field(
        7.0, gt=0, description="half-life of the recency weight on activities"
    )


class SplitConfig(_Section):
    """Time-ordered split of closed deals: oldest train, then validation, then test."""

    valid_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)


class TrainConfig(_Section):
    """LightGBM settings; the tree shape also decides how fast explanations run."""

    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(8, ge=2)
    max_depth: int = Field(3, ge=-1)
    n_estimators: int = Field(600, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    min_child_samples: int = Field(40, ge=1)
    reg_lambda: float = Field(1.0, ge=0)
    feature_fraction: float = Field(0.9, gt=0, le=1)
    bagging_fraction: float = Field(0.9, gt=0, le=1)
    # One thread: at tens of thousands of deals LightGBM's OpenMP threads gain little
    # and, when the cores are busy (CI, a shared box), spin: measured 1.3 s vs 30 s.
    num_threads: int = Field(1, ge=1)


class BantConfig(_Section):
    """The BANT rule: each letter is a condition on deal columns (pandas query syntax).

    A lead passes a letter when its condition is true; the rule qualifies a lead when
    the weighted count of passed letters reaches ``threshold``.
    """

    letters: dict[str, str] = Field(
        default_factory=lambda: {
            "budget": "bant_budget == 'yes'",
            "authority": "bant_authority == 'yes'",
            "need": "bant_need == 'yes'",
            "timeline": "bant_timeline in ['0-3 months', '3-6 months']",
        }
    )
    weights: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(BANT_LETTERS, 1.0)
    )
    threshold: float = Field(3.0, gt=0)

    @model_validator(mode="after")
    def _letters_are_bant(self) -> BantConfig:
        unknown = sorted(set(self.letters) - set(BANT_LETTERS))
        if unknown:
            raise ValueError(f"unknown letters {unknown}; use {list(BANT_LETTERS)}")
        if not self.letters:
            raise ValueError("configure at least one letter")
        missing = sorted(set(self.letters) - set(self.weights))
        if missing:
            raise ValueError(f"weights missing for letters {missing}")
        if self.threshold > sum(self.weights[k] for k in self.letters):
            raise ValueError(
                "threshold is above the sum of the weights: nothing passes"
            )
        return self


class EvaluateConfig(_Section):
    """Evaluation settings: bootstrap, capacity, calibration bins."""

    capacity: int | None = Field(
        None, ge=1, description="leads reps can work; null = as many as BANT qualifies"
    )
    n_bootstrap: int = Field(1000, ge=50)
    calibration_bins: int = Field(10, ge=2)
    score_bands: int = Field(10, ge=2, description="bins of the win-rate-by-score plot")


class BandsConfig(_Section):
    """Score bands A, B, C as shares of the validation window; D is the rest."""

    A: float = Field(0.10, gt=0, lt=1)
    B: float = Field(0.20, gt=0, lt=1)
    C: float = Field(0.30, gt=0, lt=1)

    @model_validator(mode="after")
    def _shares_fit(self) -> BandsConfig:
        if self.A + self.B + self.C >= 1:
            raise ValueError("A + B + C must stay below 1 so band D is not empty")
        return self


class TrackingConfig(_Section):
    """MLflow experiment and registered model names, and the live model's alias."""

    experiment: str = "lead-ml"
    registered_model: str = "lead-ml-scorer"
    champion_alias: str = Field(
        "champion",
        min_length=1,
        description="registry alias of the model in production (`lead-ml promote`)",
    )


class CompareConfig(_Section):
    """`lead-ml compare`: which months of the test window are judged for stability."""

    min_month_deals: int = Field(
        100,
        ge=1,
        description="months with fewer closed deals are shown, not judged (too noisy)",
    )


class PromotionConfig(_Section):
    """The gate `lead-ml promote` applies, declared before anyone looks at results.

    The challenger is scored against the champion (with no champion yet: the BANT
    rule) on the same test window, and every condition must hold.
    """

    min_delta_auc_ci_low: float = Field(
        0.0,
        ge=-1,
        le=1,
        description="the 95% CI low bound of challenger minus champion ROC AUC "
        "must be above this",
    )
    max_month_drop: float = Field(
        0.02,
        ge=0,
        le=1,
        description="no judged month may have the challenger's ROC AUC below the "
        "champion's by more than this",
    )
    min_capacity_wins_ratio: float = Field(
        1.0,
        ge=0,
        description="challenger's wins in the top K leads must be at least this "
        "times the champion's",
    )


class Params(_Section):
    """All of params.yaml."""

    seed: int = 42
    synthetic: SyntheticConfig = SyntheticConfig()
    data: DataConfig = DataConfig()
    featurize: FeaturizeConfig = FeaturizeConfig()
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    bant: BantConfig = BantConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    bands: BandsConfig = BandsConfig()
    tracking: TrackingConfig = TrackingConfig()
    compare: CompareConfig = CompareConfig()
    promotion: PromotionConfig = PromotionConfig()
    #: The user's own CRM export (README "Use your own CRM export"); None means
    #: the built-in synthetic CRM.
    crm: CrmConfig | None = None


def _explain(error: ValidationError, source: str) -> str:
    lines = [f"{source}: {error.error_count()} bad setting(s)"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        got = item.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key}: {item['msg']}{shown}")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a params mapping; raise ConfigError naming every bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_explain(error, source)) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate a params.yaml file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found; run from the project root or pass --params"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return parse_params(raw, str(path))
