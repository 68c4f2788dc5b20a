"""Point-in-time features from a source's columns and activity log, one row per deal.

:class:`FeatureRegistry` is the single source of truth for the model's columns:
every feature, the source column it comes from, its kind, the dimension it explains
(the source's dimension map; ``other`` when unmapped), its monotone direction, and
the words reasons use. It is planned once from the audited deals
(:func:`plan_features`) and travels with the model into the scorer, so training
and scoring build the same features (:func:`build_features`).

How each kind becomes a feature:

- numbers stay numbers (missing stays missing, never 0);
- dates become days after the deal's created date;
- yes/no flags (``bool``) become 1 / 0, missing stays missing;
- ``evidence`` (a rep's yes / no answer) becomes no 0, unknown 1, yes 2, so that
  "more evidence never lowers the score" is a monotone constraint while unknown
  (blank, null or a declared placeholder) stays a state of its own;
- categories keep their text; levels are matched without regard to case or
  surrounding spaces, and levels unseen in training are scored as unseen;
- the created date gives its parts (``featurize.date_parts``): the day of the
  week (1 Monday to 7 Sunday), the month (only when the training deals span every
  month of the year, so no month is first met in scoring) and the hour (only when
  created dates carry a time of day); explained as ``other``;
- the activity log, counted up to the deal's snapshot (created +
  ``featurize.snapshot_days``): a count per activity type, the total, a
  recency-weighted total (half-life ``featurize.activities.half_life_days``), a
  recency-weighted count of the buying-intent types, and the days since the last
  touch. Activities after the snapshot cannot reach any feature.

>>> registry = FeatureRegistry(
...     specs=(FeatureSpec("champion", "Champion", "evidence", "champion", 1),),
...     snapshot_days=14)
>>> columns = pd.DataFrame({"Champion": pd.array(["yes", None, "no"], "string")})
>>> ids = pd.Series(["a", "b", "c"])
>>> created = pd.Series(pd.to_datetime(["2024-01-01"] * 3))
>>> build_features(registry, columns, ids, created)["champion"].tolist()
[2.0, 1.0, 0.0]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lead_ml.config import FeaturizeConfig, SourceConfig
from lead_ml.jit import jit, power
from lead_ml.vocab import (
    EVIDENCE_CODES,
    FEATURE_META,
    OTHER,
    TIME_DTYPE,
    FeatureKind,
    Kind,
)

#: Categories are pandas' default text (Arrow storage, NaN for missing).
CATEGORY_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)
#: What each activity feature is, as its ``activity`` field says.
COUNT, TOTAL, RECENT, INTENT, LAST_TOUCH = (
    "count",
    "total",
    "recent",
    "intent",
    "last_touch",
)
#: How LightGBM splits a category feature: each level's win rate shrunk towards
#: the overall one by 50 pseudo-deals (``cat_smooth``, LightGBM's default 10), a
#: level needing 50 deals to get a side of its own (``min_data_per_group``, 100) and
#: at most 16 levels tried per split (``max_cat_threshold``, 32). Measured on X
#: Education's Specialization x City x Country (406 levels, test window by Lead
#: Number): test AUC +0.007 [+0.003, +0.012] over LightGBM's defaults, which do
#: worse than leaving the column out (-0.005); out-of-fold target statistics in
#: its place do worse than these settings (-0.002 [-0.005, +0.001]; at 1,000
#: training deals -0.009 [-0.014, -0.005]). bench/high_cardinality.py measures it.
CATEGORY_SPLITS: dict[str, float | int] = {
    "cat_smooth": 50.0,
    "min_data_per_group": 50,
    "max_cat_threshold": 16,
}
#: Parts of the created date: feature name and the words reasons use.
DATE_PARTS: dict[str, tuple[str, str]] = {
    "day_of_week": ("created_day_of_week", "day of the week created (1 Monday)"),
    "month": ("created_month", "month created"),
    "hour": ("created_hour", "hour created"),
}


@dataclass(frozen=True)
class FeatureSpec:
    """One model feature: where it comes from, how it is encoded, what it explains.

    ``column`` is the source column (empty for activity features and date parts);
    ``detail_of`` the feature it details (see ``source.details``); ``activity``
    says which activity aggregate a feature is, and ``activity_type`` the type it
    counts; ``date_part`` which part of the created date it is (a ``number``).
    """

    name: str
    column: str
    kind: FeatureKind
    dimension: str
    monotone: int = 0
    label: str = ""
    activity: str = ""
    activity_type: str = ""
    detail_of: str = ""
    date_part: str = ""

    @property
    def words(self) -> str:
        """What reasons call the feature."""
        return self.label or self.column or self.name


@dataclass(frozen=True)
class FeatureRegistry:
    """Every feature of a model, and the activity settings it was built with."""

    specs: tuple[FeatureSpec, ...]
    snapshot_days: int = 14
    half_life_days: float = 7.0
    activity_types: tuple[str, ...] = ()
    intent_types: tuple[str, ...] = ()
    uses_activities: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        """Feature names in model order."""
        return [spec.name for spec in self.specs]

    @property
    def categorical(self) -> list[str]:
        """Names of the category features."""
        return [spec.name for spec in self.specs if spec.kind == "category"]

    def lightgbm_params(self) -> dict[str, float | int]:
        """LightGBM's settings for the category features (:data:`CATEGORY_SPLITS`;
        none without categories)."""
        return dict(CATEGORY_SPLITS) if self.categorical else {}

    def dimensions(self) -> dict[str, str]:
        """Feature name -> dimension."""
        return {spec.name: spec.dimension for spec in self.specs}

    def column_kinds(self) -> dict[str, Kind]:
        """Source column -> kind, for the columns the features read."""
        return {
            spec.column: spec.kind
            for spec in self.specs
            if spec.column and spec.kind != "activity"
        }

    def spec(self, name: str) -> FeatureSpec:
        """The spec of a feature by name."""
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON (registry.json, the scorer bundle)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FeatureRegistry:
        """The registry :meth:`as_dict` wrote."""
        fields = dict(raw)
        fields["specs"] = tuple(FeatureSpec(**spec) for spec in raw["specs"])
        for key in ("activity_types", "intent_types", "notes"):
            fields[key] = tuple(raw.get(key, ()))
        return cls(**fields)


def slug(column: str) -> str:
    """A feature name LightGBM accepts, from a source column's name.

    >>> slug("Total Time Spent on Website")
    'total_time_spent_on_website'
    """
    name = re.sub(r"[^0-9a-zA-Z]+", "_", column).strip("_").lower()
    return name or "column"


def unique_names(
    columns: Iterable[str], taken: Iterable[str] = FEATURE_META
) -> list[str]:
    """A distinct slug per column, none of them in ``taken``."""
    used = set(taken)
    names = []
    for column in columns:
        base = slug(column)
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        names.append(name)
    return names


def _direction(kind: str, column: str, source: SourceConfig) -> int:
    """The declared direction, else +1 for evidence (a yes never lowers the score)."""
    if column in source.directions:
        return int(source.directions[column])
    return 1 if kind == "evidence" else 0


def _activity_types(
    activities: pd.DataFrame, train_ids: pd.Series, max_types: int
) -> list[str]:
    """The most common activity types among the training deals, by name."""
    # Looked up in Arrow, and only the type column masked: `isin` on a list of
    # Python strings and masking the whole log took 13 s of featurizing 1 million
    # deals with 25 million activities.
    training = text_codes(
        activities["deal_id"].astype("string"),
        pd.Series(train_ids.dropna().unique()).astype("string"),
    )
    counts = activities["activity_type"][training >= 0].value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return sorted(str(t) for t, _ in ranked[:max_types])


def _activity_specs(
    types: Sequence[str], intent: Sequence[str], dimension: str
) -> list[FeatureSpec]:
    counted = unique_names([f"n {t}" for t in types])
    specs = [
        FeatureSpec(n, "", "activity", dimension, 0, f"{t} activities", COUNT, t)
        for n, t in zip(counted, types, strict=True)
    ]
    specs.append(
        FeatureSpec("n_activities", "", "activity", dimension, 0, "activities", TOTAL)
    )
    specs.append(
        FeatureSpec(
            "engagement_recent",
            "",
            "activity",
            dimension,
            0,
            "recency-weighted activity",
            RECENT,
        )
    )
    if intent:
        specs.append(
            FeatureSpec(
                "intent_recent",
                "",
                "activity",
                dimension,
                0,
                "recency-weighted buying intent",
                INTENT,
            )
        )
    specs.append(
        FeatureSpec(
            "days_since_last_touch",
            "",
            "activity",
            dimension,
            0,
            "days since the last activity",
            LAST_TOUCH,
        )
    )
    return specs


def date_parts(
    created: pd.Series | None, wanted: Sequence[str] = tuple(DATE_PARTS)
) -> list[str]:
    """The parts of the created date worth a feature, given the training deals'
    created dates: the day of the week whenever there are dates, the month when
    they span every month, the hour when some carry a time of day.

    >>> days = pd.Series(pd.date_range("2024-01-01", periods=400, freq="D"))
    >>> date_parts(days), date_parts(days.head(30))
    (['day_of_week', 'month'], ['day_of_week'])
    >>> date_parts(days + pd.Timedelta("9h"))
    ['day_of_week', 'month', 'hour']
    """
    if created is None:
        return []
    stamps = pd.Series(created.to_numpy(TIME_DTYPE)).dropna()
    if stamps.empty:
        return []
    found = {"day_of_week"}
    if stamps.dt.month.nunique() == 12:
        found.add("month")
    if (stamps != stamps.dt.normalize()).any():
        found.add("hour")
    return [part for part in DATE_PARTS if part in found and part in wanted]


def _date_part_specs(parts: Sequence[str], taken: Sequence[str]) -> list[FeatureSpec]:
    names = unique_names([DATE_PARTS[p][0] for p in parts], taken)
    return [
        FeatureSpec(name, "", "number", OTHER, 0, DATE_PARTS[part][1], date_part=part)
        for name, part in zip(names, parts, strict=True)
    ]


def date_part_values(created: np.ndarray, part: str) -> np.ndarray:
    """A part of each created date (datetime64[ms]) as a float; NaN without one."""
    stamps = pd.DatetimeIndex(created)
    values = {
        "day_of_week": stamps.day_of_week + 1,
        "month": stamps.month,
        "hour": stamps.hour,
    }[part]
    return np.asarray(values, dtype=float)


def plan_features(
    columns: Sequence[str],
    kinds: Mapping[str, str],
    source: SourceConfig,
    cfg: FeaturizeConfig,
    activities: pd.DataFrame | None = None,
    train_ids: pd.Series | None = None,
    has_created: bool = True,
    train_created: pd.Series | None = None,
) -> FeatureRegistry:
    """The features of the kept source ``columns`` (kinds as typed), the parts of
    the created date the training deals' dates (``train_created``) support (see
    :func:`date_parts`), and of the activity log when there is one and deals have
    created dates to snapshot at. Activity types are taken from
    ``featurize.activities.types``, or else the most common among the training
    deals (``train_ids``)."""
    names = unique_names(columns)
    name_of = dict(zip(columns, names, strict=True))
    specs = [
        FeatureSpec(
            name,
            column,
            kinds[column],  # type: ignore[arg-type]
            source.dimensions.get(column, OTHER),
            _direction(kinds[column], column, source),
            detail_of=name_of.get(source.details.get(column, ""), ""),
        )
        for name, column in zip(names, columns, strict=True)
    ]
    parts = date_parts(train_created if has_created else None, cfg.date_parts)
    specs += _date_part_specs(parts, [*FEATURE_META, *names])
    notes: list[str] = []
    settings = cfg.activities
    types: list[str] = []
    uses = activities is not None
    if uses and not has_created:
        uses = False
        notes.append(
            "the activity log is not used: without created dates activities cannot "
            "be placed before each deal's snapshot"
        )
    if uses:
        assert activities is not None
        if settings.types is not None:
            types = list(settings.types)
        else:
            ids = train_ids if train_ids is not None else activities["deal_id"]
            types = _activity_types(activities, ids, settings.max_types)
        taken = [*FEATURE_META, *(s.name for s in specs)]
        activity = _activity_specs(types, settings.intent_types, settings.dimension)
        renamed = unique_names([s.name for s in activity], taken)
        specs += [
            FeatureSpec(**(asdict(s) | {"name": n}))
            for s, n in zip(activity, renamed, strict=True)
        ]
    return FeatureRegistry(
        specs=tuple(specs),
        snapshot_days=cfg.snapshot_days,
        half_life_days=settings.half_life_days,
        activity_types=tuple(types),
        intent_types=tuple(settings.intent_types) if uses else (),
        uses_activities=uses,
        notes=tuple(notes),
    )


# --- encoding columns -----------------------------------------------------------------


def text_codes(
    text: pd.Series, levels: Sequence[str] | pd.Series, fold: bool = False
) -> np.ndarray:
    """The position of each text value among ``levels`` (distinct); -1 if missing
    or not one of them. ``fold``: compare without regard to case and surrounding
    spaces.

    >>> text_codes(pd.Series(["b", None, "z"], dtype="string"), ["a", "b"]).tolist()
    [1, -1, -1]
    >>> text_codes(pd.Series([" B "], dtype="string"), ["a", "b"], fold=True).tolist()
    [1]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    array = text.array
    if isinstance(array, pd.arrays.ArrowStringArray):
        values = pa.array(array)
    else:
        values = pa.array(text.astype("string").array)
    if isinstance(levels, pd.Series) and isinstance(
        levels.array, pd.arrays.ArrowStringArray
    ):
        value_set = pa.array(levels.array)
    else:
        value_set = pa.array([str(v) for v in levels], pa.string())
    if fold:
        values = pc.utf8_lower(pc.utf8_trim_whitespace(values))
        value_set = pc.utf8_lower(pc.utf8_trim_whitespace(value_set))
    # Arrow looks the strings up where they lie: ~10x pandas on Python objects.
    found = pc.index_in(values, value_set=value_set)
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)


