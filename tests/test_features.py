"""Point-in-time features for every source: the registry, the leakage invariant, and
the encodings of each column kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from projects import Project

from lead_ml.config import FeaturizeConfig, SourceConfig
from lead_ml.explain import (
    CONTRIBUTION_COLUMNS,
    dimension_of_features,
    feature_contributions,
)
from lead_ml.features import (
    CATEGORY_SPLITS,
    FeatureRegistry,
    FeatureSpec,
    build_features,
    plan_features,
    slug,
    snapshot_times,
    text_codes,
    unique_names,
)
from lead_ml.jit import power
from lead_ml.scorer import load_scorer
from lead_ml.sources import load_deals, read_tables
from lead_ml.stages import read_registry
from lead_ml.vocab import (
    EVIDENCE_CODES,
    FEATURE_META,
    MEDDIC_DIMENSIONS,
    OTHER,
    OUTPUT_DIMENSIONS,
    TIME_DTYPE,
)

COLUMN_KINDS = {"number", "date", "bool", "evidence", "category"}


def registry_of(project: Project) -> FeatureRegistry:
    return read_registry(project.path("data/features/registry.json"))


def rebuilt(project: Project, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The project's features rebuilt from (possibly changed) source tables, as the
    featurize stage builds them."""
    params = project.params
    deals = load_deals(params.source, params.bant, tables)
    frame = deals.frame
    return build_features(
        registry_of(project),
        frame,
        frame["deal_id"],
        frame["created_at"],
        deals.activities,
    )


# --- the registry ------------------------------------------------------------------


def test_the_registry_is_consistent_with_the_source(project: Project) -> None:
    registry, source = registry_of(project), project.params.source
    deals = project.deals()
    names = registry.names
    assert len(set(names)) == len(names) and not set(names) & set(FEATURE_META)
    assert all(name == slug(name) or name[-1].isdigit() for name in names)
    columns = [spec.column for spec in registry.specs if spec.column]
    assert columns and len(set(columns)) == len(columns)
    assert set(columns) <= set(deals.candidates)
    assert not set(columns) & set(source.forbidden)
    assert not set(columns) & set(source.roles().values())
    for spec in registry.specs:
        assert spec.dimension in OUTPUT_DIMENSIONS, spec
        assert spec.monotone in (-1, 0, 1), spec
        if spec.kind == "activity":
            assert not spec.column and spec.dimension == "engagement", spec
            continue
        if spec.date_part:  # a part of the created date: a number explained as other
            assert (spec.column, spec.kind, spec.dimension) == ("", "number", OTHER)
            assert spec.monotone == 0 and source.tables.deals.created, spec
            continue
        assert spec.kind in COLUMN_KINDS and spec.kind == deals.kinds[spec.column].kind
        assert spec.dimension == source.dimensions.get(spec.column, OTHER), spec
        # A declared direction is kept; evidence is monotone (a yes never lowers it).
        declared = source.directions.get(spec.column)
        expected = 1 if spec.kind == "evidence" else 0
        assert spec.monotone == (expected if declared is None else declared), spec
        parent = source.details.get(spec.column)
        assert spec.detail_of == (
            registry.spec(spec.detail_of).name if parent else ""
        ), spec
        if parent:
            assert registry.spec(spec.detail_of).column == parent
    assert registry.uses_activities == (source.tables.activities is not None)
    assert any(spec.kind == "activity" for spec in registry.specs) == (
        registry.uses_activities
    )


