"""Real CRM exports as they come, from the raw file to scored leads with params alone.

Each shape is built from ../shared/data the way a CRM writes it (skipped with a
message when the folder is absent) and run through the `lead-ml` commands, the
read, validate ... export stages and then `lead-ml score` on the raw file itself,
with nothing prepared by hand:

- X Education as a European spreadsheet saves it: ``;``-separated, CRLF line ends,
  decimal commas, quoted fields, and no id column (the id is the row number, which
  also orders the leads);
- Maven as an Excel workbook (the deals on a named sheet), the outcome in a second
  table of closed deals (its stage column; a deal missing from it is open) and the
  accounts joined many-to-one by key, which `lead-ml score --table` joins too, and
  the pyfunc when its ``tables`` param names the file.

Then, without a BANT rule (``bant: null``), everything that compares says "base
rate"; the pyfunc numbers rows as `lead-ml score` does for a row-number id; and a
test window of one outcome is one clear line in compare, report and track.

Kept cheap: 2,000 deals, few trees, few bootstrap resamples.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from projects import QUICK, SHARED, SOURCES, merged, project_environment
from typer.testing import CliRunner

from lead_ml.cli import app
from lead_ml.config import load_params, read_params_file
from lead_ml.scorer import load_pyfunc, load_scorer
from lead_ml.sources import lead_rows, read_deals
from lead_ml.vocab import ScorerError

runner = CliRunner()
LEADS = SHARED / "x_education_leads" / "Leads.csv"
MAVEN = SHARED / "maven_crm"
ROWS = 2000
#: Fewer trees and resamples than the quick projects: these test reading, not models.
CHEAP: dict[str, Any] = {"train": {"n_estimators": 30}, "evaluate": {"n_bootstrap": 50}}


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent: the export-shape tests need ../shared/data")


def _lead_ml(*args: str) -> str:
    result = runner.invoke(app, list(args), terminal_width=300)
    assert result.exit_code == 0, result.output
    return result.output


def _run(
    root: Path, params: dict[str, Any], score: Path, *extra: str
) -> dict[str, Any]:
    """Write params.yaml into ``root``, run every stage as `dvc repro` would and
    score ``score`` (a raw export) with the exported scorer (``extra``: more
    options of `lead-ml score`); what the commands said and wrote."""
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    said: dict[str, Any] = {}
    with project_environment(root):
        said["check"] = _lead_ml("check-config")
        for table in load_params(root / "params.yaml").source.tables.present():
            out = f"data/tables/{table}.parquet"
            said[table] = _lead_ml("read", "--table", table, "--out", out)
        for stage in ("validate", "audit", "featurize", "train", "evaluate", "export"):
            said[stage] = _lead_ml(stage)
        said["score"] = _lead_ml(
            "score",
            "--model",
            "models/scorer",
            "--input",
            str(score),
            "--output",
            "scores.csv",
            *extra,
        )
    said["scores"] = pd.read_csv(root / "scores.csv", dtype={0: str})
    said["rejects"] = pd.read_csv(root / "scores.rejects.csv")
    said["loaded"] = read_deals(root / "data/validated", root / "reports/rejects.csv")
    return said


def _base(name: str) -> dict[str, Any]:
    return merged(merged(read_params_file(SOURCES[name]), QUICK), CHEAP)


# --- semicolons, CRLF, decimal commas, no id column ---------------------------------


def _european_leads(path: Path) -> pd.DataFrame:
    """The first leads of X Education as a European Excel saves CSV, without its
    two id columns."""
    leads = pd.read_csv(LEADS, dtype=str, keep_default_na=False, nrows=ROWS)
    leads = leads.drop(columns=["Prospect ID", "Lead Number"])
    for column in ("Total Time Spent on Website", "Page Views Per Visit"):
        leads[column] = leads[column].str.replace(".", ",", regex=False)
    leads.to_csv(path, sep=";", index=False, lineterminator="\r\n")
    return leads


def test_a_semicolon_crlf_export_with_no_id_column_runs_to_scored_leads(
    tmp_path: Path,
) -> None:
    _need(LEADS)
    export = tmp_path / "leads_export.csv"
    leads = _european_leads(export)
    assert b"\r\n" in export.read_bytes()[:2000]
    assert ",5;" in export.read_text() or ",33;" in export.read_text()
    params = _base("x_education")
    source = params["source"]
    # No sep given: detected. The id is the row number, which orders the leads.
    source["tables"]["deals"] = {
        "path": str(export),
        "id": {"row_number": True, "name": "lead_row"},
        "order": "lead_row",
        "decimal": ",",
    }
    said = _run(tmp_path, params, export)
    assert "sep ';' (detected), CRLF line ends" in said["deals"]
    assert (
        "decimal ','" in said["deals"] and "id 'lead_row' = row number" in said["deals"]
    )
    deals = said["loaded"]
    frame = deals.frame
    assert deals.summary["rows_in"] == len(leads)
    # The row number is the id (1-based) and the order; decimals read as numbers.
    assert frame["deal_id"].astype(int).between(1, len(leads)).all()
    assert (frame["order"] == frame["deal_id"].astype(float)).all()
    assert deals.kinds["Page Views Per Visit"].kind == "number"
    first = frame[frame["deal_id"] == "1"]
    original = float(leads["Total Time Spent on Website"][0].replace(",", "."))
    assert first["Total Time Spent on Website"].iloc[0] == original
    # The raw export scores as it is: the same rows, the same ids.
    scores, rejects = said["scores"], said["rejects"]
    assert len(scores) + len(rejects) == len(leads)
    assert set(scores["lead_row"].astype(str)) >= set(frame["deal_id"])
    assert scores["probability"].between(0, 1).all()


# --- an Excel workbook with the outcome in another table ---------------------------


def _maven_workbook(folder: Path) -> dict[str, Path]:
    """Maven as a funnel export: the opportunities on a named Excel sheet (no stage,
    no close) after a cover sheet, and the closed deals with their stage in a CSV of
    their own."""
    pipeline = pd.read_csv(MAVEN / "sales_pipeline.csv", dtype=str, nrows=ROWS)
    workbook = folder / "crm.xlsx"
    deals = pipeline.drop(columns=["deal_stage", "close_date", "close_value"])
    with pd.ExcelWriter(workbook) as excel:
        pd.DataFrame({"note": ["exported from the CRM"]}).to_excel(
            excel, sheet_name="About", index=False
        )
        deals.to_excel(excel, sheet_name="Opportunities", index=False)
    closed = pipeline[pipeline["deal_stage"].isin(["Won", "Lost"])]
    closed = closed[["opportunity_id", "deal_stage", "close_date"]]
    closed.to_csv(folder / "closed.csv", index=False)
    return {"deals": workbook, "closed": folder / "closed.csv"}


def test_an_excel_export_with_its_outcome_in_a_second_table_runs_to_scored_leads(
    tmp_path: Path,
) -> None:
    _need(MAVEN / "sales_pipeline.csv")
    files = _maven_workbook(tmp_path)
    params = _base("maven")
    source = params["source"]
    source["tables"] = {
        "deals": {
            "path": str(files["deals"]),
            "sheet": "Opportunities",
            "id": "opportunity_id",
            "created": "engage_date",
        },
        "closed": {"path": str(files["closed"]), "key": "opportunity_id"},
    }
    source["outcome"] = {
        "table": "closed",
        "column": "deal_stage",
        "won": ["Won"],
        "lost": ["Lost"],
        "absent": "open",
    }
    # The accounts join by name; `lead-ml score` joins them onto the workbook too.
    source["tables"]["accounts"] = {
        "path": str(MAVEN / "accounts.csv"),
        "key": "account",
    }
    source.pop("forbidden", None)  # close_value is not in the workbook
    source["dimensions"] = {"product": "decision_criteria", "sector": "fit"}
    params["bant"] = {
        "letters": {"need": "product in ['GTXPro', 'GTX Plus Pro', 'GTK 500']"},
        "threshold": 1,
    }
    accounts = f"accounts={MAVEN / 'accounts.csv'}"
    said = _run(tmp_path, params, files["deals"], "--table", accounts)
    assert "Excel sheet 'Opportunities'" in said["deals"]
    assert "closed.csv (sep ',' (detected), LF line ends" in said["closed"]
    deals = said["loaded"]
    pipeline = pd.read_csv(MAVEN / "sales_pipeline.csv", dtype=str, nrows=ROWS)
    stages = pipeline.set_index("opportunity_id")["deal_stage"]
    frame = deals.frame.set_index("deal_id")
    expected = stages.reindex(frame.index).map({"Won": "won", "Lost": "lost"})
    assert frame["outcome"].tolist() == expected.fillna("open").tolist()
    assert frame["created_at"].notna().any()
    # The outcome table's columns are never features.
    assert "deal_stage" not in frame and "close_date" not in frame
    closed = int(pipeline["deal_stage"].isin(["Won", "Lost"]).sum())
    assert deals.summary["closed_in"] == closed
    assert deals.summary["won"] + deals.summary["lost"] == closed
    # The workbook itself scores: every valid deal, open ones included.
    scores, rejects = said["scores"], said["rejects"]
    assert len(scores) + len(rejects) == len(pipeline)
    assert set(scores["opportunity_id"]) == set(frame.index)
    assert scores["probability"].between(0, 1).all()
    # Joined as training joined: the same probability as the validated deals' rows
    # (accounts already in them); a deal without an account is scored, its account
    # columns unknown, as training kept it, and the console counts them.
    no_account = int(pipeline["account"].isna().sum())
    assert no_account > 0
    assert f"--table accounts: {no_account:,} leads have no row in it" in said["score"]
    with project_environment(tmp_path):
        scorer = load_scorer(tmp_path / "models" / "scorer")
        rows = lead_rows(deals.frame, load_params(tmp_path / "params.yaml").source)
        hand = scorer.score(rows, explain_reasons=False).set_index("opportunity_id")
    mine = scores.set_index("opportunity_id")["probability"]
    assert mine.to_numpy() == pytest.approx(
        hand.loc[mine.index, "probability"].to_numpy(float), abs=1e-9
    )
    # Without the table, the workbook lacks the account columns: one line naming
    # the table and what to pass; a table the model never joined is refused.
    with project_environment(tmp_path):
        plain = [
            "score", "--input", str(files["deals"]), "--output", "again.csv"
        ]  # fmt: skip
        missing = runner.invoke(app, plain, terminal_width=300)
        unknown = runner.invoke(
            app, [*plain, "--table", accounts, "--table", "teams=x.csv"]
        )
    assert missing.exit_code == 2, missing.output
    assert "training joined table(s) accounts" in missing.output
    assert "--table accounts=PATH" in missing.output
    assert unknown.exit_code == 2 and "no table 'teams'" in unknown.output
    # The pyfunc joins it when named by its `tables` param (a file a request names:
    # only when allowed, else one line saying how), and counts the same leads.
    import mlflow

    folder = tmp_path / "models" / "scorer"
    workbook = pd.read_excel(files["deals"], sheet_name="Opportunities")
    with project_environment(tmp_path):
        served = mlflow.pyfunc.load_model(str(folder))
        with pytest.raises(ScorerError, match="^tables: this scorer reads no file"):
            served.predict(workbook, params={"tables": [accounts]})
        batch = load_pyfunc(folder, allow_activities_path=True)
        predicted = batch.predict(
            workbook, params={"explain": False, "tables": [accounts]}
        )
    assert batch.unwrap_python_model().unmatched == {"accounts": no_account}
    mine = predicted.set_index("opportunity_id")["probability"].dropna()
    scored = scores.set_index("opportunity_id")["probability"]
    assert set(mine.index) == set(scored.index)
    assert mine.astype(float).to_numpy() == pytest.approx(
        scored.loc[mine.index].to_numpy(float), abs=1e-9
    )


# --- no BANT rule, a row-number id, a test window of one outcome -------------------


@pytest.fixture(scope="module")
def no_rule(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The European X Education export (row-number id, no id column) run to scored
    leads with ``bant: null``: the model is compared with the base rate."""
    _need(LEADS)
    root = tmp_path_factory.mktemp("no-rule")
    export = root / "leads_export.csv"
    _european_leads(export)
    params = _base("x_education")
    params["source"]["tables"]["deals"] = {
        "path": str(export),
        "id": {"row_number": True, "name": "lead_row"},
        "order": "lead_row",
        "decimal": ",",
    }
    params["bant"] = None
    said = _run(root, params, export)
    return {**said, "root": root, "file": export}