#: EVIDENCE_CODES' no and yes by code, then unknown for anything else.
_EVIDENCE_VALUES = np.array(
    [EVIDENCE_CODES["no"], EVIDENCE_CODES["yes"], EVIDENCE_CODES["unknown"]]
)


def _days_after(values: pd.Series, created: np.ndarray) -> np.ndarray:
    stamps = values.to_numpy(TIME_DTYPE)
    days = (stamps - created).astype("int64") / 86_400_000
    return np.where(np.isnat(stamps) | np.isnat(created), np.nan, days)


def encode(
    values: pd.Series, kind: str, created: np.ndarray
) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """A typed source column as its feature values (index dropped: the caller aligns
    them); ``created`` is each deal's created date (datetime64[ms])."""
    if kind == "category":
        # Arrow-backed text is read where it lies: going through Python objects
        # (and back) cost a third of a batch job's featurizing.
        text = (
            values
            if isinstance(values.dtype, pd.StringDtype)
            else values.astype("string")
        )
        return text.astype(CATEGORY_DTYPE).array
    if kind == "evidence":
        text = (
            values
            if isinstance(values.dtype, pd.StringDtype)
            else values.astype("string")
        )
        return _EVIDENCE_VALUES[text_codes(text, ["no", "yes"], fold=True)]
    if kind == "date":
        return _days_after(values, created)
    if kind == "bool":
        return (
            values.astype("boolean").astype("Float64").to_numpy(float, na_value=np.nan)
        )
    return values.to_numpy(dtype=float, na_value=np.nan)


