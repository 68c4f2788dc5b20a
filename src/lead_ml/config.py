"""Typed view of params.yaml: the single source of truth for every stage.

Each section of params.yaml is a frozen pydantic model. A bad setting raises
:class:`~lead_ml.vocab.ConfigError` naming the key and what is expected, never a raw
traceback. The ``source`` section is the data contract: which files hold the deals
(and optionally accounts and an activity log), their keys, the outcome, the missing
value placeholders, column kinds, bounds and directions, the forbidden columns and
the column-to-dimension map. The synthetic CRM is described by the same section as
any user's export.

>>> params = parse_params({
...     "source": {
...         "tables": {"deals": {"path": "deals.csv", "id": "Id"}},
...         "outcome": {"column": "Stage", "won": ["Won"], "lost": ["Lost"]},
...     },
...     "bant": {"letters": {"budget": "Revenue >= 1e6"}, "threshold": 1},
... })
>>> params.source.tables.deals.id, params.bant.weights
('Id', {'budget': 1.0})
>>> columns_read("`annual revenue` >= 1e6 and region == 'EU'")
['annual revenue', 'region']
"""

from __future__ import annotations

import ast
import math
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lead_ml.vocab import (
    BANT_LETTERS,
    META_COLUMNS,
    OUTPUT_DIMENSIONS,
    ConfigError,
    DeclaredKind,
)

#: Words in a column name that usually mean "the state at export time": the audit
#: flags them (see lead_ml.audit); the user may allow a column after checking.
LATE_NAME_WORDS: tuple[str, ...] = tuple(
    "last latest status stage tag tags quality rating score reason close closed "
    "closing won lost converted outcome result final".split()
)
_BACKTICKED = re.compile(r"`([^`]+)`")


