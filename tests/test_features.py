"""Point-in-time features: the registry, the leakage invariant, and the encodings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lead_ml.config import DIMENSIONS, MEDDIC_DIMENSIONS, FeaturizeConfig
from lead_ml.features import (
    EVIDENCE_CODES,
    FEATURE_NAMES,
    FORBIDDEN,
    META_COLUMNS,
    REGISTRY,
    build_features,
    feature_dimensions,
    snapshot_times,
)
from lead_ml.synthetic import POST_QUALIFICATION_COLUMNS, SyntheticCRM

CFG = FeaturizeConfig()


def test_registry_is_consistent() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert set(feature_dimensions().values()) == set(DIMENSIONS)
    for spec in REGISTRY:
        table, _, column = spec.source.partition(".")
        assert table in {"deals", "accounts", "activities"}, spec
        assert column not in FORBIDDEN, f"{spec.name} reads forbidden {column}"
        assert spec.monotone in (-1, 0, 1)
    assert set(POST_QUALIFICATION_COLUMNS) <= set(FORBIDDEN)
    # More MEDDIC evidence never lowers the score.
    evidence = [s for s in REGISTRY if s.kind == "evidence"]
    assert evidence and all(s.monotone == 1 for s in evidence)
    assert {s.dimension for s in evidence} <= set(MEDDIC_DIMENSIONS)


def test_one_row_per_deal_in_order(
    small_crm: SyntheticCRM, small_features: pd.DataFrame
) -> None:
    assert list(small_features.columns) == [*META_COLUMNS, *FEATURE_NAMES]
    assert small_features["deal_id"].tolist() == small_crm.deals["deal_id"].tolist()
    assert small_features.index.equals(small_crm.deals.index)


def test_unknown_is_its_own_value(
    small_crm: SyntheticCRM, small_features: pd.DataFrame
) -> None:
    raw = small_crm.deals["meddic_champion"]
    encoded = small_features["meddic_champion"]
    for answer, code in EVIDENCE_CODES.items():
        assert (encoded[raw == answer] == code).all()
    assert EVIDENCE_CODES["no"] < EVIDENCE_CODES["unknown"] < EVIDENCE_CODES["yes"]
    assert set(small_features["bant_need"]) == {"yes", "no", "unknown"}


def test_inputs_are_not_mutated(small_crm: SyntheticCRM) -> None:
    before = [
        t.copy() for t in (small_crm.deals, small_crm.accounts, small_crm.activities)
    ]
    build_features(small_crm.deals, small_crm.accounts, small_crm.activities, CFG)
    for original, table in zip(
        before, (small_crm.deals, small_crm.accounts, small_crm.activities), strict=True
    ):
        pd.testing.assert_frame_equal(original, table)


def _spoil_future(
    crm: SyntheticCRM, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rewrite what features must not see: later activity, forbidden fields."""
    deals = crm.deals.copy()
    snapshot = (deals["created_at"] + pd.Timedelta(days=CFG.snapshot_days)).to_numpy()
    log = crm.activities.copy()
    position = pd.Index(deals["deal_id"]).get_indexer(log["deal_id"])
    future = log["timestamp"].to_numpy() > snapshot[position]
    assert future.sum() > 1000
    kept = log[~future]
    extra = log[future].sample(frac=1.0, random_state=1).copy()
    extra["activity_type"] = rng.permutation(extra["activity_type"].to_numpy())
    deals["outcome"] = rng.permutation(deals["outcome"].to_numpy())
    deals["closed_at"] = deals["closed_at"] + pd.Timedelta(days=30)
    deals["stage_at_close"] = "closed_won"
    deals["discount_pct"] = 99.0
    deals["lost_reason"] = "price"
    return deals, pd.concat([kept, extra, extra.head(500)], ignore_index=True)