# --- the activity log -----------------------------------------------------------------


#: NaT as int64 milliseconds: a deal without a snapshot.
_NO_TIME = np.iinfo(np.int64).min


@jit()
def _ages(
    position: np.ndarray, stamp_ms: np.ndarray, snapshot_ms: np.ndarray
) -> np.ndarray:
    """Per activity, its age in days at its deal's snapshot; NaN for an activity of
    no deal here (``position`` -1), of a deal with no snapshot, or after it."""
    age = np.full(position.shape[0], np.nan)
    for i in range(position.shape[0]):
        deal = position[i]
        if (
            deal >= 0
            and snapshot_ms[deal] != _NO_TIME
            and stamp_ms[i] <= snapshot_ms[deal]
        ):
            age[i] = (snapshot_ms[deal] - stamp_ms[i]) / 86_400_000.0
    return age


@jit()
def _engagement(
    position: np.ndarray,
    age: np.ndarray,
    weight: np.ndarray,
    type_code: np.ndarray,
    intent: np.ndarray,
    counts: np.ndarray,
    totals: np.ndarray,
) -> None:
    """Add activities with an age (see :func:`_ages`), in file order, to their
    deals: the count of each counted type, and (``totals`` columns) all activities,
    recency-weighted activity, recency-weighted intent and the age in days of the
    youngest (start it at inf).

    Sums run in file order, as ``np.bincount`` adds, so the values are the same to
    the bit.
    """
    for i in range(position.shape[0]):
        if np.isnan(age[i]):
            continue
        deal, kind = position[i], type_code[i]
        if kind >= 0:
            counts[deal, kind] += 1.0
        if intent[i]:
            totals[deal, 2] += weight[i]
        totals[deal, 0] += 1.0
        totals[deal, 1] += weight[i]
        totals[deal, 3] = min(totals[deal, 3], age[i])