#: The dimension each source column explains, written from the domain (DOMAIN.md's
#: MEDDIC and BANT, and each export's own fields), not read from any code: authority
#: is the economic buyer, need the pain, timeline the decision process; a column
#: not listed is "other". Activity features are engagement.
DOMAIN_DIMENSIONS: dict[str, dict[str, str]] = {
    "synthetic": {
        "industry": "fit",
        "region": "fit",
        "employees": "fit",
        "annual_revenue": "fit",
        "contact_title": "fit",
        "contact_seniority": "fit",
        "bant_budget": "fit",
        "lead_source": "engagement",
        "minutes_to_first_response": "engagement",
        "bant_authority": "economic_buyer",
        "bant_need": "identify_pain",
        "bant_timeline": "decision_process",
        "meddic_metrics": "metrics",
        "meddic_economic_buyer": "economic_buyer",
        "meddic_decision_criteria": "decision_criteria",
        "meddic_decision_process": "decision_process",
        "meddic_pain_type": "identify_pain",
        "meddic_pain_severity": "identify_pain",
        "meddic_champion": "champion",
        "meddic_champion_strength": "champion",
    },
    "x_education": {
        "Lead Origin": "engagement",
        "Lead Source": "engagement",
        "TotalVisits": "engagement",
        "Total Time Spent on Website": "engagement",
        "Page Views Per Visit": "engagement",
        "Do Not Email": "engagement",
        "Do Not Call": "engagement",
        "A free copy of Mastering The Interview": "engagement",
        "How did you hear about X Education": "engagement",
        "What is your current occupation": "fit",
        "Specialization": "fit",
        "Country": "fit",
        "City": "fit",
        "What matters most to you in choosing a course": "identify_pain",
    },
    "maven": {
        "sector": "fit",
        "revenue": "fit",
        "employees": "fit",
        "year_established": "fit",
        "office_location": "fit",
        "subsidiary_of": "fit",
        "product": "decision_criteria",
    },
}


def test_every_feature_explains_the_dimension_the_domain_gives_its_column(
    project: Project,
) -> None:
    """The registry, the scorer's grouping and the contrib_* columns all follow the
    pinned table: a feature mapped to another dimension fails here."""
    table = DOMAIN_DIMENSIONS[project.name]
    registry = registry_of(project)
    scorer = load_scorer(project.path("models/scorer"))
    model = scorer.model
    expected = {
        spec.name: "engagement"
        if spec.kind == "activity"
        else table.get(spec.column, "other")
        for spec in registry.specs
    }
    assert registry.dimensions() == expected
    grouped = dimension_of_features(model)
    assert [OUTPUT_DIMENSIONS[g] for g in grouped] == [
        expected[name] for name in model.info.feature_names
    ]
    mapped = {spec.column for spec in registry.specs if spec.column in table}
    assert mapped, project.name  # the table names columns the features read
    leads = project.leads().head(40)
    activities = project.activities()
    log = None if activities is None else scorer.read_activities(activities)[0]
    scored = scorer.score_chunk(leads, log, explain_reasons=True)
    per_feature = feature_contributions(model, scored.rows)
    for dimension, column in zip(OUTPUT_DIMENSIONS, CONTRIBUTION_COLUMNS, strict=True):
        members = [
            i
            for i, name in enumerate(model.info.feature_names)
            if expected[name] == dimension
        ]
        np.testing.assert_allclose(
            scored.output[column].to_numpy(),
            per_feature[:, members].sum(axis=1),
            rtol=0,
            atol=1e-9,
        )


def test_the_synthetic_registry_holds_the_meddic_evidence(
    synthetic_project: Project,
) -> None:
    registry = registry_of(synthetic_project)
    evidence = [s for s in registry.specs if s.kind == "evidence"]
    assert len(evidence) == 5 and all(s.monotone == 1 for s in evidence)
    assert {s.dimension for s in evidence} <= set(MEDDIC_DIMENSIONS)
    strength = registry.spec("meddic_champion_strength")
    assert (strength.detail_of, strength.monotone) == ("meddic_champion", 1)
    assert registry.spec("minutes_to_first_response").monotone == -1


def test_plan_features_reads_kinds_dimensions_directions_and_details(
    synthetic_project: Project,
) -> None:
    source = synthetic_project.params.source.model_copy(
        update={
            "dimensions": {"Champion?": "champion", "Seats": "fit"},
            "directions": {"Seats": -1, "Champion?": 0},
            "details": {"Strength": "Champion?"},
        }
    )
    columns = ["Champion?", "Strength", "Seats", "split", "Region"]
    kinds = {
        "Champion?": "evidence",
        "Strength": "number",
        "Seats": "number",
        "split": "category",
        "Region": "category",
    }
    registry = plan_features(columns, kinds, source, FeaturizeConfig())
    assert registry.names == ["champion", "strength", "seats", "split_2", "region"]
    by_name = {s.name: s for s in registry.specs}
    assert by_name["champion"].monotone == 0  # a declared 0 overrides the default
    assert by_name["seats"].monotone == -1
    assert by_name["strength"].detail_of == "champion"
    assert by_name["region"].dimension == OTHER
    assert not registry.uses_activities