def test_future_activity_and_forbidden_fields_cannot_change_features(
    small_crm: SyntheticCRM, small_features: pd.DataFrame
) -> None:
    deals, log = _spoil_future(small_crm, np.random.default_rng(0))
    spoiled = build_features(deals, small_crm.accounts, log, CFG)
    pd.testing.assert_frame_equal(
        spoiled[list(FEATURE_NAMES)], small_features[list(FEATURE_NAMES)]
    )


def test_activity_before_the_snapshot_does_change_features(
    small_crm: SyntheticCRM, small_features: pd.DataFrame
) -> None:
    # The leakage test's counterpart: it would pass vacuously if nothing could move.
    log = small_crm.activities.copy()
    log["timestamp"] = log["timestamp"] - pd.Timedelta(days=60)
    moved = build_features(small_crm.deals, small_crm.accounts, log, CFG)
    assert not moved["n_activities"].equals(small_features["n_activities"])


def test_recency_weight_halves_every_half_life(small_crm: SyntheticCRM) -> None:
    deals = small_crm.deals.head(2).assign(
        deal_id=["D1", "D2"],
        created_at=pd.to_datetime(["2024-01-01", "2024-01-01"]).astype(
            "datetime64[ms]"
        ),
    )
    accounts = small_crm.accounts
    snapshot = pd.Timestamp("2024-01-15")
    log = pd.DataFrame(
        {
            "deal_id": ["D1", "D1", "D2"],
            "timestamp": pd.to_datetime(
                [
                    snapshot,
                    snapshot - pd.Timedelta(days=7),
                    snapshot + pd.Timedelta(hours=1),
                ]
            ).astype("datetime64[ms]"),
            "activity_type": ["pricing_page_view", "email_open", "meeting"],
        }
    )
    features = build_features(
        deals, accounts, log, FeaturizeConfig(snapshot_days=14, half_life_days=7)
    )
    assert features["engagement_recent"].tolist() == pytest.approx([1.5, 0.0])
    assert features["intent_recent"].tolist() == pytest.approx([1.0, 0.0])
    assert features["n_activities"].tolist() == [2.0, 0.0]
    assert features["days_since_last_touch"].iloc[0] == 0.0
    assert np.isnan(features["days_since_last_touch"].iloc[1])


def test_duplicate_deal_ids_are_refused(small_crm: SyntheticCRM) -> None:
    deals = pd.concat([small_crm.deals, small_crm.deals.head(1)], ignore_index=True)
    with pytest.raises(ValueError, match="deal_id must be unique"):
        build_features(deals, small_crm.accounts, small_crm.activities, CFG)


def test_activities_aggregated_in_blocks_give_the_same_bits(
    small_crm: SyntheticCRM,
    small_features: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The log is aggregated a block at a time; a block boundary anywhere (here
    every 997 activities) changes no value, not even in the last bit."""
    from lead_ml import features

    assert len(small_crm.activities) > 20 * 997
    monkeypatch.setattr(features, "ACTIVITY_BLOCK", 997)
    blocked = build_features(
        small_crm.deals, small_crm.accounts, small_crm.activities, CFG
    )
    pd.testing.assert_frame_equal(blocked, small_features, check_exact=True)
    # the same as numpy's bincount over the whole log, the reference formulation
    position = pd.Index(small_crm.deals["deal_id"]).get_indexer(
        small_crm.activities["deal_id"]
    )
    snapshot = snapshot_times(small_crm.deals, CFG).to_numpy("datetime64[ms]")
    stamp = small_crm.activities["timestamp"].to_numpy("datetime64[ms]")
    kept = (position >= 0) & (stamp <= snapshot[np.maximum(position, 0)])
    age = (snapshot[position[kept]] - stamp[kept]).astype("int64") / 86_400_000.0
    weight = 0.5 ** (age / CFG.half_life_days)
    expected = np.bincount(
        position[kept], weights=weight, minlength=len(small_crm.deals)
    )
    np.testing.assert_array_equal(blocked["engagement_recent"].to_numpy(), expected)