#: Activities aggregated at a time: their temporaries (8 MB each) are reused from
#: block to block, where whole-log arrays (128 MB each at 16 million activities)
#: were fresh memory every time and made featurizing grow faster than the data.
ACTIVITY_BLOCK = 1 << 20


def activity_features(
    registry: FeatureRegistry,
    deal_ids: pd.Series,
    snapshot_at: pd.Series,
    activities: pd.DataFrame | None,
) -> pd.DataFrame:
    """The activity features of the registry, for deals with these ids and
    snapshots (deal_ids unique; index of ``deal_ids`` kept)."""
    specs = [spec for spec in registry.specs if spec.kind == "activity"]
    if not specs:
        return pd.DataFrame(index=deal_ids.index)
    if not pd.Index(deal_ids).is_unique:
        raise ValueError("deal ids must be unique before featurizing: validate first")
    types = list(registry.activity_types)
    counts = np.zeros((len(deal_ids), len(types)))
    totals = np.zeros((len(deal_ids), 4))
    totals[:, 3] = np.inf
    if activities is not None and len(activities) and len(deal_ids):
        snapshot_ms = snapshot_at.to_numpy(TIME_DTYPE).astype("int64")
        ids = deal_ids.astype("string")
        # Looked up as Arrow text where it is: Python string objects for every
        # activity made featurizing grow faster than the data.
        position = text_codes(activities["deal_id"].astype("string"), ids)
        for start in range(0, len(activities), ACTIVITY_BLOCK):
            block = activities.iloc[start : start + ACTIVITY_BLOCK]
            where = position[start : start + ACTIVITY_BLOCK]
            stamp_ms = block["timestamp"].to_numpy(TIME_DTYPE).astype("int64")
            age = _ages(where, stamp_ms, snapshot_ms)
            # The C library's pow (lead_ml.jit): numpy's differs by CPU in the last
            # bit, and so did the features and every DVC hash after them.
            weight = power(0.5, age / registry.half_life_days)
            kind = block["activity_type"].astype("string")
            codes = text_codes(kind, types)
            intent = text_codes(kind, list(registry.intent_types)) >= 0
            _engagement(where, age, weight, codes, intent, counts, totals)
    youngest = totals[:, 3]
    values: dict[str, np.ndarray] = {
        TOTAL: totals[:, 0],
        RECENT: totals[:, 1],
        INTENT: totals[:, 2],
        LAST_TOUCH: np.where(np.isfinite(youngest), youngest, np.nan),
    }
    columns = {}
    for spec in specs:
        if spec.activity == COUNT:
            columns[spec.name] = counts[:, types.index(spec.activity_type)]
        else:
            columns[spec.name] = values[spec.activity]
    return pd.DataFrame(columns, index=deal_ids.index)