#: The parts of the created date each source's training deals support: X Education
#: has no dates; Maven's engage dates are days (no hour) over about a year, with
#: the training window short of some months; the synthetic CRM's carry a time.
DATE_PARTS_OF = {
    "synthetic": ["created_day_of_week", "created_month", "created_hour"],
    "x_education": [],
    "maven": ["created_day_of_week"],
}


def test_the_created_date_gives_its_parts(project: Project) -> None:
    registry, features = registry_of(project), project.features()
    parts = [spec.name for spec in registry.specs if spec.date_part]
    assert parts == DATE_PARTS_OF[project.name]
    created = pd.DatetimeIndex(features["created_at"])
    expected = {
        "created_day_of_week": created.day_of_week + 1,
        "created_month": created.month,
        "created_hour": created.hour,
    }
    for name in parts:
        np.testing.assert_array_equal(
            features[name].to_numpy(float), np.asarray(expected[name], dtype=float)
        )


def test_date_parts_are_read_from_the_created_date_missing_stays_missing() -> None:
    created = pd.Series(
        pd.to_datetime(pd.Series(["2024-01-01 09:30", "2024-06-15 00:00", None])),
        dtype=TIME_DTYPE,
    )
    train = pd.Series(pd.date_range("2023-01-01 08:00", periods=365, freq="D"))
    registry = plan_features([], {}, _source(), FeaturizeConfig(), train_created=train)
    assert [s.name for s in registry.specs] == [
        "created_day_of_week",
        "created_month",
        "created_hour",
    ]
    assert registry.column_kinds() == {}  # no source column: the contract is unchanged
    ids = pd.Series(["a", "b", "c"])
    built = build_features(registry, pd.DataFrame(index=ids.index), ids, created)
    np.testing.assert_array_equal(
        built[registry.names].to_numpy(),
        [[1.0, 1.0, 9.0], [6.0, 6.0, 0.0], [np.nan] * 3],
    )
    fewer = FeaturizeConfig(date_parts=["month"])
    assert plan_features([], {}, _source(), fewer, train_created=train).names == [
        "created_month"
    ]
    undated = plan_features(
        [], {}, _source(), FeaturizeConfig(), has_created=False, train_created=train
    )
    assert undated.specs == ()


def test_category_splits_are_smoothed_in_the_trained_model(project: Project) -> None:
    registry = registry_of(project)
    booster = project.path("models/model/booster.txt").read_text()
    assert registry.categorical  # every source has category features
    for key, value in CATEGORY_SPLITS.items():
        assert f"[{key}: {value:g}]" in booster


def test_slugs_are_names_lightgbm_accepts() -> None:
    assert slug("Champion?") == "champion"
    assert slug("Total Time: Spent") == "total_time_spent"
    assert slug("???") == "column"
    assert unique_names(["A b", "a_b", "deal_id"]) == ["a_b", "a_b_2", "deal_id_2"]


# --- one row per deal --------------------------------------------------------------


def test_one_row_per_deal_in_order(project: Project) -> None:
    features, deals = project.features(), project.deals()
    registry = registry_of(project)
    assert list(features.columns) == [*FEATURE_META, *registry.names]
    assert features["deal_id"].tolist() == deals.frame["deal_id"].tolist()
    snapshot = snapshot_times(deals.frame["created_at"], registry.snapshot_days)
    pd.testing.assert_series_equal(features["snapshot_at"], snapshot, check_names=False)


def test_inputs_are_not_mutated(project: Project) -> None:
    deals = project.deals()
    frame = deals.frame
    log = deals.activities
    before = frame.copy(), None if log is None else log.copy()
    build_features(
        registry_of(project), frame, frame["deal_id"], frame["created_at"], log
    )
    pd.testing.assert_frame_equal(frame, before[0])
    if log is not None and before[1] is not None:
        pd.testing.assert_frame_equal(log, before[1])


