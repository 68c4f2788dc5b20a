"""The crm: section (bring your own CRM): config errors, kinds, rows, joins, BANT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from lead_ml import crm as crm_module
from lead_ml.cli import app
from lead_ml.config import ConfigError, Params, load_params, parse_params
from lead_ml.crm import (
    CrmConfig,
    bant_rule,
    check_columns,
    evaluate_bant,
    infer_kind,
    load_crm,
)
from lead_ml.schema import ContractError

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXAMPLES = sorted((ROOT / "examples").glob("*/params.yaml"))
needs_data = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"needs the real data sets in {SHARED} (../shared/data beside the "
    "project); it is absent",
)
runner = CliRunner()


def _deals(n: int = 8) -> pd.DataFrame:
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


def _config(tmp_path: Path, export: pd.DataFrame, **changes: Any) -> CrmConfig:
    """A crm section reading ``export`` from a CSV in tmp_path, changes merged."""
    path = tmp_path / "deals.csv"
    export.to_csv(path, index=False)
    raw: dict[str, Any] = {
        "deals": {"path": str(path), "id": "Deal Id", "created": "created"},
        "outcome": {"column": "stage", "won": ["Won"], "lost": ["Lost"]},
        "bant": {"letters": {"budget": "revenue >= 300", "need": "pain == 'yes'"}},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return CrmConfig.model_validate(raw)


def _config_error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    return str(caught.value)


BASE: dict[str, Any] = {
    "deals": {"path": "deals.csv", "id": "id"},
    "outcome": {"column": "stage", "won": ["Won"], "lost": ["Lost"]},
    "bant": {"letters": {"budget": "revenue >= 1"}},
}


def _with(**changes: Any) -> dict[str, Any]:
    return {"crm": {**BASE, **changes}}


# --- the params section -------------------------------------------------------------


def test_no_crm_section_means_the_synthetic_crm() -> None:
    assert Params().crm is None
    assert load_params(ROOT / "params.yaml").crm is None


@pytest.mark.parametrize(
    ("crm", "key", "expected"),
    [
        ({"deals": {"path": "d.csv"}}, "crm.deals.id", "Field required"),
        (
            {"outcome": {"column": "s", "won": ["Won"], "lost": ["Won"]}},
            "crm.outcome",
            "both won and lost",
        ),
        (
            {"outcome": {"column": "s", "won": [True], "lost": ["No"]}},
            "crm.outcome.won",
            "quote the value",
        ),
        ({"bant": {"letters": {"budgett": "a > 1"}}}, "crm.bant.letters", "budgett"),
        ({"bant": {"letters": {"need": "pain =="}}}, "crm.bant.letters", "'need'"),
        ({"bant": {"letters": {"need": "a > 1"}, "share": 1.5}}, "crm.bant.share", ""),
        ({"dimensions": {"visits": "engagment"}}, "crm.dimensions", "engagment"),
        ({"types": {"visits": "integer"}}, "crm.types.visits", "number"),
        ({"forbidden": ["x"], "allowed": ["x"]}, "crm.allowed", "crm.forbidden"),
        ({"ignore": ["x"], "dimensions": {"x": "fit"}}, "crm.dimensions.x", "ignore"),
        ({"dimensions": {"id": "fit"}}, "crm.dimensions.id", "crm.deals.id"),
        (
            {
                "forbidden": ["won_value"],
                "bant": {"letters": {"need": "won_value > 0"}},
            },
            "crm.bant.letters.need",
            "after the outcome",
        ),
        (
            {"deals": {"path": "d.csv", "id": "id", "created": "d", "closed": "d"}},
            "crm.deals.closed and crm.deals.created",
            "both name",
        ),
        ({"colour": "red"}, "crm.colour", "Extra inputs"),
    ],
)
def test_config_errors_name_the_key(
    crm: dict[str, Any], key: str, expected: str
) -> None:
    message = _config_error(_with(**crm))
    assert key in message
    assert expected in message


def test_sequential_id_may_also_be_the_order_column() -> None:
    deals = {"path": "d.csv", "id": "Lead Number", "order": "Lead Number"}
    assert parse_params(_with(deals=deals)).crm is not None


def test_share_of_letters_sets_the_threshold() -> None:
    three = {"letters": dict.fromkeys(["budget", "need", "timeline"], "a > 1")}
    crm = CrmConfig.model_validate({**BASE, "bant": {**three, "share": 0.6}})
    assert crm_module.bant_config(crm).threshold == pytest.approx(1.8)  # two of three


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_params_parse(example: Path) -> None:
    crm = load_params(example).crm
    assert crm is not None
    assert str(crm.deals.path).startswith("../shared/data/")


@needs_data
@pytest.mark.realdata
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_validate_with_check_config(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # example paths are relative to the project root
    result = runner.invoke(app, ["check-config", "--params", str(example)])
    assert result.exit_code == 0, result.output
    assert "valid; every column it names is in the files" in result.output


def test_check_config_without_data_reads_no_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_with()))
    offline = runner.invoke(app, ["check-config", "-p", str(params), "--no-data"])
    assert offline.exit_code == 0, offline.output
    online = runner.invoke(app, ["check-config", "-p", str(params)])
    assert online.exit_code == 2
    assert "crm.deals.path" in online.output
    assert "no such file" in online.output
    assert "Traceback" not in online.output


def test_check_config_lists_every_unknown_column_with_a_suggestion(
    tmp_path: Path,
) -> None:
    crm = _config(
        tmp_path,
        _deals(),
        ignore=["regoin"],
        dimensions={"revnue": "fit"},
        bant={"letters": {"need": "`Pain` == 'yes'"}},
    )
    with pytest.raises(ConfigError) as caught:
        check_columns(crm)
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert "crm.ignore: no column 'regoin'" in message
    assert "(did you mean 'region'?)" in message
    assert "crm.dimensions.revnue: no column 'revnue'" in message
    assert "crm.bant.letters.need: no column 'Pain'" in message


def test_check_config_on_bad_yaml_is_one_message(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_with(dimensions={"visits": "engagment"})))
    result = runner.invoke(app, ["check-config", "--params", str(params)])
    assert result.exit_code == 2
    assert "crm.dimensions" in result.output
    assert "Traceback" not in result.output


# --- kinds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["Yes", "no", None, "YES"], "category"),
        (["1", "0", "1"], "number"),
        (["12.5", "-3", "1e6"], "number"),
        (["2024-01-31", "2024-02-01T09:30:00"], "date"),
        (["EU", "US", "EU"], "category"),
        ([None, None], "category"),
    ],
)
def test_kinds_are_inferred(values: list[str | None], kind: str) -> None:
    assert infer_kind(pd.Series(values, dtype="string"), max_levels=5)[0] == kind


def test_many_distinct_strings_are_text() -> None:
    ids = pd.Series([f"note {i}" for i in range(60)], dtype="string")
    assert infer_kind(ids, max_levels=50) == ("text", "")


def test_a_mostly_numeric_column_is_flagged_as_unsafe() -> None:
    values = pd.Series(["1,234"] + [str(i) for i in range(30)], dtype="string")
    kind, note = infer_kind(values, max_levels=50)
    assert kind == "category"
    assert "'1,234' does not" in note
    assert "declare `number` in crm.types" in note


def test_typed_parquet_columns_keep_their_kind(tmp_path: Path) -> None:
    deals = _deals().assign(
        revenue=np.arange(8, dtype=float) * 100,
        created=pd.date_range("2024-01-01", periods=8, freq="D"),
        newsletter=[True, False] * 4,
    )
    path = tmp_path / "deals.parquet"
    deals.to_parquet(path, index=False)
    crm = _config(tmp_path, _deals(), deals={"path": str(path)})
    loaded = load_crm(crm)
    kinds = {c: loaded.kinds[c].kind for c in ("revenue", "newsletter", "region")}
    assert kinds == {"revenue": "number", "newsletter": "bool", "region": "category"}
    assert loaded.frame["created_at"].dtype == np.dtype("datetime64[ms]")


# --- rows, labels, features ---------------------------------------------------------


def test_outcomes_are_labelled_and_every_row_is_accounted_for(tmp_path: Path) -> None:
    loaded = load_crm(_config(tmp_path, _deals()))
    frame = loaded.frame
    assert frame["outcome"].tolist()[:4] == ["won", "lost", "open", "won"]
    assert frame["won"].tolist()[:4] == [1, 0, pd.NA, 1]
    assert loaded.summary["rows_in"] == loaded.summary["deals"] + len(loaded.rejects)
    assert list(frame.columns[:7]) == list(crm_module.META_COLUMNS)
    valued = load_crm(_config(tmp_path, _deals(), deals={"amount": "revenue"}))
    assert valued.frame["amount"].tolist() == [100.0 * (i + 1) for i in range(8)]
    assert "revenue" not in valued.features


def test_bad_rows_are_rejected_with_a_reason(tmp_path: Path) -> None:
    deals = _deals()
    deals.loc[1, "Deal Id"] = "D0"  # repeated id
    deals.loc[3, "Deal Id"] = None
    deals.loc[4, "revenue"] = "lots"  # declared number below
    deals.loc[5, "created"] = None  # a closed deal with no created date
    crm = _config(
        tmp_path, deals, types={"revenue": "number"}, deals={"closed": "closed"}
    )
    deals.loc[7, "closed"] = "2023-12-31"  # closed before created
    deals.to_csv(crm.deals.path, index=False)
    loaded = load_crm(crm)
    reasons = dict(zip(loaded.rejects["row"], loaded.rejects["reason"], strict=True))
    assert reasons == {
        1: "duplicate Deal Id 'D0' (first seen at row 0)",
        3: "Deal Id is missing",
        4: "revenue is not a number: 'lots'",
        5: "closed deal with no created (created)",
        7: "closed is before created",
    }
    assert loaded.summary["deals"] + len(reasons) == len(deals)
    assert set(loaded.rejects["table"]) == {"deals"}


def test_a_declared_kind_no_value_reads_as_is_a_contract_error(
    tmp_path: Path,
) -> None:
    crm = _config(tmp_path, _deals(), types={"region": "number"})
    with pytest.raises(ContractError, match=r"deals.csv: no value of column 'region'"):
        load_crm(crm)


def test_a_won_value_that_never_occurs_lists_the_values(tmp_path: Path) -> None:
    crm = _config(tmp_path, _deals(), outcome={"won": ["won"]})
    with pytest.raises(ContractError) as caught:
        load_crm(crm)
    assert "crm.outcome.won" in str(caught.value)
    assert "'Won' (4)" in str(caught.value)


def test_placeholders_are_missing_and_free_text_is_left_out(tmp_path: Path) -> None:
    deals = _deals(60).assign(
        region=(["EU", "Select"] * 30),
        notes=[f"called on day {i}" for i in range(60)],
    )
    loaded = load_crm(_config(tmp_path, deals, missing_values=["Select"]))
    assert loaded.frame["region"].isna().sum() == 30
    assert "notes" not in loaded.features
    assert "free text or an identifier (60 distinct values" in loaded.excluded["notes"]
    kept = load_crm(
        _config(tmp_path, deals, types={"notes": "category"}, dimensions={})
    )
    assert "notes" in kept.features


def test_features_never_see_forbidden_or_ignored_columns(tmp_path: Path) -> None:
    deals = _deals().assign(close_value=[0, 5, 0, 9, 0, 3, 0, 1])
    crm = _config(tmp_path, deals, forbidden=["close_value"], ignore=["newsletter"])
    before = load_crm(crm)
    deals.assign(close_value=np.arange(8) * 1000).to_csv(crm.deals.path, index=False)
    after = load_crm(crm)
    assert "close_value" not in before.frame and "newsletter" not in before.frame
    pd.testing.assert_frame_equal(before.frame, after.frame)
    assert before.excluded["close_value"].startswith("listed under crm.forbidden")


def test_dimensions_default_to_other(tmp_path: Path) -> None:
    loaded = load_crm(_config(tmp_path, _deals(), dimensions={"revenue": "fit"}))
    assert loaded.dimensions["revenue"] == "fit"
    assert loaded.dimensions["region"] == "other"


def test_a_column_named_like_a_lead_ml_column_is_refused(tmp_path: Path) -> None:
    deals = _deals().rename(columns={"region": "won"})
    with pytest.raises(ConfigError, match="'won' has a name lead-ml uses"):
        load_crm(_config(tmp_path, deals))
    as_id = _deals().rename(columns={"Deal Id": "deal_id"})
    assert load_crm(_config(tmp_path, as_id, deals={"id": "deal_id"})).summary[
        "deals"
    ] == len(as_id)


def test_accounts_are_joined_and_bad_rows_reported(tmp_path: Path) -> None:
    accounts_of = pd.Series(["A", "B", "A", "C", None, "A", "B", "A"], dtype="string")
    deals = _deals().assign(account=accounts_of)
    accounts = pd.DataFrame(
        {"name": ["A", "B", "B"], "sector": ["tech", "retail", "food"]}
    )
    accounts.to_csv(tmp_path / "accounts.csv", index=False)
    joined = {"path": str(tmp_path / "accounts.csv"), "key": "account", "id": "name"}
    loaded = load_crm(_config(tmp_path, deals, accounts=joined))
    assert loaded.frame["sector"].tolist()[:4] == ["tech", "retail", "tech", pd.NA]
    assert loaded.summary["deals_without_account"] == 2  # C and the empty key
    assert loaded.rejects["reason"].tolist() == ["repeated name: first row kept"]
    assert "account" not in loaded.features


def test_account_columns_that_clash_with_deal_columns_are_named(
    tmp_path: Path,
) -> None:
    deals = _deals().assign(account=["A"] * 8)
    pd.DataFrame({"account": ["A"], "region": ["EU"]}).to_csv(
        tmp_path / "accounts.csv", index=False
    )
    joined = {"path": str(tmp_path / "accounts.csv"), "key": "account"}
    with pytest.raises(ConfigError, match=r"crm.accounts.columns: \['region'\]"):
        load_crm(_config(tmp_path, deals, accounts=joined))


def test_activities_are_standardised_and_orphans_rejected(tmp_path: Path) -> None:
    log = pd.DataFrame(
        {
            "deal": ["D0", "D1", "D9", "D2"],
            "when": ["2024-01-02", "yesterday", "2024-01-03", "2024-01-04"],
            "what": ["email", "call", "call", "demo"],
        }
    )
    log.to_csv(tmp_path / "log.csv", index=False)
    activities = {
        "path": str(tmp_path / "log.csv"),
        "key": "deal",
        "timestamp": "when",
        "type": "what",
    }
    loaded = load_crm(_config(tmp_path, _deals(), activities=activities))
    assert loaded.activities is not None
    assert loaded.activities.columns.tolist() == [
        "deal_id",
        "timestamp",
        "activity_type",
    ]
    assert loaded.activities["deal_id"].tolist() == ["D0", "D2"]
    assert loaded.rejects["reason"].tolist() == [
        "when is not an ISO 8601 date: 'yesterday'",
        "deal not found among the deals",
    ]


def test_a_missing_file_names_its_key(tmp_path: Path) -> None:
    crm = _config(tmp_path, _deals(), deals={"path": str(tmp_path / "nope.csv")})
    with pytest.raises(ContractError, match=r"nope.csv \(crm.deals.path\): no such"):
        load_crm(crm)


# --- the BANT rule ------------------------------------------------------------------


def test_bant_passes_leads_meeting_the_share_of_configured_letters(
    tmp_path: Path,
) -> None:
    crm = _config(tmp_path, _deals(), bant={"share": 0.5})
    frame = load_crm(crm).frame
    result = evaluate_bant(crm, frame)
    budget = (frame["revenue"] >= 300).to_numpy(dtype=bool)
    need = (frame["pain"] == "yes").to_numpy(dtype=bool)
    assert result["budget"].tolist() == budget.tolist()
    assert result["bant_points"].tolist() == (budget.astype(int) + need).tolist()
    assert result["bant_qualified"].tolist() == (budget | need).tolist()
    strict = _config(tmp_path, _deals(), bant={"share": 1.0})
    assert (
        evaluate_bant(strict, frame)["bant_qualified"].tolist()
        == (budget & need).tolist()
    )


def test_bant_names_the_letter_and_the_unknown_column(tmp_path: Path) -> None:
    crm = _config(tmp_path, _deals())
    frame = load_crm(crm).frame.drop(columns="pain")
    with pytest.raises(ConfigError, match=r"crm.bant.letters.need: .* reads column"):
        bant_rule(crm, frame)


def test_bant_names_a_letter_that_is_not_true_or_false(tmp_path: Path) -> None:
    crm = _config(tmp_path, _deals(), bant={"letters": {"budget": "revenue * 2"}})
    with pytest.raises(ConfigError, match=r"crm.bant.letters: .*'budget'"):
        load_crm(crm)


def test_bant_may_read_an_ignored_column_that_is_no_feature(tmp_path: Path) -> None:
    crm = _config(tmp_path, _deals(), ignore=["pain"])
    loaded = load_crm(crm)
    assert "pain" not in loaded.features
    assert "pain" in loaded.frame
    assert evaluate_bant(crm, loaded.frame)["need"].any()


def test_a_letter_no_deal_passes_shows_the_values_as_written(tmp_path: Path) -> None:
    crm = _config(tmp_path, _deals(), bant={"letters": {"need": "pain == 'Yes'"}})
    with pytest.raises(ConfigError) as caught:
        load_crm(crm)
    message = str(caught.value)
    assert "crm.bant.letters.need" in message
    assert "is true for no deal" in message
    assert "pain: 'yes' (4), 'no' (4)" in message


def test_a_declared_bool_reads_yes_no_words(tmp_path: Path) -> None:
    loaded = load_crm(_config(tmp_path, _deals(), types={"newsletter": "bool"}))
    assert loaded.kinds["newsletter"].kind == "bool"
    assert loaded.frame["newsletter"].tolist()[:3] == [True, False, False]


def _readme_params() -> str:
    """The first YAML block of the README section "Use your own CRM export"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use your own CRM export", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_runs_from_a_blank_params_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(2)
    n = 400
    created = pd.date_range("2024-01-01", periods=n, freq="6h")
    export = pd.DataFrame(
        {
            "Opportunity ID": [f"OPP-{i}" for i in range(n)],
            "Created Date": created.strftime("%Y-%m-%d"),
            "Close Date": (created + pd.Timedelta(days=40)).strftime("%Y-%m-%d"),
            "Stage": rng.choice(["Closed Won", "Closed Lost", "Negotiation"], n),
            "Annual Revenue": rng.lognormal(13, 1.5, n).round(),
            "Title": pd.Series(
                rng.choice(["VP Sales", "Analyst", "Head of IT", ""], n)
            ),
            "Industry": rng.choice(["retail", "software", "health"], n),
        }
    )
    (tmp_path / "exports").mkdir()
    export.to_csv(tmp_path / "exports" / "opportunities.csv", index=False)
    (tmp_path / "params.yaml").write_text(_readme_params())
    monkeypatch.chdir(tmp_path)
    checked = runner.invoke(app, ["check-config"])
    assert checked.exit_code == 0, checked.output
    audited = runner.invoke(app, ["audit"])
    assert audited.exit_code == 0, audited.output
    assert (tmp_path / "reports" / "audit.json").exists()
    assert (tmp_path / "reports" / "audit.md").exists()