def snapshot_times(created_at: pd.Series, snapshot_days: int) -> pd.Series:
    """When each deal's features are taken: created plus snapshot_days (NaT without
    a created date)."""
    created = created_at.astype(TIME_DTYPE)
    return (created + pd.Timedelta(days=snapshot_days)).astype(TIME_DTYPE)


def build_features(
    registry: FeatureRegistry,
    columns: pd.DataFrame,
    deal_ids: pd.Series,
    created_at: pd.Series,
    activities: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per deal (order and index of ``columns`` kept): ``deal_id``,
    ``created_at``, ``snapshot_at``, then the registry's features.

    ``columns`` holds the source columns in their kinds (as :mod:`lead_ml.sources`
    or a scorer's contract reads them); ``activities`` the log as deal_id,
    timestamp, activity_type (None: no activity for any deal).
    """
    index = columns.index
    created = pd.Series(created_at.to_numpy(TIME_DTYPE), index=index)
    snapshot = snapshot_times(created, registry.snapshot_days)
    ids = pd.Series(deal_ids.to_numpy(), index=index, dtype="string")
    anchor = created.to_numpy(TIME_DTYPE)
    values: dict[str, Any] = {}
    for spec in registry.specs:
        if spec.date_part:
            values[spec.name] = date_part_values(anchor, spec.date_part)
        elif spec.kind != "activity":
            values[spec.name] = encode(columns[spec.column], spec.kind, anchor)
    features = pd.DataFrame(values, index=index)
    engagement = activity_features(registry, ids, snapshot, activities)
    meta = pd.DataFrame(
        {"deal_id": ids, "created_at": created, "snapshot_at": snapshot}, index=index
    )
    return pd.concat([meta, features, engagement], axis=1)[
        ["deal_id", "created_at", "snapshot_at", *registry.names]
    ]