def test_the_features_table_is_rebuilt_the_same_from_the_tables(
    project: Project,
) -> None:
    tables = read_tables(project.params.source, project.path("data/tables"))
    names = registry_of(project).names
    pd.testing.assert_frame_equal(
        rebuilt(project, tables)[names], project.features()[names], check_exact=True
    )


# --- the leakage invariant ---------------------------------------------------------


def _spoiled(project: Project, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """The source's tables with everything features must not see rewritten: the
    forbidden columns, the outcome (among closed deals) and activities after each
    deal's snapshot."""
    params = project.params
    source = params.source
    tables = read_tables(source, project.path("data/tables"))
    deals = tables["deals"].copy()
    forbidden = [c for c in source.forbidden if c in deals.columns]
    assert forbidden, "every source forbids some column"
    for column in forbidden:
        deals[column] = rng.permutation(deals[column].to_numpy())
    outcome = deals[source.outcome.column].astype(str)
    closed = outcome.isin([*source.outcome.won, *source.outcome.lost]).to_numpy()
    values = deals[source.outcome.column].to_numpy().copy()
    values[closed] = rng.permutation(values[closed])
    deals[source.outcome.column] = values
    tables["deals"] = deals
    log_table = source.tables.activities
    if log_table is not None:
        log = tables["activities"]
        created = pd.Series(
            pd.to_datetime(deals[source.tables.deals.created], errors="coerce")
            .astype(TIME_DTYPE)
            .to_numpy(),
            index=deals[source.tables.deals.id].astype(str),
        )
        created = created[~created.index.duplicated()]
        snapshot = created + pd.Timedelta(days=params.featurize.snapshot_days)
        at = snapshot.reindex(log[log_table.key].astype(str)).to_numpy()
        future = pd.to_datetime(log[log_table.timestamp]).to_numpy() > at
        assert future.sum() > 1000
        extra = log[future].sample(frac=1.0, random_state=1).copy()
        extra[log_table.type] = rng.permutation(extra[log_table.type].to_numpy())
        tables["activities"] = pd.concat(
            [log[~future], extra, extra.head(500)], ignore_index=True
        )
    return tables


def test_forbidden_columns_outcomes_and_future_activity_cannot_change_features(
    project: Project,
) -> None:
    spoiled = rebuilt(project, _spoiled(project, np.random.default_rng(0)))
    names = registry_of(project).names
    pd.testing.assert_frame_equal(
        spoiled[names], project.features()[names], check_exact=True
    )


def test_a_column_the_features_read_does_change_them(project: Project) -> None:
    # The leakage test's counterpart: it would pass vacuously if nothing could move.
    registry = registry_of(project)
    spec = next(s for s in registry.specs if s.kind == "number")
    tables = read_tables(project.params.source, project.path("data/tables"))
    table = "deals" if spec.column in tables["deals"] else "accounts"
    changed = tables[table].copy()
    changed[spec.column] = np.random.default_rng(1).permutation(
        changed[spec.column].to_numpy()
    )
    tables[table] = changed
    moved = rebuilt(project, tables)
    assert not moved[spec.name].equals(project.features()[spec.name])


def test_activity_before_the_snapshot_does_change_features(
    synthetic_project: Project,
) -> None:
    source = synthetic_project.params.source
    assert source.tables.activities is not None
    tables = read_tables(source, synthetic_project.path("data/tables"))
    log = tables["activities"].copy()
    stamp = source.tables.activities.timestamp
    log[stamp] = pd.to_datetime(log[stamp]) - pd.Timedelta(days=60)
    tables["activities"] = log
    moved = rebuilt(synthetic_project, tables)
    assert not moved["n_activities"].equals(
        synthetic_project.features()["n_activities"]
    )


# --- encodings ---------------------------------------------------------------------


def test_evidence_unknown_is_a_value_of_its_own(synthetic_project: Project) -> None:
    registry = registry_of(synthetic_project)
    deals, features = synthetic_project.deals().frame, synthetic_project.features()
    evidence = [s for s in registry.specs if s.kind == "evidence"]
    for spec in evidence:
        raw, encoded = deals[spec.column], features[spec.name]
        assert (encoded[raw.eq("yes").fillna(False)] == EVIDENCE_CODES["yes"]).all()
        assert (encoded[raw.eq("no").fillna(False)] == EVIDENCE_CODES["no"]).all()
        unknown = raw.isna()
        assert unknown.any() and (encoded[unknown] == EVIDENCE_CODES["unknown"]).all()
    assert EVIDENCE_CODES["no"] < EVIDENCE_CODES["unknown"] < EVIDENCE_CODES["yes"]


def _registry(*specs: FeatureSpec, **settings: object) -> FeatureRegistry:
    return FeatureRegistry(specs=specs, **settings)  # type: ignore[arg-type]


def test_each_kind_is_encoded_and_missing_stays_missing() -> None:
    registry = _registry(
        FeatureSpec("seats", "Seats", "number", "fit"),
        FeatureSpec("signed_on", "Signed On", "date", "fit"),
        FeatureSpec("trial", "Trial", "bool", "engagement"),
        FeatureSpec("champion", "Champion?", "evidence", "champion", 1),
        FeatureSpec("region", "Region", "category", "fit"),
    )
    columns = pd.DataFrame(
        {
            "Seats": [3.0, np.nan, 0.0],
            "Signed On": pd.to_datetime(["2024-01-11", "", "2023-12-31"]),
            "Trial": pd.array([True, None, False], dtype="boolean"),
            "Champion?": pd.array(["yes", None, "no"], dtype="string"),
            "Region": pd.array(["EMEA", None, " emea"], dtype="string"),
        },
        index=[7, 3, 5],
    )
    created = pd.Series(pd.to_datetime(["2024-01-01"] * 3), index=columns.index)
    ids = pd.Series(["a", "b", "c"], index=columns.index)
    features = build_features(registry, columns, ids, created)
    assert features.index.tolist() == [7, 3, 5]
    assert features["deal_id"].tolist() == ["a", "b", "c"]
    # a blank number is missing, never 0; dates are days after the created date
    np.testing.assert_array_equal(features["seats"], [3.0, np.nan, 0.0])
    np.testing.assert_array_equal(features["signed_on"], [10.0, np.nan, -1.0])
    np.testing.assert_array_equal(features["trial"], [1.0, np.nan, 0.0])
    np.testing.assert_array_equal(features["champion"], [2.0, 1.0, 0.0])
    assert features["region"].tolist()[0] == "EMEA" and pd.isna(features["region"][3])


def test_text_codes_ignore_case_and_surrounding_spaces_when_asked() -> None:
    text = pd.Series(["Google", " google ", "GOOGLE", "bing", None, "yahoo"])
    assert text_codes(text, ["bing", "Google"], fold=True).tolist() == [
        1,
        1,
        1,
        0,
        -1,
        -1,
    ]
    assert text_codes(text, ["bing", "Google"]).tolist() == [1, -1, -1, 0, -1, -1]


def _source() -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "tables": {"deals": {"path": "deals.csv", "id": "Id"}},
            "outcome": {"column": "Stage", "won": ["Won"], "lost": ["Lost"]},
        }
    )