def columns_read(condition: str) -> list[str]:
    """Sorted names of the columns a pandas-query condition reads.

    Raises SyntaxError when the condition does not parse.

    >>> columns_read("bant_need.str.startswith('y')")
    ['bant_need']
    """
    quoted = _BACKTICKED.findall(condition)
    placeholders = {f"__column_{i}__": name for i, name in enumerate(quoted)}
    names = iter(placeholders)
    plain = _BACKTICKED.sub(lambda _: next(names), condition).strip()
    tree = ast.parse(plain, mode="eval")
    # Function names (``abs(x)``) are not columns.
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    read = {
        placeholders.get(node.id, node.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and id(node) not in called
    }
    return sorted(read)


def letter_columns(letter: str, condition: str) -> list[str]:
    """The columns a BANT letter's condition reads; ValueError naming the letter."""
    try:
        return columns_read(condition)
    except SyntaxError as error:
        raise ValueError(
            f"letter {letter!r}: {condition!r} is not a pandas query condition "
            f'({error.msg}); write e.g. "annual_revenue >= 1e6", with `backticks` '
            "around column names that have spaces"
        ) from None


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- the source: files and their contract -------------------------------------------


class DealsTable(_Section):
    """The deals table: one row per lead or opportunity."""

    path: Path = Field(description="CSV or Parquet file, relative to the project root")
    id: str = Field(min_length=1, description="column with a unique id per deal")
    created: str | None = Field(
        None, description="column with the date the lead came in (time split)"
    )
    closed: str | None = Field(
        None, description="column with the date the deal was won or lost"
    )
    order: str | None = Field(
        None,
        description="with no created date: a column of numbers or dates that orders "
        "deals in time (e.g. a sequential lead number); it may also be the id",
    )
    amount: str | None = Field(
        None, description="column with the deal's expected value, known at creation"
    )


class AccountsTable(_Section):
    """An optional accounts table joined onto the deals on a key."""

    path: Path
    key: str = Field(min_length=1, description="column of the deals naming the account")
    id: str | None = Field(
        None, description="the account id column of this table (default: key)"
    )
    columns: list[str] | None = Field(
        None, description="account columns to join (default: all but the id)"
    )

    @property
    def id_column(self) -> str:
        """The account id column of the accounts table."""
        return self.id or self.key


class ActivitiesTable(_Section):
    """An optional activity log: one row per email, call, visit... of a deal."""

    path: Path
    key: str = Field(min_length=1, description="column holding the deal id")
    timestamp: str = Field(min_length=1, description="column with when it happened")
    type: str = Field(min_length=1, description="column with the kind of activity")


class TablesConfig(_Section):
    """The source's tables; leave out the ones the export does not have."""

    deals: DealsTable
    accounts: AccountsTable | None = None
    activities: ActivitiesTable | None = None

    def present(self) -> dict[str, DealsTable | AccountsTable | ActivitiesTable]:
        """The configured tables by name (what `lead-ml read` reads, one a stage)."""
        tables: dict[str, DealsTable | AccountsTable | ActivitiesTable | None] = {
            "deals": self.deals,
            "accounts": self.accounts,
            "activities": self.activities,
        }
        return {name: table for name, table in tables.items() if table is not None}


def _outcome_value(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError(
            f"{value!r} is a YAML boolean: quote the value as it is written in "
            "the file, e.g. won: ['Yes']"
        )
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class OutcomeConfig(_Section):
    """The outcome column and which of its values mean won, lost and (optionally) open.

    With ``open`` given, any other value rejects its row; without it, every value
    that is neither won nor lost is an open deal, the kind that gets scored.
    """

    column: str = Field(min_length=1)
    won: list[str] = Field(min_length=1, description="values meaning closed-won")
    lost: list[str] = Field(min_length=1, description="values meaning closed-lost")
    open: list[str] | None = Field(
        None, description="values meaning still open; others are rejected when set"
    )

    @field_validator("won", "lost", "open", mode="before")
    @classmethod
    def _values_as_text(cls, values: Any) -> Any:
        if values is None:
            return None
        if not isinstance(values, list):
            values = [values]
        return [_outcome_value(value) for value in values]

    @model_validator(mode="after")
    def _values_differ(self) -> OutcomeConfig:
        groups = {"won": self.won, "lost": self.lost, "open": self.open or []}
        for first, second in (("won", "lost"), ("won", "open"), ("lost", "open")):
            both = sorted(set(groups[first]) & set(groups[second]))
            if both:
                raise ValueError(f"{both} are listed as both {first} and {second}")
        return self


class Bounds(_Section):
    """The range a number column's values must lie in; a value outside rejects its
    row (in training and in scoring alike)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _a_range(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class SourceConfig(_Section):
    """The ``source`` section: the files of a CRM export and how to read them."""

    name: str = Field("CRM export", description="what the report calls the data")
    tables: TablesConfig
    outcome: OutcomeConfig
    missing_values: list[str] = Field(
        default_factory=list,
        description='values meaning "not answered", e.g. Select; blank is always',
    )
    ignore: list[str] = Field(default_factory=list, description="not features")
    forbidden: list[str] = Field(
        default_factory=list, description="recorded after the outcome: never features"
    )
    allowed: list[str] = Field(
        default_factory=list,
        description="columns the audit flagged that the user checked and keeps",
    )
    types: dict[str, DeclaredKind] = Field(
        default_factory=dict, description="kinds that cannot be inferred safely"
    )
    bounds: dict[str, Bounds] = Field(
        default_factory=dict, description="number columns' allowed ranges"
    )
    directions: dict[str, Literal[-1, 0, 1]] = Field(
        default_factory=dict,
        description="1: more of it never lowers the score; -1: never raises it",
    )
    max_levels: int = Field(
        50, ge=2, description="distinct values above which text is not a category"
    )
    dimensions: dict[str, str] = Field(
        default_factory=dict,
        description="column -> MEDDIC dimension, fit or engagement",
    )
    details: dict[str, str] = Field(
        default_factory=dict,
        description="column -> the column it details (a champion's strength details "
        "the champion): filled in only once that one is answered, and asked with it",
    )

    @field_validator("dimensions")
    @classmethod
    def _known_dimensions(cls, dimensions: dict[str, str]) -> dict[str, str]:
        for column, dimension in dimensions.items():
            if dimension not in OUTPUT_DIMENSIONS:
                raise ValueError(
                    f"{column!r}: {dimension!r} is not a dimension; use one of "
                    f"{', '.join(OUTPUT_DIMENSIONS)}"
                )
        return dimensions

    @model_validator(mode="after")
    def _consistent(self) -> SourceConfig:
        problem = _consistency_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    def roles(self) -> dict[str, str]:
        """Columns with a role (id, outcome, dates...) keyed by their params key."""
        deals, accounts = self.tables.deals, self.tables.accounts
        named = {
            "source.tables.deals.id": deals.id,
            "source.outcome.column": self.outcome.column,
            "source.tables.deals.created": deals.created,
            "source.tables.deals.closed": deals.closed,
            "source.tables.deals.order": deals.order,
            "source.tables.deals.amount": deals.amount,
            "source.tables.accounts.key": accounts.key if accounts else None,
        }
        return {key: column for key, column in named.items() if column is not None}

    def excluded(self) -> dict[str, str]:
        """Columns that are never features, with the reason."""
        reasons = {column: f"its role is {key}" for key, column in self.roles().items()}
        reasons |= dict.fromkeys(self.ignore, "listed under source.ignore")
        reasons |= dict.fromkeys(
            self.forbidden, "listed under source.forbidden (recorded after the outcome)"
        )
        return reasons


def _consistency_problem(source: SourceConfig) -> str:
    """The first contradiction between keys of the source section, or ''."""
    roles = source.roles()
    seen: dict[str, str] = {}
    for key, column in roles.items():
        # A sequential id may also be the order column; no other role is shared.
        pair = {key, seen.get(column)}
        shared = pair == {"source.tables.deals.id", "source.tables.deals.order"}
        if column in seen and not shared:
            return f"{key} and {seen[column]} both name column {column!r}; use one"
        seen[column] = key
    excluded = dict.fromkeys(source.ignore, "source.ignore")
    excluded |= dict.fromkeys(source.forbidden, "source.forbidden")
    for column in source.allowed:
        if column in excluded:
            return (
                f"source.allowed: {column!r} is also under {excluded[column]}; a "
                "column is either used (allowed) or left out"
            )
    for key in ("dimensions", "directions"):
        for column in getattr(source, key):
            where = excluded.get(column) or _role_key(roles, column)
            if where:
                return (
                    f"source.{key}.{column}: {column!r} is not a feature (it is "
                    f"under {where}); remove it from source.{key}"
                )
    for detail, parent in source.details.items():
        if detail == parent:
            return f"source.details.{detail}: a column cannot detail itself"
        if parent in source.details:
            return (
                f"source.details.{detail}: {parent!r} is itself a detail; name the "
                "column both detail"
            )
        for column in (detail, parent):
            where = excluded.get(column) or _role_key(roles, column)
            if where:
                return (
                    f"source.details.{detail}: {column!r} is not a feature (it is "
                    f"under {where})"
                )
    for column in source.bounds:
        kind = source.types.get(column, "number")
        if kind != "number":
            return (
                f"source.bounds.{column}: bounds need a number column, and "
                f"source.types declares it {kind}"
            )
    return ""


def _role_key(roles: dict[str, str], column: str) -> str:
    return next((key for key, name in roles.items() if name == column), "")


class AuditConfig(_Section):
    """Thresholds of the checks before training (see :mod:`lead_ml.audit`)."""

    min_per_outcome: int = Field(
        300,
        ge=1,
        description="won and lost deals each split needs; fewer: repeated CV instead",
    )
    max_single_auc: float = Field(
        0.95,
        gt=0.5,
        le=1,
        description="a column ranking won above lost this well on its own is leakage",
    )
    decisive_purity: float = Field(
        0.97, gt=0.5, le=1, description="a value this one-sided decides the outcome"
    )
    decisive_min_rows: int = Field(
        30, ge=1, description="rows a value needs before its purity counts"
    )
    decisive_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="share of training deals with deciding values that flags a column",
    )
    one_outcome_max_other: float = Field(
        0.01,
        ge=0,
        lt=0.2,
        description="a column filled for at most this share of one outcome (and five "
        "times more of the other) is filled only once the outcome is known",
    )
    late_date_share: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="share of closed deals with a date after the close that flags it",
    )
    late_name_words: list[str] = Field(
        default_factory=lambda: list(LATE_NAME_WORDS),
        description="words in a column name that mean a state at export time",
    )
    cv_splits: int = Field(5, ge=2, description="folds of repeated stratified CV")
    cv_repeats: int = Field(3, ge=1, description="repeats of stratified CV")


# --- the stages ---------------------------------------------------------------------


class SyntheticConfig(_Section):
    """Size and shape of the built-in synthetic CRM (`lead-ml generate` only)."""

    n_deals: int = Field(40_000, ge=100, description="deals to generate")
    n_accounts: int = Field(8_000, ge=10, description="accounts the deals belong to")
    start: date = Field(date(2023, 1, 1), description="first created_at")
    months: int = Field(36, ge=3, description="months of history up to the export")
    activities_per_deal: float = Field(
        28.0, gt=0, description="mean activity-log rows per deal (roughly)"
    )
    format: Literal["parquet", "csv"] = Field(
        "parquet", description="file format of the generated tables"
    )


class ActivityFeatures(_Section):
    """What the activity log turns into, counted up to each deal's snapshot."""

    types: list[str] | None = Field(
        None,
        description="activity types counted one by one; null: the most common "
        "max_types of the training deals",
    )
    max_types: int = Field(20, ge=1, description="types counted when types is null")
    half_life_days: float = Field(
        7.0, gt=0, description="half-life of the recency weight on activities"
    )
    intent_types: list[str] = Field(
        default_factory=list,
        description="types that signal buying intent (pricing, demo, trial...): "
        "their recency-weighted count is a feature of its own",
    )
    dimension: str = Field(
        "engagement", description="what the activity features explain"
    )

    @field_validator("dimension")
    @classmethod
    def _a_dimension(cls, dimension: str) -> str:
        if dimension not in OUTPUT_DIMENSIONS:
            raise ValueError(f"use one of {', '.join(OUTPUT_DIMENSIONS)}")
        return dimension


class FeaturizeConfig(_Section):
    """Point-in-time feature settings."""

    snapshot_days: int = Field(
        14,
        ge=0,
        description="features use only what was known this many days after created",
    )
    activities: ActivityFeatures = ActivityFeatures()


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
    """The BANT rule: each letter is a condition on the source's columns (pandas
    query syntax); leave out letters the export has no data for.

    A lead passes a letter when its condition is true; the rule qualifies a lead when
    the weighted count of passed letters reaches ``threshold``. Weights default to 1.
    """

    letters: dict[str, str] = Field(min_length=1)
    weights: dict[str, float] = Field(default_factory=dict)
    threshold: float = Field(gt=0)

    @field_validator("letters")
    @classmethod
    def _letters_parse(cls, letters: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(letters) - set(BANT_LETTERS))
        if unknown:
            raise ValueError(
                f"unknown letters {unknown}; use some of {list(BANT_LETTERS)}"
            )
        for letter, condition in letters.items():
            letter_columns(letter, condition)  # raises naming the letter
        return letters

    @model_validator(mode="before")
    @classmethod
    def _default_weights(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("letters"), dict):
            given = data.get("weights") or {}
            if isinstance(given, dict):
                weights = dict.fromkeys(data["letters"], 1.0)
                data = {**data, "weights": weights | given}
        return data

    @model_validator(mode="after")
    def _weights_fit(self) -> BantConfig:
        extra = sorted(set(self.weights) - set(self.letters))
        if extra:
            raise ValueError(f"weights given for letters without a condition: {extra}")
        weights = self.weights
        if any(weight < 0 for weight in weights.values()):
            raise ValueError("weights must be 0 or more")
        total = sum(weights.values())
        # Weights are floats: 0.3 + 0.6 is 0.8999999999999999, and must allow 0.9.
        if self.threshold > total and not math.isclose(self.threshold, total):
            raise ValueError(
                f"threshold {self.threshold:g} is above the sum of the weights "
                f"({sum(weights.values()):g}): no lead could pass"
            )
        return self

    def columns(self) -> list[str]:
        """Every column the rule reads."""
        read = {c for t in self.letters.items() for c in letter_columns(*t)}
        return sorted(read)


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
    """All of params.yaml: ``source`` and ``bant`` are required, the rest default."""

    seed: int = 42
    source: SourceConfig
    bant: BantConfig
    synthetic: SyntheticConfig = SyntheticConfig()
    audit: AuditConfig = AuditConfig()
    featurize: FeaturizeConfig = FeaturizeConfig()
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    bands: BandsConfig = BandsConfig()
    tracking: TrackingConfig = TrackingConfig()
    compare: CompareConfig = CompareConfig()
    promotion: PromotionConfig = PromotionConfig()

    @model_validator(mode="after")
    def _rule_reads_no_outcome(self) -> Params:
        late = {*self.source.forbidden, self.source.outcome.column}
        if self.source.tables.deals.closed:
            late.add(self.source.tables.deals.closed)
        for letter, condition in self.bant.letters.items():
            for column in letter_columns(letter, condition):
                if column in late:
                    raise ValueError(
                        f"bant.letters.{letter}: {condition!r} reads {column!r}, "
                        "which is known only after the outcome; a rule on it leaks"
                    )
                if (
                    column in META_COLUMNS
                    and column not in self.source.roles().values()
                ):
                    raise ValueError(
                        f"bant.letters.{letter}: {column!r} is a name lead-ml uses for "
                        "its own columns; the rule reads the source's columns"
                    )
        return self


def _explain(error: ValidationError, source: str) -> str:
    lines = [f"{source}: {error.error_count()} bad setting(s)"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        got = item.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {key}: {message}{shown}")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a params mapping; raise ConfigError naming every bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_explain(error, source)) from None


def read_params_file(path: Path | str) -> dict[str, Any]:
    """The raw mapping of a params file; ConfigError when it is not YAML or absent."""
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
    return raw


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate a params.yaml file."""
    return parse_params(read_params_file(path), str(path))
