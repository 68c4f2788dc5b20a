"""A source's tables to labelled deals: one loader for the synthetic CRM and exports.

The guarantees hold for every source (the ``project`` fixture: the synthetic CRM,
X Education, Maven); the rules behind them are pinned on small hand-made exports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projects import Project, merged

from lead_ml.config import Params, SyntheticConfig, parse_params, read_params_file
from lead_ml.schema import id_text
from lead_ml.sources import (
    Deals,
    check_columns,
    copy_table,
    dialect,
    lead_rows,
    load_deals,
    read_deals,
    read_tables,
    source_activities,
    write_deals,
)
from lead_ml.synthetic import SyntheticCRM, generate_crm, write_crm
from lead_ml.tables import convert, read_table
from lead_ml.vocab import META_COLUMNS, REJECT_COLUMNS, ConfigError, ContractError

# --- every source ---------------------------------------------------------------


def project_tables(project: Project) -> dict[str, pd.DataFrame]:
    """The tables `lead-ml read` copied for the project."""
    return read_tables(project.params.source, project.path("data/tables"))


def test_counts_reconcile_for_every_table(project: Project) -> None:
    deals, tables = project.deals(), project_tables(project)
    summary, rejects = deals.summary, deals.rejects
    by_table = rejects["table"].value_counts()
    assert summary["rows_in"] == len(tables["deals"])
    assert summary["rows_in"] == summary["deals"] + summary["rejected"]
    assert summary["rejected"] == by_table.get("deals", 0)
    assert summary["deals"] == len(deals.frame)
    assert summary["won"] + summary["lost"] + summary["open"] == summary["deals"]
    assert summary["accounts_in"] == len(tables.get("accounts", ()))
    assert summary["accounts_rejected"] == by_table.get("accounts", 0)
    log = deals.activities
    assert summary["activities_in"] == len(tables.get("activities", ()))
    assert summary["activities"] == (0 if log is None else len(log))
    assert summary["activities_in"] == (
        summary["activities"] + summary["activities_rejected"]
    )
    assert summary["activities_rejected"] == by_table.get("activities", 0)


def test_every_rejected_row_has_one_reason_and_its_values(project: Project) -> None:
    rejects, tables = project.deals().rejects, project_tables(project)
    assert list(rejects.columns[:3]) == list(REJECT_COLUMNS)
    assert rejects["reason"].notna().all() and (rejects["reason"].str.len() > 0).all()
    assert not rejects.duplicated(["table", "row"]).any()
    deals = project.params.source.tables.deals
    for name, part in rejects.groupby("table"):
        rows = part["row"].astype(int)
        assert rows.between(0, len(tables[str(name)]) - 1).all()
    deal_rejects = rejects[rejects["table"] == "deals"]
    if len(deal_rejects):  # the rejects file carries each row's values as written
        rows = deal_rejects["row"].astype(int)
        ids = id_text(tables["deals"][deals.id]).iloc[rows]
        assert deal_rejects[deals.id].tolist() == ids.tolist()


def test_the_deal_frame_is_lead_ml_columns_then_candidates(project: Project) -> None:
    deals, source = project.deals(), project.params.source
    frame = deals.frame
    assert list(frame.columns[: len(META_COLUMNS)]) == list(META_COLUMNS)
    assert list(frame.columns[len(META_COLUMNS) :])[: len(deals.candidates)] == list(
        deals.candidates
    )
    assert frame["deal_id"].is_unique and frame["deal_id"].notna().all()
    assert set(frame["outcome"]) <= {"won", "lost", "open"}
    won = frame["won"].astype("Float64")
    assert (won[frame["outcome"] == "won"] == 1).all()
    assert (won[frame["outcome"] == "lost"] == 0).all()
    assert won[frame["outcome"] == "open"].isna().all()
    assert not set(deals.candidates) & set(deals.excluded)
    assert not set(source.forbidden) & set(frame.columns)
    assert set(deals.candidates) <= set(deals.kinds)
    assert set(deals.dimensions(source).values()) <= {
        *source.dimensions.values(),
        "other",
    }


def test_lead_rows_give_back_the_exports_own_columns_and_values(
    project: Project,
) -> None:
    source, deals = project.params.source, project.deals()
    tables = project_tables(project)
    rows = lead_rows(deals.frame, source)
    names = set(tables["deals"].columns) | set(tables.get("accounts", {}))
    assert set(rows.columns) <= names
    assert source.outcome.column not in rows
    raw = tables["deals"]
    rejected = deals.rejects.loc[deals.rejects["table"] == "deals", "row"].astype(int)
    kept = raw.drop(index=raw.index[rejected.to_numpy()]).reset_index(drop=True)
    id_column = source.tables.deals.id
    assert rows[id_column].tolist() == id_text(kept[id_column]).tolist()
    for column in deals.candidates:
        if column in raw:  # a deal column, not one joined from the accounts
            kind = deals.kinds[column].kind
            written, _ = convert(kept[column], kind, source.missing_values)
            pd.testing.assert_series_equal(rows[column], written, check_names=False)
    first = deals.candidates[0]
    picked = lead_rows(deals.frame, source, [first, id_column])
    assert list(picked.columns) == [first, id_column]


def test_the_source_section_names_only_columns_the_files_have(
    project: Project,
) -> None:
    params = project.params
    headers = check_columns(params.source, params.bant)
    assert set(headers) == set(params.source.tables.present())
    assert params.source.tables.deals.id in headers["deals"]


def test_written_deals_read_back_as_they_were(project: Project, tmp_path: Path) -> None:
    deals = project.deals()
    write_deals(deals, tmp_path / "validated", tmp_path / "rejects.csv")
    again = read_deals(tmp_path / "validated", tmp_path / "rejects.csv")
    pd.testing.assert_frame_equal(again.frame, deals.frame)
    assert again.kinds == deals.kinds and again.candidates == deals.candidates
    assert again.summary == deals.summary and again.excluded == deals.excluded
    assert (again.activities is None) == (deals.activities is None)
    assert len(again.rejects) == len(deals.rejects)


# --- the sources' own quirks ------------------------------------------------------


SYNTHETIC_CFG = SyntheticConfig(n_deals=1500, n_accounts=300, activities_per_deal=3)


@pytest.fixture(scope="module")
def synthetic_params() -> Params:
    raw = read_params_file(Path(__file__).resolve().parents[1] / "params.yaml")
    return parse_params(raw)


@pytest.fixture(scope="module")
def clean_crm() -> SyntheticCRM:
    return generate_crm(SYNTHETIC_CFG, seed=3, dirty_fraction=0.0)


@pytest.fixture(scope="module")
def dirty_crm() -> SyntheticCRM:
    return generate_crm(SYNTHETIC_CFG, seed=3, dirty_fraction=0.02)


def crm_tables(crm: SyntheticCRM) -> dict[str, pd.DataFrame]:
    return {"deals": crm.deals, "accounts": crm.accounts, "activities": crm.activities}


def test_the_clean_synthetic_crm_passes_entirely(
    clean_crm: SyntheticCRM, synthetic_params: Params
) -> None:
    deals = load_deals(
        synthetic_params.source, synthetic_params.bant, crm_tables(clean_crm)
    )
    assert deals.rejects.empty, deals.rejects["reason"].head()
    assert len(deals.frame) == len(clean_crm.deals)
    assert deals.activities is not None
    assert len(deals.activities) == len(clean_crm.activities)


def _expected_deal_reasons(dirty: pd.DataFrame, n_clean: int) -> dict[int, str]:
    """The reason each spoiled synthetic deal must get, in the loader's check order:
    bounds, outcome value, dates, then a repeated id."""
    expected: dict[int, str] = {}
    first_valid: dict[str, int] = {}
    columns = ("deal_id", "amount", "outcome", "created_at", "closed_at")
    rows: list[tuple[Any, ...]] = list(zip(*(dirty[c] for c in columns), strict=True))
    for row, (deal_id, amount, outcome, created, closed) in enumerate(rows):
        if amount < 0:
            expected[row] = "amount is below 0 (-1)"
        elif outcome == "pending":
            expected[row] = "outcome 'pending' is not one of won, lost, open"
        elif pd.notna(closed) and closed < created:
            expected[row] = "closed_at is before created_at"
        elif deal_id in first_valid:
            first = first_valid[deal_id]
            expected[row] = f"duplicate deal_id '{deal_id}' (first seen at row {first})"
        else:
            first_valid[deal_id] = row
    assert all(row < n_clean or row in expected for row in range(len(dirty)))
    return expected


def test_exactly_the_spoiled_synthetic_rows_are_rejected_with_their_reasons(
    dirty_crm: SyntheticCRM, clean_crm: SyntheticCRM, synthetic_params: Params
) -> None:
    source, bant = synthetic_params.source, synthetic_params.bant
    deals = load_deals(source, bant, crm_tables(dirty_crm))
    rejects = deals.rejects
    deal_rejects = rejects[rejects["table"] == "deals"]
    found = dict(
        zip(deal_rejects["row"].astype(int), deal_rejects["reason"], strict=True)
    )
    expected = _expected_deal_reasons(dirty_crm.deals, len(clean_crm.deals))
    assert found == expected
    kinds = {reason.split(" (")[0].split(" '")[0] for reason in expected.values()}
    assert kinds == {
        "amount is below 0",
        "outcome",
        "closed_at is before created_at",
        "duplicate deal_id",
    }
    log = dirty_crm.activities
    valid_ids = set(deals.frame["deal_id"])
    orphans = ~log["deal_id"].isin(valid_ids).to_numpy()
    assert (log["deal_id"] == "D9999999").sum() > 0
    activity_rejects = rejects[rejects["table"] == "activities"]
    assert sorted(activity_rejects["row"].astype(int)) == list(np.flatnonzero(orphans))
    assert set(activity_rejects["reason"]) == {
        "deal_id not found among the valid deals"
    }
    assert deals.summary["accounts_rejected"] == 0


def test_maven_open_deals_without_an_account_are_kept_and_counted(
    maven_project: Project,
) -> None:
    deals, source = maven_project.deals(), maven_project.params.source
    tables = project_tables(maven_project)
    frame = deals.frame
    accounts = tables["accounts"]["account"]
    raw = tables["deals"]
    no_account = ~raw["account"].isin(accounts).to_numpy()
    assert deals.summary["deals_without_account"] == no_account.sum() > 0
    assert deals.summary["rejected"] == 0
    ids = set(raw.loc[no_account, "opportunity_id"])
    without = frame[frame["deal_id"].isin(ids)]
    assert len(without) == no_account.sum()
    assert set(without["outcome"]) == {"open"}
    account_columns = [c for c in tables["accounts"].columns if c != "account"]
    assert without[account_columns].isna().all().all()
    assert "account" not in deals.candidates
    assert source.tables.accounts is not None
    with_account = frame[~frame["deal_id"].isin(ids)]
    assert with_account["sector"].notna().all()


def test_x_education_select_is_read_as_missing(x_education_project: Project) -> None:
    deals = x_education_project.deals()
    raw = project_tables(x_education_project)["deals"]
    frame = deals.frame
    for column in ("Specialization", "City", "How did you hear about X Education"):
        unanswered = raw[column].isna() | raw[column].eq("Select")
        assert raw[column].eq("Select").any()
        assert frame[column].isna().tolist() == unanswered.tolist()
    for column in deals.candidates:
        assert not frame[column].astype("string").eq("Select").any(), column
    # no created date: the sequential Lead Number orders the deals
    assert frame["created_at"].isna().all()
    assert frame["order"].tolist() == raw["Lead Number"].astype(float).tolist()


# --- the rules, on small exports ------------------------------------------------------


def export(n: int = 8) -> pd.DataFrame:
    """A small export: ids, a stage with won/lost/open, dates, a few features."""
    return pd.DataFrame(
        {
            "Deal Id": [f"D{i}" for i in range(n)],
            "stage": (["Won", "Lost", "Open", "Won"] * n)[:n],
            "created": pd.date_range("2024-01-01", periods=n).strftime("%Y-%m-%d"),
            "closed": pd.date_range("2024-06-01", periods=n).strftime("%Y-%m-%d"),
            "revenue": [str(100 * (i + 1)) for i in range(n)],
            "region": (["EU", "US"] * n)[:n],
            "newsletter": (["Yes", "No", "No", "Yes"] * n)[:n],
            "pain": (["yes", "no"] * n)[:n],
        }
    )


BASE_SOURCE: dict[str, Any] = {
    "tables": {"deals": {"path": "deals.csv", "id": "Deal Id", "created": "created"}},
    "outcome": {"column": "stage", "won": ["Won"], "lost": ["Lost"]},
}
BASE_BANT: dict[str, Any] = {
    "letters": {"budget": "revenue >= 300", "need": "pain == 'yes'"},
    "threshold": 1,
}


def params_for(folder: Path, **changes: Any) -> Params:
    """Params reading the tables of ``folder`` (deals.csv and any others named)."""
    raw = merged({"source": BASE_SOURCE, "bant": BASE_BANT}, changes)
    for table in raw["source"]["tables"].values():
        table["path"] = str(folder / Path(table["path"]).name)
    return parse_params(raw)


def load(
    folder: Path,
    deals: pd.DataFrame,
    others: dict[str, pd.DataFrame] | None = None,
    **changes: Any,
) -> Deals:
    """Write the export as CSV files in ``folder`` and load it as the pipeline does."""
    params = params_for(folder, **changes)
    frames = {"deals": deals, **(others or {})}
    tables = {}
    for name, table in params.source.tables.present().items():
        frames[name].to_csv(table.path, index=False)
        key = f"source.tables.{name}.path"
        tables[name] = read_table(table.path, key, dialect(table, name))
    return load_deals(params.source, params.bant, tables)


def reasons_of(deals: Deals, table: str = "deals") -> dict[int, str]:
    part = deals.rejects[deals.rejects["table"] == table]
    return dict(zip(part["row"].astype(int), part["reason"], strict=True))


def test_outcomes_are_labelled_and_roles_take_lead_ml_names(tmp_path: Path) -> None:
    loaded = load(
        tmp_path, export(), source={"tables": {"deals": {"amount": "revenue"}}}
    )
    frame = loaded.frame
    assert frame["outcome"].tolist()[:4] == ["won", "lost", "open", "won"]
    assert frame["won"].tolist()[:4] == [1, 0, pd.NA, 1]
    assert frame["won"].dtype == "Int8"
    assert frame["created_at"].dtype == np.dtype("datetime64[ms]")
    assert frame["amount"].tolist() == [100.0 * (i + 1) for i in range(8)]
    assert frame["deal_id"].tolist() == [f"D{i}" for i in range(8)]
    assert "revenue" not in loaded.candidates and "stage" not in frame
    assert loaded.excluded["revenue"] == "its role is source.tables.deals.amount"


def test_bad_deal_rows_are_rejected_with_one_reason_each(tmp_path: Path) -> None:
    deals = export()
    deals.loc[1, "Deal Id"] = "D0"  # repeated id
    deals.loc[3, "Deal Id"] = None
    deals.loc[4, "revenue"] = "lots"  # declared number below
    deals.loc[5, "created"] = None  # a closed deal with no created date
    deals.loc[7, "closed"] = "2023-12-31"  # closed before created
    deals.loc[6, "created"] = None  # an open deal may lack its created date
    deals.loc[6, "stage"] = "Open"
    loaded = load(
        tmp_path,
        deals,
        source={
            "types": {"revenue": "number"},
            "tables": {"deals": {"closed": "closed"}},
        },
    )
    assert reasons_of(loaded) == {
        1: "duplicate Deal Id 'D0' (first seen at row 0)",
        3: "Deal Id is missing",
        4: "revenue is not a number: 'lots'",
        5: "closed deal with no created (created)",
        7: "closed is before created",
    }
    assert loaded.summary["deals"] + 5 == len(deals) == loaded.summary["rows_in"]
    assert set(loaded.rejects["table"]) == {"deals"}


def test_listed_open_values_reject_every_other_value(tmp_path: Path) -> None:
    deals = export().assign(
        stage=["Won", "Lost", "Open", "Pending", "Won", "Lost", "Open", "Won"]
    )
    listed = load(tmp_path, deals, source={"outcome": {"open": ["Open"]}})
    assert reasons_of(listed) == {3: "stage 'Pending' is not one of Won, Lost, Open"}
    unlisted = load(tmp_path, deals)
    assert unlisted.frame["outcome"].tolist()[3] == "open"
    assert unlisted.rejects.empty


def test_numeric_outcome_values_match_the_text_the_file_holds(tmp_path: Path) -> None:
    deals = export().assign(stage=[1, 0, 1, 0, 1, 0, 1, 0])
    path = tmp_path / "deals.parquet"
    deals.to_parquet(path, index=False)  # typed: stage is an integer column
    params = params_for(
        tmp_path,
        source={
            "tables": {"deals": {"path": "deals.parquet"}},
            "outcome": {"won": [1], "lost": [0]},
        },
    )
    loaded = load_deals(params.source, params.bant, {"deals": pd.read_parquet(path)})
    assert loaded.frame["won"].tolist() == [1, 0] * 4


def test_a_won_value_that_never_occurs_lists_the_values(tmp_path: Path) -> None:
    with pytest.raises(ContractError) as caught:
        load(tmp_path, export(), source={"outcome": {"won": ["won"]}})
    message = str(caught.value)
    assert message.startswith("source.outcome.won: no deal in ")
    assert "'Won' (4)" in message and "'Lost' (2)" in message


def test_a_declared_kind_no_value_reads_as_is_a_contract_error(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"deals\.csv: no value of column 'region'"):
        load(tmp_path, export(), source={"types": {"region": "number"}})


def test_placeholders_are_missing_and_free_text_is_left_out(tmp_path: Path) -> None:
    deals = export(60).assign(
        region=["EU", "Select"] * 30, notes=[f"called on day {i}" for i in range(60)]
    )
    loaded = load(tmp_path, deals, source={"missing_values": ["Select"]})
    assert loaded.frame["region"].isna().sum() == 30
    assert "notes" not in loaded.candidates and "notes" not in loaded.frame
    assert "free text or an identifier (60 distinct values" in loaded.excluded["notes"]
    kept = load(tmp_path, deals, source={"types": {"notes": "category"}})
    assert "notes" in kept.candidates


def test_features_never_see_forbidden_or_ignored_columns(tmp_path: Path) -> None:
    deals = export().assign(close_value=[0, 5, 0, 9, 0, 3, 0, 1])
    source: dict[str, Any] = {"forbidden": ["close_value"], "ignore": ["newsletter"]}
    before = load(tmp_path, deals, source=source)
    changed = deals.assign(close_value=np.arange(8) * 1000)
    after = load(tmp_path, changed, source=source)
    assert "close_value" not in before.frame and "newsletter" not in before.frame
    pd.testing.assert_frame_equal(before.frame, after.frame)
    assert before.excluded["close_value"].startswith("listed under source.forbidden")


def test_the_rule_may_read_an_ignored_column_that_is_no_feature(tmp_path: Path) -> None:
    loaded = load(tmp_path, export(), source={"ignore": ["pain"]})
    assert "pain" not in loaded.candidates
    assert loaded.frame["pain"].tolist() == ["yes", "no"] * 4


def test_dimensions_default_to_other(tmp_path: Path) -> None:
    params = params_for(tmp_path, source={"dimensions": {"revenue": "fit"}})
    loaded = load(tmp_path, export(), source={"dimensions": {"revenue": "fit"}})
    dimensions = loaded.dimensions(params.source)
    assert dimensions["revenue"] == "fit" and dimensions["region"] == "other"


def test_a_column_named_like_a_lead_ml_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'won' has a name lead-ml uses") as caught:
        load(tmp_path, export().rename(columns={"region": "won"}))
    assert "source.ignore" in str(caught.value)
    as_id = export().rename(columns={"Deal Id": "deal_id"})
    loaded = load(tmp_path, as_id, source={"tables": {"deals": {"id": "deal_id"}}})
    assert loaded.summary["deals"] == len(as_id)
    ignored = load(
        tmp_path,
        export().rename(columns={"region": "order"}),
        source={"ignore": ["order"]},
    )
    assert ignored.frame["order"].isna().all()  # lead-ml's own, empty order column


def test_accounts_are_joined_and_repeated_accounts_reported(tmp_path: Path) -> None:
    keys = pd.Series(["A", "B", "A", "C", None, "A", "B", "A"], dtype="string")
    deals = export().assign(account=keys)
    accounts = pd.DataFrame(
        {"name": ["A", "B", "B"], "sector": ["tech", "retail", "food"]}
    )
    loaded = load(
        tmp_path,
        deals,
        {"accounts": accounts},
        source={
            "tables": {
                "accounts": {"path": "accounts.csv", "key": "account", "id": "name"}
            }
        },
    )
    assert loaded.frame["sector"].tolist()[:5] == [
        "tech",
        "retail",
        "tech",
        pd.NA,
        pd.NA,
    ]
    assert loaded.summary["deals_without_account"] == 2  # C and the empty key
    assert reasons_of(loaded, "accounts") == {2: "repeated name: first row kept"}
    assert loaded.summary["accounts_in"] == 3
    assert "account" not in loaded.candidates and "sector" in loaded.candidates


def test_activities_are_standardised_and_unusable_rows_rejected(tmp_path: Path) -> None:
    log = pd.DataFrame(
        {
            "deal": ["D0", "D1", "D9", "D2", "D3", None],
            "when": [
                "2024-01-02",
                "yesterday",
                "2024-01-03",
                "2024-01-04T10:00:00Z",
                "2024-01-05",
                "2024-01-05",
            ],
            "what": ["email", "call", "call", "demo", "", "call"],
        }
    )
    activities = {"path": "log.csv", "key": "deal", "timestamp": "when", "type": "what"}
    loaded = load(
        tmp_path,
        export(),
        {"activities": log},
        source={"tables": {"activities": activities}},
    )
    assert loaded.activities is not None
    assert list(loaded.activities.columns) == ["deal_id", "timestamp", "activity_type"]
    assert loaded.activities["deal_id"].tolist() == ["D0", "D2"]
    assert loaded.activities["timestamp"].tolist()[1] == pd.Timestamp(
        "2024-01-04 10:00"
    )
    assert reasons_of(loaded, "activities") == {
        1: "when is not an ISO 8601 date: 'yesterday'",
        2: "deal not found among the valid deals",
        4: "what is missing",
        5: "deal is missing",
    }
    back = source_activities(
        loaded.activities,
        params_for(tmp_path, source={"tables": {"activities": activities}}).source,
    )
    assert list(back.columns) == ["deal", "when", "what"]
    with pytest.raises(ConfigError, match="has no activity log"):
        source_activities(loaded.activities, params_for(tmp_path).source)


def test_an_order_column_must_put_deals_in_time_order(tmp_path: Path) -> None:
    deals = export().assign(seq=[str(i * 10) for i in range(8)])
    by_order = {"created": None, "order": "seq"}
    loaded = load(tmp_path, deals, source={"tables": {"deals": by_order}})
    assert loaded.frame["order"].tolist() == [i * 10.0 for i in range(8)]
    with pytest.raises(ConfigError, match="source.tables.deals.order: column 'region'"):
        load(
            tmp_path,
            deals,
            source={"tables": {"deals": {"created": None, "order": "region"}}},
        )


def test_typed_parquet_columns_keep_their_kind(tmp_path: Path) -> None:
    deals = export().assign(
        revenue=np.arange(8, dtype=float) * 100,
        created=pd.date_range("2024-01-01", periods=8, freq="D"),
        newsletter=[True, False] * 4,
    )
    path = tmp_path / "deals.parquet"
    deals.to_parquet(path, index=False)
    params = params_for(
        tmp_path, source={"tables": {"deals": {"path": "deals.parquet"}}}
    )
    loaded = load_deals(params.source, params.bant, {"deals": read_table(path, "x")})
    kinds = {c: loaded.kinds[c].kind for c in ("revenue", "newsletter", "region")}
    assert kinds == {"revenue": "number", "newsletter": "bool", "region": "category"}
    assert loaded.frame["created_at"].dtype == np.dtype("datetime64[ms]")


def test_csv_and_parquet_exports_give_the_same_deals(
    tmp_path: Path, dirty_crm: SyntheticCRM, synthetic_params: Params
) -> None:
    loaded = {}
    for fmt in ("csv", "parquet"):
        write_crm(dirty_crm, tmp_path / fmt, fmt)
        tables = {
            name: read_table(tmp_path / fmt / f"{name}.{fmt}", name)
            for name in ("deals", "accounts", "activities")
        }
        loaded[fmt] = load_deals(synthetic_params.source, synthetic_params.bant, tables)
    csv, parquet = loaded["csv"], loaded["parquet"]
    pd.testing.assert_frame_equal(csv.frame, parquet.frame)
    assert csv.activities is not None and parquet.activities is not None
    pd.testing.assert_frame_equal(csv.activities, parquet.activities)
    pd.testing.assert_frame_equal(
        csv.rejects[["table", "row", "reason"]],
        parquet.rejects[["table", "row", "reason"]],
    )
    assert {c: k.kind for c, k in csv.kinds.items()} == {
        c: k.kind for c, k in parquet.kinds.items()
    }


def test_inputs_are_not_mutated(tmp_path: Path) -> None:
    deals = export()
    deals.loc[2, "revenue"] = "x"
    params = params_for(tmp_path)
    tables = {"deals": deals.astype("string")}
    before = tables["deals"].copy()
    load_deals(params.source, params.bant, tables)
    pd.testing.assert_frame_equal(tables["deals"], before)


def test_no_rejects_still_writes_a_rejects_header(tmp_path: Path) -> None:
    loaded = load(tmp_path, export())
    write_deals(loaded, tmp_path / "validated", tmp_path / "rejects.csv")
    assert (tmp_path / "rejects.csv").read_text().strip() == "table,row,reason"
    assert read_deals(tmp_path / "validated").activities is None


# --- reading the files ------------------------------------------------------------


def test_copy_table_keeps_parquet_bytes_and_csv_text(tmp_path: Path) -> None:
    params = params_for(
        tmp_path, source={"tables": {"deals": {"path": "deals.parquet"}}}
    )
    export().assign(revenue=np.arange(8.0)).to_parquet(tmp_path / "deals.parquet")
    assert (
        copy_table(params.source.tables.deals, "deals", tmp_path / "copy.parquet") == 8
    )
    assert (tmp_path / "copy.parquet").read_bytes() == (
        tmp_path / "deals.parquet"
    ).read_bytes()
    export().to_csv(tmp_path / "deals.csv", index=False)
    csv = params_for(tmp_path).source.tables.deals
    copy_table(csv, "deals", tmp_path / "csv.parquet")
    copied = pd.read_parquet(tmp_path / "csv.parquet")
    assert copied["revenue"].tolist() == [str(100 * (i + 1)) for i in range(8)]


def test_a_missing_source_file_names_its_key(tmp_path: Path) -> None:
    params = params_for(tmp_path)
    with pytest.raises(
        ContractError, match=r"deals\.csv \(source\.tables\.deals\.path\): no such"
    ):
        copy_table(params.source.tables.deals, "deals", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    with pytest.raises(ContractError, match="the deals table has not been read"):
        read_tables(params.source, tmp_path / "tables")


def test_check_columns_lists_every_unknown_column_with_a_suggestion(
    tmp_path: Path,
) -> None:
    export().to_csv(tmp_path / "deals.csv", index=False)
    pd.DataFrame({"name": ["A"], "sector": ["tech"]}).to_csv(
        tmp_path / "accounts.csv", index=False
    )
    pd.DataFrame({"deal": ["D0"], "when": ["2024-01-01"], "kind": ["x"]}).to_csv(
        tmp_path / "log.csv", index=False
    )
    params = params_for(
        tmp_path,
        source={
            "tables": {
                "deals": {"closed": "closd"},
                "accounts": {"path": "accounts.csv", "key": "region", "id": "nam"},
                "activities": {
                    "path": "log.csv",
                    "key": "deal",
                    "timestamp": "when",
                    "type": "what",
                },
            },
            "ignore": ["regoin"],
            "dimensions": {"revnue": "fit"},
            "bounds": {"sectr": {"min": 0}},
        },
        bant={"letters": {"need": "`Pain` == 'yes'"}},
    )
    with pytest.raises(ConfigError) as caught:
        check_columns(params.source, params.bant)
    message = str(caught.value)
    assert message.startswith("source: 7 problem(s)")
    for said in (
        "source.tables.accounts.id: no column 'nam' in ",
        "(did you mean 'name'?)",
        "source.tables.activities.type: no column 'what' in ",
        "source.tables.deals.closed: no column 'closd' in ",
        "(did you mean 'closed'?)",
        "source.ignore: no column 'regoin' in ",
        "(did you mean 'region'?)",
        "source.dimensions.revnue: no column 'revnue'",
        "source.bounds.sectr: no column 'sectr'",
        "(did you mean 'sector'?)",
        "bant.letters.need (\"`Pain` == 'yes'\"): no column 'Pain'",
        "(did you mean 'pain'?)",
    ):
        assert said in message, said


def test_check_columns_names_account_columns_also_in_the_deals(tmp_path: Path) -> None:
    export().assign(account="A").to_csv(tmp_path / "deals.csv", index=False)
    pd.DataFrame({"account": ["A"], "region": ["EU"]}).to_csv(
        tmp_path / "accounts.csv", index=False
    )
    params = params_for(
        tmp_path,
        source={"tables": {"accounts": {"path": "accounts.csv", "key": "account"}}},
    )
    with pytest.raises(
        ConfigError, match=r"source.tables.accounts.columns: \['region'\]"
    ):
        check_columns(params.source)


def test_check_columns_of_a_missing_file_is_a_contract_error(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"source\.tables\.deals\.path"):
        check_columns(params_for(tmp_path).source)


# --- any input: only the user's errors, always reconciled ----------------------------

GARBAGE = st.one_of(
    st.none(),
    st.text(max_size=6),
    st.sampled_from(
        [
            "",
            " ",
            "nan",
            "NA",
            "2024-02-30",
            "1e400",
            "-0",
            "Won",
            "Lost",
            "D1",
            "Select",
        ]
    ),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.dates().map(str),
)
CELLS = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7), GARBAGE), max_size=12)
PROPERTY = params_for(
    Path("export"),
    source={
        "tables": {
            "deals": {"closed": "closed"},
            "activities": {
                "path": "log.csv",
                "key": "deal",
                "timestamp": "when",
                "type": "what",
            },
        },
        "bounds": {"revenue": {"min": 0}},
        "missing_values": ["Select"],
    },
)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(deal_cells=CELLS, log_cells=CELLS)
def test_any_export_loads_or_says_why_and_always_reconciles(
    deal_cells: list[tuple[int, int, str | None]],
    log_cells: list[tuple[int, int, str | None]],
) -> None:
    deals = export().astype("string")
    log = pd.DataFrame(
        {
            "deal": [f"D{i}" for i in range(8)],
            "when": ["2024-01-05"] * 8,
            "what": ["call"] * 8,
        },
        dtype="string",
    )
    for frame, cells in ((deals, deal_cells), (log, log_cells)):
        for row, column, value in cells:
            frame.iloc[row, column % frame.shape[1]] = value
    tables = {"deals": deals, "activities": log}
    try:
        loaded = load_deals(PROPERTY.source, PROPERTY.bant, tables)
    except (ContractError, ConfigError):
        return
    summary = loaded.summary
    assert summary["rows_in"] == 8 == summary["deals"] + summary["rejected"]
    assert summary["activities_in"] == 8
    assert summary["activities"] + summary["activities_rejected"] == 8
    assert loaded.rejects["reason"].notna().all()
    assert loaded.frame["deal_id"].is_unique


# --- real export shapes: dialects, no id column, an outcome table, joins ------------


def test_a_missing_column_says_how_the_file_was_read_and_what_to_set(
    tmp_path: Path,
) -> None:
    export().to_csv(tmp_path / "deals.csv", sep=";", index=False)
    params = params_for(tmp_path, source={"tables": {"deals": {"sep": ","}}})
    with pytest.raises(ConfigError) as caught:
        check_columns(params.source, params.bant)
    path = tmp_path / "deals.csv"
    assert (
        f"source.tables.deals.id: no column 'Deal Id' in {path} (read with sep ','; "
        "the header looks ';'-separated: set source.tables.deals.sep)"
    ) in str(caught.value)
    detected = params_for(tmp_path)  # the default: the separator is detected
    assert check_columns(detected.source, detected.bant)["deals"] == list(export())


def test_a_row_number_id_numbers_the_deals_and_may_order_them(tmp_path: Path) -> None:
    deals = export().drop(columns=["Deal Id"])
    row_id = {"id": {"row_number": True}, "created": None, "order": "row_number"}
    loaded = load(tmp_path, deals, source={"tables": {"deals": row_id}})
    frame = loaded.frame
    assert frame["deal_id"].tolist() == [str(i) for i in range(1, 9)]
    assert frame["order"].tolist() == [float(i) for i in range(1, 9)]
    assert "row_number" not in loaded.candidates
    assert (
        lead_rows(
            frame, params_for(tmp_path, source={"tables": {"deals": row_id}}).source
        ).columns[0]
        == "row_number"
    )


def test_an_order_that_is_a_numeric_id_is_an_order_even_declared_a_number(
    tmp_path: Path,
) -> None:
    deals = export().assign(**{"Deal Id": [str(10 + i) for i in range(8)]})
    for types in ({}, {"Deal Id": "number"}):
        by_id = {"created": None, "order": "Deal Id"}
        loaded = load(
            tmp_path, deals, source={"tables": {"deals": by_id}, "types": types}
        )
        assert loaded.frame["order"].tolist() == [10.0 + i for i in range(8)]
        assert loaded.frame["deal_id"].tolist() == [str(10 + i) for i in range(8)]
    with pytest.raises(ConfigError, match="column 'Deal Id' holds category values"):
        load(tmp_path, export(), source={"tables": {"deals": by_id}, "types": {}})


def _closed_source(**outcome: Any) -> dict[str, Any]:
    return {
        "tables": {"closed": {"path": "closed.csv", "key": "Deal Id", "id": "deal"}},
        "outcome": {"table": "closed", "column": None, "won": None, "lost": None}
        | outcome,
    }


def test_won_is_a_key_in_the_closed_deals_table(tmp_path: Path) -> None:
    deals = export().drop(columns=["stage"])
    closed = pd.DataFrame({"deal": ["D1", "D3", "D3", None, "X9"]})
    loaded = load(tmp_path, deals, {"closed": closed}, source=_closed_source())
    assert (
        loaded.frame["outcome"].tolist()
        == ["lost", "won", "lost", "won"] + ["lost"] * 4
    )
    assert reasons_of(loaded, "closed") == {
        2: "repeated deal: first row kept",
        3: "deal is missing",
    }
    summary = loaded.summary
    assert (summary["closed_in"], summary["closed_rejected"]) == (5, 2)
    assert summary["closed_without_deal"] == 1  # X9
    none = pd.DataFrame({"deal": ["Y1"]})
    with pytest.raises(ContractError, match="no deal's Deal Id"):
        load(tmp_path, deals, {"closed": none}, source=_closed_source())


def test_the_outcome_is_a_status_column_of_another_table(tmp_path: Path) -> None:
    deals = export().drop(columns=["stage"])
    closed = pd.DataFrame(
        {"deal": ["D0", "D1", "D2", "D3"], "status": ["Won", "Lost", "Lost", "Odd"]}
    )
    outcome = {"column": "status", "won": ["Won"], "lost": ["Lost"], "absent": "open"}
    loaded = load(tmp_path, deals, {"closed": closed}, source=_closed_source(**outcome))
    assert (
        loaded.frame["outcome"].tolist()
        == ["won", "lost", "lost", "open"] + ["open"] * 4
    )
    strict = outcome | {"open": []}
    loaded = load(tmp_path, deals, {"closed": closed}, source=_closed_source(**strict))
    path = tmp_path / "closed.csv"
    assert reasons_of(loaded) == {3: f"status 'Odd' in {path} is not one of Won, Lost"}
    assert "status" not in loaded.frame


def test_further_tables_join_many_to_one_by_key(tmp_path: Path) -> None:
    keys = pd.Series(["P1", "P2", "P1", "P9", None, "P1", "P2", "P1"], dtype="string")
    deals = export().assign(product=keys)
    products = pd.DataFrame(
        {
            "product": ["P1", "P2", "P2"],
            "series": ["GTX", "MG", "XX"],
            "price": ["5", "9", "1"],
        }
    )
    loaded = load(
        tmp_path,
        deals,
        {"products": products},
        source={"tables": {"products": {"path": "products.csv", "key": "product"}}},
    )
    frame = loaded.frame
    assert frame["series"].tolist()[:5] == ["GTX", "MG", "GTX", pd.NA, pd.NA]
    assert loaded.kinds["price"].kind == "number"
    assert "product" in loaded.candidates  # a key that is a feature stays one
    assert reasons_of(loaded, "products") == {2: "repeated product: first row kept"}
    assert loaded.summary["deals_without_products"] == 2
    assert loaded.summary["products_in"] == 3
    joined = {"tables": {"products": {"path": "products.csv", "key": "product"}}}
    params = params_for(tmp_path, source=joined | {"dimensions": {"series": "fit"}})
    assert check_columns(params.source)["products"] == ["product", "series", "price"]
    typo = {"tables": {"products": {"path": "products.csv", "key": "prodcut"}}}
    with pytest.raises(ConfigError, match="source.tables.products.key: no column"):
        check_columns(params_for(tmp_path, source=typo).source)


def test_source_settings_for_real_exports_are_checked() -> None:
    deals = {"path": "d.csv", "id": {"row_number": True, "name": "lead"}, "sep": "tab"}
    source = merged(BASE_SOURCE, {"tables": {"deals": deals}})
    parsed = parse_params({"source": source, "bant": BASE_BANT}).source.tables.deals
    assert (parsed.id, parsed.row_number, parsed.sep) == ("lead", True, "\t")
    for bad, said in (
        ({"deals": {"id": {"row_number": False}}}, "{row_number: true}"),
        ({"deals": {"id": {"row_number": True, "name": "row"}}}, "'row' is a name"),
        ({"deals": {"sep": ":"}}, "source.tables.deals.sep"),
        ({"deals": {"encoding": "klingon"}}, "not a text encoding"),
        ({"deals": {"decimal": ";"}}, "source.tables.deals.decimal"),
        ({"bad name": {"path": "x.csv", "key": "k"}}, "a table name is a letter"),
    ):
        raw = {"source": merged(BASE_SOURCE, {"tables": bad}), "bant": BASE_BANT}
        with pytest.raises(ConfigError, match=re.escape(said)):
            parse_params(raw)
    for outcome, said in (
        ({"table": "nope", "column": None, "won": None, "lost": None}, "'nope' is not"),
        ({"table": None, "column": "stage", "won": None}, "won: required"),
    ):
        raw = {"source": merged(BASE_SOURCE, {"outcome": outcome}), "bant": BASE_BANT}
        with pytest.raises(ConfigError, match=re.escape(said)):
            parse_params(raw)