def _activity_registry(
    types: list[str], intent: list[str], snapshot_days: int = 14
) -> FeatureRegistry:
    """The activity features of a log with these types, planned as featurize does."""
    cfg = FeaturizeConfig.model_validate(
        {
            "snapshot_days": snapshot_days,
            "activities": {"types": types, "intent_types": intent, "half_life_days": 7},
        }
    )
    log = pd.DataFrame(
        {
            "deal_id": pd.Series(["a"], dtype="string"),
            "timestamp": pd.Series([pd.Timestamp("2024-01-01")], dtype=TIME_DTYPE),
            "activity_type": pd.Series(["call"], dtype="string"),
        }
    )
    return plan_features([], {}, _source(), cfg, log)


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


def _activity_features(
    registry: FeatureRegistry, log: pd.DataFrame, created: list[str]
) -> pd.DataFrame:
    ids = pd.Series([chr(ord("a") + i) for i in range(len(created))])
    columns = pd.DataFrame(index=ids.index)
    stamps = pd.Series(pd.to_datetime(created), dtype=TIME_DTYPE)
    return build_features(registry, columns, ids, stamps, log)


def test_activities_are_counted_up_to_the_snapshot_only() -> None:
    registry = _activity_registry(["call", "email"], [], snapshot_days=7)
    early = _log(
        [
            ("a", "2024-01-02", "call"),
            ("a", "2024-01-05", "email"),
            ("b", "2024-02-03", "email"),
            ("z", "2024-01-03", "call"),  # a deal not scored here
        ]
    )
    late = _log([("a", "2024-01-09", "call"), ("b", "2024-03-01", "call")])
    created = ["2024-01-01", "2024-02-01", "2024-03-01"]
    features = _activity_features(registry, early, created)
    assert features[["n_call", "n_email", "n_activities"]].to_numpy().tolist() == [
        [1.0, 1.0, 2.0],
        [0.0, 1.0, 1.0],
        [0.0, 0.0, 0.0],
    ]
    # days from the last activity to the snapshot (created + 7 days)
    np.testing.assert_array_equal(features["days_since_last_touch"], [3.0, 5.0, np.nan])
    with_late = _activity_features(registry, pd.concat([early, late]), created)
    pd.testing.assert_frame_equal(features, with_late)


