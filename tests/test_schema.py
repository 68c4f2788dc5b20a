"""Data tests of the contract: row rules, structural errors, round trips, the CRM."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lead_ml.config import SyntheticConfig
from lead_ml.schema import (
    ACCOUNTS,
    ACTIVITIES,
    CRM_CONTRACTS,
    DEALS,
    REJECT_COLUMNS,
    ColumnSpec,
    ContractError,
    DateOrder,
    TableContract,
    ValidationResult,
    read_table,
    validate_crm,
    validate_table,
    write_validated,
)
from lead_ml.synthetic import SyntheticCRM, generate_crm

SMALL = SyntheticConfig(n_deals=400, n_accounts=80)


def _deal(number: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "deal_id": f"D{number:07d}",
        "account_id": "A000001",
        "created_at": f"2024-01-0{number}",
        "closed_at": "2024-03-01 10:30:00",
        "outcome": "won",
        "amount": 12_000.0,
        "lead_source": "referral",
        "contact_title": "VP of IT",
        "contact_seniority": "vp",
        "minutes_to_first_response": 4.5,
        "bant_budget": "yes",
        "bant_authority": "yes",
        "bant_need": "no",
        "bant_timeline": "0-3 months",
        "meddic_metrics": "yes",
        "meddic_economic_buyer": "unknown",
        "meddic_decision_criteria": "no",
        "meddic_decision_process": "yes",
        "meddic_pain_type": "productivity",
        "meddic_pain_severity": 4.0,
        "meddic_champion": "yes",
        "meddic_champion_strength": 3.0,
        "stage_at_close": "closed_won",
        "discount_pct": 10.0,
        "lost_reason": None,
    }
    return row | changes


def _deal_rows() -> list[dict[str, Any]]:
    return [
        _deal(1),
        _deal(2, outcome="lost", stage_at_close="demo", lost_reason="price"),
        _deal(3, outcome="open", closed_at=None, stage_at_close="discovery"),
    ]


def _deals(row: int = 1, **changes: Any) -> pd.DataFrame:
    rows = _deal_rows()
    rows[row] = rows[row] | changes
    return pd.DataFrame(rows)


def _accounts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A000001", "A000002"],
            "industry": ["software", "retail"],
            "employees": [120, 40],
            "annual_revenue": [12e6, 3e6],
            "region": ["emea", "latam"],
        }
    )


def _activities(row: int = 1, **changes: Any) -> pd.DataFrame:
    rows: list[dict[str, Any]] = [
        {
            "activity_id": number,
            "deal_id": f"D{number:07d}",
            "timestamp": f"2024-01-0{number} 09:00:00",
            "activity_type": kind,
        }
        for number, kind in ((1, "email_open"), (2, "demo_booked"), (3, "call"))
    ]
    rows[row] = rows[row] | changes
    return pd.DataFrame(rows)


def _only_reject(result: ValidationResult) -> tuple[int, str]:
    assert len(result.rejects) == 1, result.rejects[["row", "reason"]]
    reject = result.rejects.iloc[0]
    return int(reject["row"]), str(reject["reason"])


def _reasons(result: ValidationResult) -> dict[int, str]:
    return dict(zip(result.rejects["row"], result.rejects["reason"], strict=True))


@pytest.fixture(scope="module")
def dirty() -> SyntheticCRM:
    return generate_crm(SMALL, seed=3, dirty_fraction=0.02)


@pytest.fixture(scope="module")
def clean() -> SyntheticCRM:
    return generate_crm(SMALL, seed=3, dirty_fraction=0.0)


# --- the contracts ----------------------------------------------------------------


def test_contracts_describe_the_synthetic_crm_column_for_column(
    clean: SyntheticCRM,
) -> None:
    for contract in CRM_CONTRACTS:
        frame = getattr(clean, contract.name)
        assert [spec.name for spec in contract.columns] == list(frame.columns)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ColumnSpec("amount", "float", allowed=("1",)),
        lambda: ColumnSpec("outcome", "category", min_value=0),
        lambda: ColumnSpec("lost_reason", "string", required=False),
        lambda: ColumnSpec("amount", "decimal"),  # type: ignore[arg-type]
        lambda: TableContract("deals", "deal_id", (ColumnSpec("id", "string"),)),
        lambda: TableContract(
            "deals", None, (ColumnSpec("a", "string"), ColumnSpec("a", "int"))
        ),
        lambda: TableContract(
            "deals",
            None,
            (ColumnSpec("a", "datetime"), ColumnSpec("b", "string")),
            date_order=(DateOrder("a", "b"),),
        ),
    ],
)
def test_inconsistent_contracts_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


# --- row rules: one rule, one reason ----------------------------------------------


@pytest.mark.parametrize(
    ("row", "changes", "reason"),
    [
        (1, {"amount": -1.0}, "amount is negative (-1.0)"),
        (1, {"amount": "12k"}, "amount is not a number: '12k'"),
        (1, {"amount": float("inf")}, "amount is not a number: 'inf'"),
        (1, {"outcome": "pending"}, "outcome 'pending' is not one of won, lost, open"),
        (1, {"closed_at": "2023-12-01"}, "closed_at is before created_at"),
        (1, {"created_at": "abc"}, "created_at is not a date: 'abc'"),
        (1, {"deal_id": None}, "deal_id is missing"),
        (1, {"contact_title": "  "}, "contact_title is missing"),
        (1, {"closed_at": None}, "closed_at is missing but outcome is 'lost'"),
        (2, {"closed_at": "2024-02-01"}, "closed_at is set but outcome is 'open'"),
        (
            2,
            {"deal_id": "D0000001"},
            "duplicate deal_id 'D0000001' (first seen at row 0)",
        ),
        (1, {"meddic_pain_severity": 7.0}, "meddic_pain_severity is above 5 (7.0)"),
        (
            1,
            {"meddic_champion_strength": 0.0},
            "meddic_champion_strength is below 1 (0.0)",
        ),
        (
            1,
            {"minutes_to_first_response": -5},
            "minutes_to_first_response is negative (-5.0)",
        ),
        (
            1,
            {"bant_timeline": "soon"},
            "bant_timeline 'soon' is not one of 0-3 months, 3-6 months, 6-12 months, "
            "12+ months, unknown",
        ),
        (
            1,
            {"meddic_pain_type": "boredom"},
            "meddic_pain_type 'boredom' is not one of productivity, support, "
            "financial, none, unknown",
        ),
        # Several problems: only the first failing check (contract order) is given.
        (
            1,
            {"outcome": "pending", "amount": -1.0},
            "outcome 'pending' is not one of won, lost, open",
        ),
    ],
)
def test_each_deal_rule_gives_exactly_its_reason(
    row: int, changes: dict[str, Any], reason: str
) -> None:
    result = validate_table(_deals(row, **changes), DEALS, source="deals.csv")
    assert _only_reject(result) == (row, reason)
    assert len(result.valid) == 2


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"activity_id": "1.5"}, "activity_id is not an integer: '1.5'"),
        ({"activity_id": 1}, "duplicate activity_id 1 (first seen at row 0)"),
        ({"timestamp": "31/01/2024"}, "timestamp is not a date: '31/01/2024'"),
        (
            {"activity_type": "fax"},
            "activity_type 'fax' is not one of "
            + ", ".join(ACTIVITIES.columns[3].allowed or ()),
        ),
    ],
)
def test_each_activity_rule_gives_exactly_its_reason(
    changes: dict[str, Any], reason: str
) -> None:
    result = validate_table(_activities(**changes), ACTIVITIES, source="activities.csv")
    assert _only_reject(result) == (1, reason)


def test_the_first_valid_copy_of_an_id_is_kept() -> None:
    frame = _deals(0, outcome="pending")
    frame = pd.concat([frame, _deals().iloc[[0]]], ignore_index=True)
    reasons = _reasons(validate_table(frame, DEALS, source="deals.csv"))
    assert reasons == {0: "outcome 'pending' is not one of won, lost, open"}


def test_cross_table_rules_reject_orphans_and_cascade() -> None:
    deals = _deals(1, account_id="A9")
    activities = _activities(2, deal_id="D9999999")
    results = validate_crm(deals, _accounts(), activities)
    assert _reasons(results["deals"]) == {1: "account_id 'A9' not found in accounts"}
    assert _reasons(results["activities"]) == {
        1: "deal_id 'D0000002' not found in deals (its row there was rejected)",
        2: "deal_id 'D9999999' not found in deals",
    }
    assert results["accounts"].counts() == {"rows_in": 2, "valid": 2, "rejected": 0}


def test_counts_reconcile_and_valid_rows_keep_order_index_and_dtypes() -> None:
    frame = _deals(1, amount=-3.0).set_axis([30, 10, 20])
    result = validate_table(frame, DEALS, source="deals.csv")
    assert result.counts() == {"rows_in": 3, "valid": 2, "rejected": 1}
    assert list(result.valid.index) == [30, 20]
    assert list(result.rejects.index) == [10]
    assert list(result.rejects.columns[:3]) == list(REJECT_COLUMNS)
    assert result.rejects["amount"].tolist() == ["-3.0"]
    dtypes = result.valid.dtypes.astype(str)
    assert dtypes["deal_id"] == "string" and dtypes["outcome"] == "string"
    assert dtypes["created_at"] == "datetime64[ms]" and dtypes["amount"] == "float64"
    activities = validate_table(_activities(), ACTIVITIES, source="a.csv").valid
    assert activities["activity_id"].dtype == "int64"


def test_extra_columns_are_kept_and_absent_optional_columns_are_null() -> None:
    frame = _deals().drop(columns=["lost_reason"]).assign(owner=["ann", "bo", "cy"])
    valid = validate_table(frame, DEALS, source="deals.csv").valid
    assert valid["owner"].tolist() == ["ann", "bo", "cy"]
    assert valid["lost_reason"].isna().all()


def test_time_zones_are_compared_in_utc() -> None:
    frame = _deals(
        0, created_at="2024-01-01T00:00:00+02:00", closed_at="2024-03-01T00:00:00Z"
    )
    valid = validate_table(frame, DEALS, source="deals.csv").valid
    assert valid["created_at"].iloc[0] == pd.Timestamp("2023-12-31 22:00:00")


def test_inputs_are_not_mutated() -> None:
    deals, accounts, activities = _deals(1, amount="x"), _accounts(), _activities()
    before = [frame.copy(deep=True) for frame in (deals, accounts, activities)]
    validate_table(deals, DEALS, source="deals.csv")
    validate_crm(deals, accounts, activities)
    for frame, copy in zip((deals, accounts, activities), before, strict=True):
        pd.testing.assert_frame_equal(frame, copy)


# --- structural errors ------------------------------------------------------------


def test_a_missing_column_names_the_file_the_column_and_the_fix() -> None:
    frame = _deals().drop(columns=["closed_at"])
    with pytest.raises(ContractError) as error:
        validate_table(frame, DEALS, source="deals.parquet")
    message = str(error.value)
    assert message.startswith("deals.parquet: required column 'closed_at' is missing")
    assert "null for open deals" in message and "params.yaml" in message


def test_read_table_refuses_a_file_without_a_required_column(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    _deals().drop(columns=["outcome", "amount"]).to_csv(path, index=False)
    with pytest.raises(ContractError, match=r"deals\.csv: .*'outcome'.*'amount'"):
        read_table(path, DEALS)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("deals.csv", b""),
        ("deals.csv", b"deal_id,account_id\n"),
        ("deals.parquet", None),
    ],
)
def test_an_empty_table_is_a_contract_error(
    tmp_path: Path, name: str, content: bytes | None
) -> None:
    path = tmp_path / name
    if content is None:
        _deals().iloc[:0].to_parquet(path)
    else:
        path.write_bytes(content)
    with pytest.raises(ContractError, match=rf"{name}: the deals table has no rows"):
        read_table(path, DEALS)


@pytest.mark.parametrize("name", ["deals.parquet", "deals.csv", "absent.parquet"])
def test_an_unreadable_file_is_a_contract_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name != "absent.parquet":
        path.write_bytes(b"\x00\xff\xfe not a table \x00" * 50)
    with pytest.raises(ContractError, match=rf"{name}: .*deals table"):
        read_table(path, DEALS)


def test_an_unknown_suffix_is_a_contract_error(tmp_path: Path) -> None:
    path = tmp_path / "deals.xlsx"
    path.write_bytes(b"")
    with pytest.raises(
        ContractError, match=r"deals\.xlsx: cannot read a '\.xlsx' file"
    ):
        read_table(path, DEALS)


def test_a_date_column_with_no_parsable_value_is_a_contract_error() -> None:
    frame = _deals().assign(created_at=["soon", "later", "31/01/2024"])
    with pytest.raises(ContractError) as error:
        validate_table(frame, DEALS, source="deals.csv")
    message = str(error.value)
    assert "deals.csv: column 'created_at' of the deals table" in message
    assert "ISO 8601" in message


# --- files ------------------------------------------------------------------------


def test_csv_and_parquet_give_the_same_valid_frame(
    tmp_path: Path, dirty: SyntheticCRM
) -> None:
    for contract in CRM_CONTRACTS:
        frame = getattr(dirty, contract.name)
        frame.to_csv(tmp_path / f"{contract.name}.csv", index=False)
        frame.to_parquet(tmp_path / f"{contract.name}.parquet", index=False)
        from_csv, from_parquet = (
            validate_table(
                read_table(tmp_path / f"{contract.name}.{s}", contract),
                contract,
                source=s,
            )
            for s in ("csv", "parquet")
        )
        pd.testing.assert_frame_equal(from_csv.valid, from_parquet.valid)
        pd.testing.assert_frame_equal(
            from_csv.rejects[["row", "reason"]], from_parquet.rejects[["row", "reason"]]
        )


def test_write_validated_writes_tables_rejects_and_counts(
    tmp_path: Path, dirty: SyntheticCRM
) -> None:
    results = validate_crm(dirty.deals, dirty.accounts, dirty.activities)
    rejects_path = tmp_path / "reports" / "rejects.csv"
    counts = write_validated(results, tmp_path / "validated", rejects_path)
    rejects = pd.read_csv(rejects_path)
    assert list(rejects.columns[:3]) == list(REJECT_COLUMNS)
    for name, result in results.items():
        written = pd.read_parquet(tmp_path / "validated" / f"{name}.parquet")
        assert len(written) == counts[name]["valid"] == len(result.valid)
        assert (rejects["table"] == name).sum() == counts[name]["rejected"]
        assert counts[name]["rows_in"] == len(getattr(dirty, name))


def test_write_validated_without_rejects_writes_a_header(tmp_path: Path) -> None:
    results = {"accounts": validate_table(_accounts(), ACCOUNTS, source="a.csv")}
    write_validated(results, tmp_path, tmp_path / "rejects.csv")
    assert (tmp_path / "rejects.csv").read_text().strip() == "table,row,reason"


# --- the generated CRM ------------------------------------------------------------


def test_the_clean_generated_crm_passes_entirely(clean: SyntheticCRM) -> None:
    results = validate_crm(clean.deals, clean.accounts, clean.activities)
    for name, result in results.items():
        assert result.rejects.empty, (name, result.rejects["reason"].head())
        assert len(result.valid) == len(getattr(clean, name))


def _changed_rows(spoiled: pd.DataFrame, original: pd.DataFrame) -> np.ndarray:
    """Positions where the generator spoiled a row, plus any rows it appended."""
    head = spoiled.iloc[: len(original)].reset_index(drop=True)
    same = (head == original) | (head.isna() & original.isna())
    changed = ~same.all(axis=1).to_numpy()
    return np.flatnonzero(
        np.concatenate([changed, np.ones(len(spoiled) - len(original), bool)])
    )


def test_exactly_the_injected_dirty_rows_are_rejected(
    dirty: SyntheticCRM, clean: SyntheticCRM
) -> None:
    results = validate_crm(dirty.deals, dirty.accounts, dirty.activities)
    spoiled_deals = _changed_rows(dirty.deals, clean.deals)
    assert len(spoiled_deals) > 0
    assert sorted(results["deals"].rejects["row"]) == list(spoiled_deals)
    assert results["accounts"].rejects.empty
    lost_ids = set(dirty.deals["deal_id"].iloc[spoiled_deals]) - set(
        results["deals"].valid["deal_id"]
    )
    expected = set(_changed_rows(dirty.activities, clean.activities)) | set(
        np.flatnonzero(dirty.activities["deal_id"].isin(lost_ids).to_numpy())
    )
    assert set(results["activities"].rejects["row"]) == expected
    reasons = " ".join(results["activities"].rejects["reason"])
    assert "'D9999999' not found in deals" in reasons and "'fax'" in reasons


# --- property ---------------------------------------------------------------------

GARBAGE = st.one_of(
    st.none(),
    st.text(max_size=6),
    st.sampled_from(["", " ", "nan", "NA", "2024-02-30", "1e400", "-0", "won", "yes"]),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(timezones=st.sampled_from([None, UTC])),
    st.just(datetime(2024, 1, 1, tzinfo=UTC)),
)


Cell = tuple[int, int, Any]


def _spoil(rows: list[dict[Any, Any]], cells: list[Cell]) -> pd.DataFrame:
    rows = [dict(row) for row in rows]
    for row, column, value in cells:
        target = rows[row % len(rows)]
        target[list(target)[column % len(target)]] = value
    return pd.DataFrame(rows)


CELLS = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 30), GARBAGE), max_size=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deal_cells=CELLS, account_cells=CELLS, activity_cells=CELLS)
def test_validation_only_raises_contract_errors_and_always_reconciles(
    deal_cells: list[Cell], account_cells: list[Cell], activity_cells: list[Cell]
) -> None:
    frames = {
        "deals": _spoil(_deal_rows(), deal_cells),
        "accounts": _spoil(_accounts().to_dict("records"), account_cells),
        "activities": _spoil(_activities().to_dict("records"), activity_cells),
    }
    try:
        results = validate_crm(
            frames["deals"], frames["accounts"], frames["activities"]
        )
    except ContractError:
        return
    for name, result in results.items():
        assert result.counts()["rows_in"] == len(frames[name])
        assert result.rejects["reason"].notna().all()