def test_without_a_rule_compare_promote_and_the_summary_say_base_rate(
    no_rule: dict[str, Any],
) -> None:
    root = no_rule["root"]
    metrics = root / "reports" / "metrics.json"
    with project_environment(root):
        summary = _lead_ml("summary", "--metrics", str(metrics))
        compared = _lead_ml("compare")
        gate = runner.invoke(app, ["promote"], terminal_width=300)
    assert gate.exit_code in (0, 1), gate.output
    for output in (summary, compared, gate.output):
        assert "base rate" in output
        # BANT is named only to say that no rule was given.
        assert "BANT" not in re.sub(r"(?i)no BANT rule", "", output), output
    assert "no BANT rule given" in compared
    assert "ROC AUC gain over base rate" in gate.output
    table = pd.read_csv(root / "reports" / "compare" / "compare.csv")
    assert "base rate" in set(table["approach"])
    assert "BANT" not in set(table["approach"])
    assert "ROC AUC gain vs base rate" in set(table["measure"])


def test_the_pyfunc_numbers_rows_as_lead_ml_score_does(
    no_rule: dict[str, Any],
) -> None:
    import mlflow

    root = no_rule["root"]
    frame = pd.read_csv(no_rule["file"], sep=";", decimal=",")
    assert "lead_row" not in frame.columns
    with project_environment(root):
        model = mlflow.pyfunc.load_model(str(root / "models" / "scorer"))
        predicted = model.predict(frame, params={"explain": False})
    assert predicted["lead_row"].astype(str).tolist() == [
        str(n) for n in range(1, len(frame) + 1)
    ]
    # The same leads under the same ids as `lead-ml score` gave them.
    scored = no_rule["scores"].set_index(no_rule["scores"]["lead_row"].astype(str))
    mine = predicted.set_index(predicted["lead_row"].astype(str))
    common = scored.index.intersection(mine.index)
    assert len(common) == len(scored)
    assert mine.loc[common, "probability"].astype(float).to_numpy() == pytest.approx(
        scored.loc[common, "probability"].to_numpy(), abs=1e-9
    )


def test_a_test_window_of_one_outcome_is_one_clear_line(
    no_rule: dict[str, Any],
) -> None:
    root = no_rule["root"]
    features = pd.read_parquet(root / "data" / "features" / "features.parquet")
    test = features["split"].eq("test") & features["won"].eq(1)
    assert test.any()
    lost_only = root / "lost_only.parquet"
    features.loc[test.to_numpy(), "split"] = "train"
    features.to_parquet(lost_only)
    with project_environment(root):
        for command in ("compare", "report", "track"):
            result = runner.invoke(
                app, [command, "--features", str(lost_only)], terminal_width=300
            )
            said = result.output.strip()
            assert result.exit_code == 2, (command, said)
            assert "Traceback" not in said and len(said.splitlines()) == 1, said
            assert "the test window holds" in said and "all lost" in said, said
            assert "split.test_fraction" in said, said
