"""The feature rules on small frames built here (no project): the registry's views and
its JSON, names, directions, the activity types and features planned, the created
date's parts, each kind's encoding, the activity log up to the snapshot, and the
frame build_features returns. Every expected value is written out in the test, not
read back from the code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lead_ml import features as module
from lead_ml.config import FeaturizeConfig, SourceConfig
from lead_ml.features import (
    CATEGORY_DTYPE,
    FeatureRegistry,
    FeatureSpec,
    activity_features,
    build_features,
    date_part_values,
    date_parts,
    encode,
    plan_features,
    slug,
    snapshot_times,
    text_codes,
    unique_names,
)
from lead_ml.vocab import TIME_DTYPE


def _source(**fields: object) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "tables": {"deals": {"path": "deals.csv", "id": "Id"}},
            "outcome": {"column": "Stage", "won": ["Won"], "lost": ["Lost"]},
            **fields,
        }
    )


def _log(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    deal, stamp, kind = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "deal_id": pd.Series(deal, dtype="string"),
            "timestamp": pd.Series(
                pd.to_datetime(list(stamp), format="ISO8601"), dtype=TIME_DTYPE
            ),
            "activity_type": pd.Series(kind, dtype="string"),
        }
    )


def _featurize(**activities: object) -> FeaturizeConfig:
    return FeaturizeConfig.model_validate({"activities": activities})


# --- the registry -------------------------------------------------------------------


SPECS = (
    FeatureSpec("seats", "Seats", "number", "fit", -1, label="licensed seats"),
    FeatureSpec("region", "Region", "category", "fit"),
    FeatureSpec("champion", "Champion?", "evidence", "champion", 1),
    FeatureSpec("tier", "Tier", "category", "other"),
    FeatureSpec(
        "n_call", "", "activity", "engagement", 0, "call activities", "count", "call"
    ),
)


def test_the_registry_views_name_its_features_in_model_order() -> None:
    registry = FeatureRegistry(SPECS)
    assert registry.names == ["seats", "region", "champion", "tier", "n_call"]
    assert registry.categorical == ["region", "tier"]
    assert registry.dimensions() == {
        "seats": "fit",
        "region": "fit",
        "champion": "champion",
        "tier": "other",
        "n_call": "engagement",
    }
    # the source columns the features read, activity features (no column) left out
    assert registry.column_kinds() == {
        "Seats": "number",
        "Region": "category",
        "Champion?": "evidence",
        "Tier": "category",
    }
    assert registry.spec("champion") is SPECS[2]
    with pytest.raises(KeyError, match="nowhere"):
        registry.spec("nowhere")


def test_category_split_settings_only_with_category_features() -> None:
    with_categories = FeatureRegistry(SPECS).lightgbm_params()
    assert with_categories == {
        "cat_smooth": 50.0,
        "min_data_per_group": 50,
        "max_cat_threshold": 16,
    }
    with_categories["cat_smooth"] = 0.0  # a copy: the settings stay as they are
    assert FeatureRegistry(SPECS).lightgbm_params()["cat_smooth"] == 50.0
    assert FeatureRegistry(SPECS[:1]).lightgbm_params() == {}


def test_an_activity_feature_with_a_column_is_still_not_a_column_kind() -> None:
    odd = FeatureSpec("visits", "Visits", "activity", "engagement")
    assert FeatureRegistry((odd, SPECS[0])).column_kinds() == {"Seats": "number"}


def test_a_feature_is_worded_by_its_label_else_its_column_else_its_name() -> None:
    assert SPECS[0].words == "licensed seats"
    assert SPECS[1].words == "Region"
    assert FeatureSpec("n_activities", "", "activity", "engagement").words == (
        "n_activities"
    )


def test_the_registry_round_trips_through_plain_json() -> None:
    registry = FeatureRegistry(
        SPECS[:1],
        snapshot_days=3,
        half_life_days=2.5,
        activity_types=("call", "email"),
        intent_types=("demo",),
        uses_activities=True,
        notes=("a note",),
    )
    raw = registry.as_dict()
    assert raw == {
        "specs": (
            {
                "name": "seats",
                "column": "Seats",
                "kind": "number",
                "dimension": "fit",
                "monotone": -1,
                "label": "licensed seats",
                "activity": "",
                "activity_type": "",
                "detail_of": "",
                "date_part": "",
            },
        ),
        "snapshot_days": 3,
        "half_life_days": 2.5,
        "activity_types": ("call", "email"),
        "intent_types": ("demo",),
        "uses_activities": True,
        "notes": ("a note",),
    }
    # as JSON gives it back: lists, not tuples
    listed = raw | {
        "specs": list(raw["specs"]),
        "activity_types": ["call", "email"],
        "intent_types": ["demo"],
        "notes": ["a note"],
    }
    assert FeatureRegistry.from_dict(listed) == registry
    # an older registry.json without the optional lists
    older = {"specs": raw["specs"], "snapshot_days": 3}
    assert FeatureRegistry.from_dict(older) == FeatureRegistry(
        SPECS[:1], snapshot_days=3
    )


# --- names --------------------------------------------------------------------------


def test_slugs_trim_separators_and_lower_case() -> None:
    assert slug("__Deal  Size (EUR)--") == "deal_size_eur"
    assert slug("") == "column"
    assert slug("X-Ray X") == "x_ray_x"  # only separators are trimmed


def test_unique_names_number_each_further_copy() -> None:
    assert unique_names(["a", "A", "a "]) == ["a", "a_2", "a_3"]
    # by default the feature table's own columns are taken
    assert unique_names(["split", "won"]) == ["split_2", "won_2"]
    assert unique_names(["split"], taken=()) == ["split"]
    assert unique_names(["x"], taken=["x", "x_2"]) == ["x_3"]


# --- planning -----------------------------------------------------------------------


def test_plan_features_gives_each_kind_its_default_direction() -> None:
    columns = ["Champion?", "Seats", "Trial", "Signed", "Region"]
    kinds = {
        "Champion?": "evidence",
        "Seats": "number",
        "Trial": "bool",
        "Signed": "date",
        "Region": "category",
    }
    source = _source(dimensions={"Champion?": "champion", "Trial": "engagement"})
    registry = plan_features(columns, kinds, source, FeaturizeConfig(), None)
    planned = [
        (s.name, s.column, s.kind, s.dimension, s.monotone) for s in registry.specs
    ]
    assert planned == [
        ("champion", "Champion?", "evidence", "champion", 1),
        ("seats", "Seats", "number", "other", 0),
        ("trial", "Trial", "bool", "engagement", 0),
        ("signed", "Signed", "date", "other", 0),
        ("region", "Region", "category", "other", 0),
    ]
    assert all(s.detail_of == "" and s.label == "" for s in registry.specs)
    declared = _source(directions={"Seats": 1, "Champion?": -1})
    again = plan_features(columns, kinds, declared, FeaturizeConfig())
    assert [s.monotone for s in again.specs] == [-1, 1, 0, 0, 0]
    assert again.activity_types == () and again.intent_types == ()
    assert again.notes == () and not again.uses_activities


def test_a_detail_names_the_feature_of_the_column_it_details() -> None:
    source = _source(details={"Strength": "Champion", "Loose": "Absent"})
    kinds = {"Champion": "evidence", "Strength": "number", "Loose": "number"}
    registry = plan_features(
        ["Champion", "Strength", "Loose"], kinds, source, FeaturizeConfig()
    )
    assert [s.detail_of for s in registry.specs] == ["", "champion", ""]


LOG = _log(
    [
        ("a", "2024-01-02", "call"),
        ("a", "2024-01-02", "call"),
        ("a", "2024-01-03", "call"),
        ("a", "2024-01-03", "visit"),
        ("a", "2024-01-04", "visit"),
        ("b", "2024-01-04", "email"),
        ("b", "2024-01-05", "email"),
        ("a", "2024-01-05", "zoom"),
        ("c", "2024-01-02", "zoom"),
        ("c", "2024-01-02", "zoom"),
        ("c", "2024-01-02", "zoom"),
        ("c", "2024-01-02", "zoom"),
    ]
)


@pytest.mark.parametrize(
    ("max_types", "train", "types"),
    [
        # among a and b: call 3, email 2, visit 2, zoom 1; the tie goes by name
        (2, ["a", "b"], ["call", "email"]),
        (3, ["a", "b"], ["call", "email", "visit"]),
        (1, ["b"], ["email"]),
        # without training ids the whole log counts: zoom 5 leads
        (1, None, ["zoom"]),
        # listed by name, not by count
        (2, ["a", "c"], ["call", "zoom"]),
    ],
)
def test_activity_types_are_the_commonest_among_the_training_deals(
    max_types: int, train: list[str] | None, types: list[str]
) -> None:
    ids = None if train is None else pd.Series(train, dtype="string")
    cfg = _featurize(max_types=max_types)
    registry = plan_features([], {}, _source(), cfg, LOG, train_ids=ids)
    assert list(registry.activity_types) == types
    counted = [s.activity_type for s in registry.specs if s.activity == "count"]
    assert counted == types


def test_the_activity_features_planned_with_their_words() -> None:
    cfg = _featurize(
        types=["Call", "call", "demo"],
        intent_types=["demo"],
        dimension="metrics",
        half_life_days=3.5,
    )
    cfg = cfg.model_copy(update={"snapshot_days": 30})
    # a source column already named like an activity feature keeps its name
    registry = plan_features(
        ["n_activities"], {"n_activities": "number"}, _source(), cfg, LOG
    )
    activity = [s for s in registry.specs if s.kind == "activity"]
    assert [(s.name, s.label, s.activity, s.activity_type) for s in activity] == [
        ("n_call", "Call activities", "count", "Call"),
        ("n_call_2", "call activities", "count", "call"),
        ("n_demo", "demo activities", "count", "demo"),
        ("n_activities_2", "activities", "total", ""),
        ("engagement_recent", "recency-weighted activity", "recent", ""),
        ("intent_recent", "recency-weighted buying intent", "intent", ""),
        ("days_since_last_touch", "days since the last activity", "last_touch", ""),
    ]
    assert {(s.column, s.dimension, s.monotone) for s in activity} == {
        ("", "metrics", 0)
    }
    assert registry.names[0] == "n_activities"
    assert registry.activity_types == ("Call", "call", "demo")
    assert registry.intent_types == ("demo",)
    assert (registry.snapshot_days, registry.half_life_days) == (30, 3.5)
    assert registry.uses_activities and registry.notes == ()


def test_without_intent_types_there_is_no_intent_feature() -> None:
    registry = plan_features([], {}, _source(), _featurize(types=["call"]), LOG)
    assert registry.names == [
        "n_call",
        "n_activities",
        "engagement_recent",
        "days_since_last_touch",
    ]


def test_without_created_dates_the_log_is_left_out_with_a_note() -> None:
    cfg = _featurize(types=["call"], intent_types=["call"])
    registry = plan_features([], {}, _source(), cfg, LOG, has_created=False)
    assert registry.specs == ()
    assert registry.uses_activities is False  # written to registry.json as false
    assert registry.activity_types == () and registry.intent_types == ()
    assert registry.notes == (
        "the activity log is not used: without created dates activities cannot "
        "be placed before each deal's snapshot",
    )


# --- the created date ---------------------------------------------------------------


def _days(start: str, n: int, hour: int = 0) -> pd.Series:
    return pd.Series(pd.date_range(start, periods=n, freq="D")) + pd.Timedelta(
        hours=hour
    )


def test_the_parts_of_the_created_date_worth_a_feature() -> None:
    year = _days("2023-01-01", 365)
    assert date_parts(year) == ["day_of_week", "month"]
    assert date_parts(year.iloc[:334]) == ["day_of_week"]  # 11 months, no December
    assert date_parts(_days("2023-01-01", 5, hour=9)) == ["day_of_week", "hour"]
    one = year.copy()
    one.iloc[100] += pd.Timedelta(minutes=1)  # one time of day is enough
    assert date_parts(one) == ["day_of_week", "month", "hour"]
    # in DATE_PARTS' order whatever the wanted order; only the wanted ones
    assert date_parts(one, ["hour", "day_of_week"]) == ["day_of_week", "hour"]
    assert date_parts(one, []) == []
    assert date_parts(None) == []
    never = pd.Series(pd.NaT, index=range(3), dtype="datetime64[ns]")
    assert date_parts(never) == []
    # missing dates among them are not times of day
    gaps = pd.concat([_days("2023-01-01", 3), never], ignore_index=True)
    assert date_parts(gaps) == ["day_of_week"]


WEEKDAY = "day of the week created (1 Monday)"


def test_date_part_features_are_numbers_explained_as_other() -> None:
    created = _days("2023-01-01", 365, hour=8)
    registry = plan_features(
        ["created_month"],
        {"created_month": "number"},
        _source(),
        FeaturizeConfig(),
        train_created=created,
    )
    parts = [s for s in registry.specs if s.date_part]
    assert [
        (s.name, s.column, s.kind, s.dimension, s.monotone, s.label, s.date_part)
        for s in parts
    ] == [
        ("created_day_of_week", "", "number", "other", 0, WEEKDAY, "day_of_week"),
        ("created_month_2", "", "number", "other", 0, "month created", "month"),
        ("created_hour", "", "number", "other", 0, "hour created", "hour"),
    ]


def test_date_part_values_count_monday_as_one() -> None:
    # 2024-01-01 was a Monday; 2024-01-07 a Sunday
    stamps = np.array(
        ["2024-01-01T13:45", "2024-01-07T00:00", "2024-12-31T23:59", "NaT"],
        dtype=TIME_DTYPE,
    )
    np.testing.assert_array_equal(
        date_part_values(stamps, "day_of_week"), [1.0, 7.0, 2.0, np.nan]
    )
    np.testing.assert_array_equal(
        date_part_values(stamps, "month"), [1.0, 1.0, 12.0, np.nan]
    )
    hours = date_part_values(stamps, "hour")
    np.testing.assert_array_equal(hours, [13.0, 0.0, 23.0, np.nan])
    # floats even when every deal has a date (pandas' own parts are int32 then)
    for part in ("day_of_week", "month", "hour"):
        assert date_part_values(stamps[:3], part).dtype == np.float64


# --- encoding -----------------------------------------------------------------------


def test_text_codes_read_any_text_storage_on_either_side() -> None:
    python = pd.Series(["b", None, "a", "B"], dtype=object)
    arrow = pd.Series(["b", None, "a", "B"], dtype=CATEGORY_DTYPE)
    levels = pd.Series(["a", "b"], dtype=CATEGORY_DTYPE)
    for text in (python, arrow):
        for given in (["a", "b"], levels, pd.Series(["a", "b"], dtype=object)):
            codes = text_codes(text, given)
            assert codes.tolist() == [1, -1, 0, -1]
            assert codes.dtype == np.int64
            assert text_codes(text, given, fold=True).tolist() == [1, -1, 0, 1]
    # the levels are folded too
    spaced = pd.Series([" A ", "B"], dtype=CATEGORY_DTYPE)
    assert text_codes(arrow, spaced, fold=True).tolist() == [1, -1, 0, 1]
    assert text_codes(arrow, spaced).tolist() == [-1, -1, -1, 1]
    assert text_codes(arrow, pd.Series([1, 2])).tolist() == [
        -1,
        -1,
        -1,
        -1,
    ]  # levels as text


CREATED = np.array(["2024-01-01T00:00"] * 4, dtype=TIME_DTYPE)


def test_evidence_from_any_text_is_no_unknown_or_yes() -> None:
    for values in (
        pd.Series([" YES", "no ", "maybe", None], dtype=object),
        pd.Series([" YES", "no ", "maybe", None], dtype="string"),
        pd.Series([" YES", "no ", "maybe", None], dtype=CATEGORY_DTYPE),
    ):
        encoded = encode(values, "evidence", CREATED)
        np.testing.assert_array_equal(encoded, [2.0, 0.0, 1.0, 1.0])


def test_categories_keep_their_text_in_arrow_storage() -> None:
    for values in (
        pd.Series(["EMEA", None, 7, " apac"], dtype=object),
        pd.Series(["EMEA", None, "7", " apac"], dtype="string"),
    ):
        encoded = encode(values, "category", CREATED)
        assert encoded.dtype == CATEGORY_DTYPE
        assert encoded[0] == "EMEA" and encoded[2] == "7" and encoded[3] == " apac"
        assert pd.isna(encoded[1])


def test_dates_are_fractional_days_after_the_created_date() -> None:
    values = pd.Series(
        pd.to_datetime(
            ["2024-01-01 12:00", "2023-12-30", "NaT", "2024-01-02"], format="ISO8601"
        )
    )
    created = np.array(
        ["2024-01-01T00:00", "2024-01-01T00:00", "2024-01-01", "NaT"],
        dtype=TIME_DTYPE,
    )
    np.testing.assert_array_equal(
        encode(values, "date", created), [0.5, -2.0, np.nan, np.nan]
    )


def test_flags_and_numbers_keep_missing_as_missing() -> None:
    flags = pd.Series([True, None, False, True], dtype=object)
    np.testing.assert_array_equal(
        encode(flags, "bool", CREATED), [1.0, np.nan, 0.0, 1.0]
    )
    numbers = pd.Series([3, None, 0, -2], dtype="Int64")
    encoded = encode(numbers, "number", CREATED)
    np.testing.assert_array_equal(encoded, [3.0, np.nan, 0.0, -2.0])
    assert encoded.dtype == np.float64
    # whole numbers without a gap are floats too (a nullable int column gives int64)
    whole = encode(pd.Series([3, 1, 0, -2], dtype="Int64"), "number", CREATED)
    assert whole.dtype == np.float64 and whole.tolist() == [3.0, 1.0, 0.0, -2.0]


# --- the activity log ---------------------------------------------------------------


def _registry(
    types: list[str], intent: list[str], half_life: float = 7.0
) -> FeatureRegistry:
    cfg = _featurize(types=types, intent_types=intent, half_life_days=half_life)
    return plan_features([], {}, _source(), cfg, LOG)


def _snapshots(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps)), dtype=TIME_DTYPE)


def test_activity_features_by_hand() -> None:
    registry = _registry(["call", "email"], ["demo"], half_life=2.0)
    log = _log(
        [
            ("b", "2024-01-10", "call"),  # at b's snapshot: age 0, weight 1
            ("a", "2024-01-06", "demo"),  # age 4 at a's: weight 1/4, intent
            ("a", "2024-01-08", "call"),  # age 2: weight 1/2
            ("a", "2024-01-10T00:00:00.001", "call"),  # a millisecond too late
            ("z", "2024-01-01", "call"),  # a deal not here
            ("c", "2024-01-01", "email"),  # c has no snapshot
            ("b", "2024-01-09T12:00", "email"),  # age 0.5
        ]
    )
    ids = pd.Series(["a", "b", "c"], index=[10, 20, 30])
    snapshots = _snapshots("2024-01-10", "2024-01-10", "NaT")
    snapshots.index = ids.index
    got = activity_features(registry, ids, snapshots, log)
    assert got.index.tolist() == [10, 20, 30]
    assert list(got.columns) == registry.names
    half = 0.5**0.25  # an age of half a day at a half-life of two
    expected = pd.DataFrame(
        {
            "n_call": [1.0, 1.0, 0.0],
            "n_email": [0.0, 1.0, 0.0],
            "n_activities": [2.0, 2.0, 0.0],
            "engagement_recent": [0.25 + 0.5, 1.0 + half, 0.0],
            "intent_recent": [0.25, 0.0, 0.0],
            "days_since_last_touch": [2.0, 0.0, np.nan],
        },
        index=[10, 20, 30],
    )
    pd.testing.assert_frame_equal(got, expected, rtol=1e-15)


def test_activity_blocks_meet_without_changing_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = _registry(["call"], ["call"])
    log = _log([("a", f"2024-01-0{d}", "call") for d in range(1, 8)])
    ids = pd.Series(["a"])
    snapshots = _snapshots("2024-01-08")
    whole = activity_features(registry, ids, snapshots, log)
    monkeypatch.setattr(module, "ACTIVITY_BLOCK", 3)
    blocked = activity_features(registry, ids, snapshots, log)
    assert blocked["n_call"].tolist() == [7.0]
    weights = sum(0.5 ** (age / 7) for age in range(1, 8))
    assert blocked["engagement_recent"].iloc[0] == pytest.approx(weights, rel=1e-15)
    assert blocked["days_since_last_touch"].tolist() == [1.0]
    pd.testing.assert_frame_equal(blocked, whole, check_exact=True)


def test_times_in_any_unit_count_the_same_activities() -> None:
    """Snapshots and activity times in nanoseconds (pandas' default unit), not the
    milliseconds the pipeline stores."""
    registry = _registry(["call"], [])
    log = _log([("a", "2024-01-03", "call"), ("a", "2024-01-09", "call")])
    ids = pd.Series(["a"])
    nanoseconds = pd.Series(pd.to_datetime(["2024-01-08"]), dtype="datetime64[ns]")
    for times in (log, log.astype({"timestamp": "datetime64[ns]"})):
        for snapshots in (nanoseconds, _snapshots("2024-01-08")):
            got = activity_features(registry, ids, snapshots, times)
            assert got["n_call"].tolist() == [1.0]
            assert got["days_since_last_touch"].tolist() == [5.0]


def test_duplicate_deal_ids_are_refused_with_what_to_do() -> None:
    registry = _registry(["call"], [])
    with pytest.raises(ValueError) as error:
        activity_features(
            registry, pd.Series(["a", "a"]), _snapshots("NaT", "NaT"), LOG
        )
    assert str(error.value) == (
        "deal ids must be unique before featurizing: validate first"
    )


def test_no_log_gives_zero_counts_and_no_last_touch() -> None:
    registry = _registry(["call"], ["call"])
    ids = pd.Series(["a", "b"])
    snapshots = _snapshots("2024-01-08", "2024-01-09")
    for log in (None, LOG.iloc[:0]):
        got = activity_features(registry, ids, snapshots, log)
        assert got[["n_call", "n_activities", "engagement_recent"]].sum().sum() == 0
        assert got["intent_recent"].tolist() == [0.0, 0.0]
        assert got["days_since_last_touch"].isna().all()
    none = activity_features(registry, ids.iloc[:0], snapshots.iloc[:0], LOG)
    assert none.empty and list(none.columns) == registry.names


def test_without_activity_features_the_log_is_not_read() -> None:
    registry = FeatureRegistry(SPECS[:1])
    ids = pd.Series(["a", "a"], index=[4, 5])  # not even checked for duplicates
    got = activity_features(registry, ids, _snapshots("NaT", "NaT"), LOG)
    assert got.shape == (2, 0) and got.index.tolist() == [4, 5]


def test_snapshots_are_days_after_created_in_milliseconds() -> None:
    created = pd.Series(pd.to_datetime(["2024-01-31 10:00", "NaT"]))
    got = snapshot_times(created, 30)
    assert got.dtype == TIME_DTYPE
    assert got.iloc[0] == pd.Timestamp("2024-03-01 10:00")
    assert pd.isna(got.iloc[1])
    assert snapshot_times(created, 0).iloc[0] == pd.Timestamp("2024-01-31 10:00")


def test_build_features_puts_meta_first_then_the_features_in_model_order() -> None:
    registry = plan_features(
        ["Seats", "Champion"],
        {"Seats": "number", "Champion": "evidence"},
        _source(),
        _featurize(types=["call"]).model_copy(update={"snapshot_days": 2}),
        LOG,
        train_created=_days("2024-01-01", 3, hour=9),
    )
    columns = pd.DataFrame(
        {
            "Champion": pd.array(["no", "yes"], dtype="string"),
            "Seats": [5.0, None],
            "Unread": ["x", "y"],
        },
        index=[8, 2],
    )
    created = pd.Series(pd.to_datetime(["2024-01-01 09:00", "NaT"]), index=[0, 1])
    ids = pd.Series([1, 2], index=[0, 1])  # ids read as text, by position
    log = _log([("1", "2024-01-02", "call"), ("2", "2024-01-02", "call")])
    built = build_features(registry, columns, ids, created, log)
    assert list(built.columns) == [
        "deal_id",
        "created_at",
        "snapshot_at",
        "seats",
        "champion",
        "created_day_of_week",
        "created_hour",
        "n_call",
        "n_activities",
        "engagement_recent",
        "days_since_last_touch",
    ]
    assert built.index.tolist() == [8, 2]
    assert built["deal_id"].tolist() == ["1", "2"]
    assert built["deal_id"].dtype == "string"
    assert built["created_at"].dtype == TIME_DTYPE
    assert built["snapshot_at"].iloc[0] == pd.Timestamp("2024-01-03 09:00")
    assert pd.isna(built["snapshot_at"].iloc[1])
    np.testing.assert_array_equal(built["seats"], [5.0, np.nan])
    np.testing.assert_array_equal(built["champion"], [0.0, 2.0])
    np.testing.assert_array_equal(built["created_day_of_week"], [1.0, np.nan])
    np.testing.assert_array_equal(built["created_hour"], [9.0, np.nan])
    # deal 2 has no created date, so no snapshot: its call is not counted
    np.testing.assert_array_equal(built["n_call"], [1.0, 0.0])
    np.testing.assert_array_equal(built["days_since_last_touch"], [1.375, np.nan])