def test_recency_weight_halves_every_half_life() -> None:
    registry = _activity_registry(
        ["email_open", "meeting", "pricing_page_view"], ["pricing_page_view", "meeting"]
    )
    log = _log(
        [
            ("a", "2024-01-15", "pricing_page_view"),  # at the snapshot: weight 1
            ("a", "2024-01-08", "email_open"),  # a half-life earlier: weight 0.5
            ("b", "2024-01-15T01:00:00", "meeting"),  # after its snapshot
        ]
    )
    features = _activity_features(registry, log, ["2024-01-01", "2024-01-01"])
    assert features["engagement_recent"].tolist() == pytest.approx([1.5, 0.0])
    assert features["intent_recent"].tolist() == pytest.approx([1.0, 0.0])
    assert features["n_activities"].tolist() == [2.0, 0.0]
    assert features["days_since_last_touch"].iloc[0] == 0.0
    assert np.isnan(features["days_since_last_touch"].iloc[1])


def test_duplicate_deal_ids_are_refused() -> None:
    registry = _activity_registry(["call"], [])
    log = _log([("a", "2024-01-02", "call")])
    ids = pd.Series(["a", "a"])
    created = pd.Series(pd.to_datetime(["2024-01-01"] * 2), dtype=TIME_DTYPE)
    with pytest.raises(ValueError, match="deal ids must be unique"):
        build_features(registry, pd.DataFrame(index=ids.index), ids, created, log)


def test_activities_aggregated_in_blocks_give_the_same_bits(
    synthetic_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log is aggregated a block at a time; a block boundary anywhere (here
    every 997 activities) changes no value, not even in the last bit."""
    from lead_ml import features as module

    deals = synthetic_project.deals()
    log = deals.activities
    assert log is not None and len(log) > 20 * 997
    monkeypatch.setattr(module, "ACTIVITY_BLOCK", 997)
    registry = registry_of(synthetic_project)
    frame = deals.frame
    blocked = build_features(
        registry, frame, frame["deal_id"], frame["created_at"], log
    )
    expected = synthetic_project.features()[list(blocked.columns)]
    pd.testing.assert_frame_equal(blocked, expected, check_exact=True)
    # the same as numpy's bincount over the whole log, the reference formulation
    position = pd.Index(frame["deal_id"]).get_indexer(log["deal_id"])
    snapshot = snapshot_times(frame["created_at"], registry.snapshot_days).to_numpy(
        TIME_DTYPE
    )
    stamp = log["timestamp"].to_numpy(TIME_DTYPE)
    kept = (position >= 0) & (stamp <= snapshot[np.maximum(position, 0)])
    age = (snapshot[position[kept]] - stamp[kept]).astype("int64") / 86_400_000.0
    weight = power(0.5, age / registry.half_life_days)  # the C library's pow
    reference = np.bincount(position[kept], weights=weight, minlength=len(frame))
    np.testing.assert_array_equal(blocked["engagement_recent"].to_numpy(), reference)
