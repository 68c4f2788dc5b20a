"""`lead-ml report`: the self-contained HTML page, its numbers, and a real browser.

The report is built once per source with the `lead-ml report` command on the
finished project of conftest's ``project`` fixture (real LightGBM, exported scorer,
and the project's own sqlite MLflow store), the page written to a temporary folder.
The browser tests drive Debian's chromium over the DevTools protocol
(``--remote-debugging-pipe``); the setup installs it with apt when it is absent and
the tests run as root (or with password-less sudo), and skips with a message
otherwise.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import html
import io
import json
import math
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from projects import Project, project_environment
from typer.testing import CliRunner

from lead_ml import charts, report
from lead_ml.audit import split_method
from lead_ml.cli import app
from lead_ml.model import split_frames
from lead_ml.scorer import Scorer, load_scorer
from lead_ml.vocab import MEDDIC_DIMENSIONS, OTHER

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
SECTIONS = (
    "headline",
    "bands",
    "segments",
    "curves",
    "calibration-gains",
    "deciles",
    "meddic",
    "columns",
    "answers",
    "examples",
    "data",
    "audit",
    "champion",
)
#: Words of the page that name a column of each source's export.
OWN_COLUMNS = {
    "synthetic": ("meddic_champion", "contact_title", "call activities"),
    "x_education": ("Total Time Spent on Website", "What is your current occupation"),
    "maven": ("sector", "sales_agent", "product"),
}
#: The segment columns each source's export is judged by (report.segments: null).
SEGMENTS = {
    "synthetic": ["lead_source", "industry", "region"],
    "x_education": ["Lead Source", "Country"],
    "maven": ["sector", "office_location", "sales_agent"],
}
runner = CliRunner()


@dataclass(frozen=True)
class Built:
    """A finished project, the report `lead-ml report` wrote for it, and what the
    command printed."""

    project: Project
    paths: report.ReportPaths
    html: str
    output: str

    @property
    def tracking_uri(self) -> str:
        """The project's own MLflow store."""
        return f"sqlite:///{self.project.root / 'mlflow.db'}"

    @property
    def scorer(self) -> Scorer:
        """The project's exported scorer."""
        return load_scorer(self.paths.scorer)

    def section(self, anchor: str) -> str:
        """The HTML of one section of the page."""
        return section_of(self.html, anchor)

    def figure(self, anchor: str) -> ET.Element:
        """The parsed SVG of one figure."""
        found = re.search(rf'<figure id="{anchor}">(<svg.*?</svg>)', self.html, re.S)
        assert found, f"no figure {anchor}"
        return ET.fromstring(found.group(1))


def section_of(page: str, anchor: str) -> str:
    """The HTML of one section of a page."""
    found = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert found, f"no section {anchor}"
    return found.group(1)


def table_rows(html: str) -> list[list[str]]:
    """The cells of every body row of the first table in some HTML."""
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("<tr>")[1:]]


def cli_arguments(paths: report.ReportPaths, params: Path) -> list[str]:
    """`lead-ml report` arguments for the given paths."""
    arguments = ["report", "--params", str(params)]
    for name, value in vars(paths).items():
        arguments += [f"--{name}", str(value)]
    return arguments


def report_paths(project: Project, out: Path) -> report.ReportPaths:
    """The report's inputs in a project folder laid out like dvc.yaml, the page
    written to ``out``."""
    return dataclasses.replace(report.ReportPaths.under(project.root), out=out)


@pytest.fixture(scope="module")
def built(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """`lead-ml report` run once per source, logging to the project's store."""
    paths = report_paths(project, tmp_path_factory.mktemp("report") / "report.html")
    with project_environment(project.root):
        result = runner.invoke(app, cli_arguments(paths, project.path("params.yaml")))
    assert result.exit_code == 0, result.output
    return Built(project, paths, paths.out.read_text(encoding="utf-8"), result.output)


@pytest.fixture(scope="module")
def window(built: Built) -> report.Window:
    """The test window through the exported scorer, as the report scores it."""
    project = built.project
    test = split_frames(project.features()).test
    return report.score_window(built.scorer, test, project.deals(), project.params)


def metrics_of(built: Built) -> dict[str, Any]:
    metrics: dict[str, Any] = json.loads(built.paths.metrics.read_text())
    return metrics


def expected_figures(built: Built) -> dict[str, tuple[str, int]]:
    """Figure id -> (Vega mark type, how many): a line per curve (model, BANT,
    the dashed reference), a point per calibration bin, a bar per band, bin,
    and (twice: raised, lowered) per dimension or column."""
    registry = built.scorer.registry
    dimensions = report.shown_dimensions(registry)
    calibration = pd.read_csv(built.paths.plots / "calibration.csv")
    columns = min(len(registry.specs), report.MAX_CHART_COLUMNS)
    return {
        "letter-chart": ("rect", 4),
        "roc": ("line", 3),
        "pr": ("line", 3),
        "calibration": ("symbol", len(calibration)),
        "gains": ("line", 3),
        "band-chart": ("rect", built.project.params.evaluate.score_bands),
        "importance-chart": ("rect", 2 * len(dimensions)),
        "column-chart": ("rect", 2 * columns),
    }


def marks(svg: ET.Element, kind: str) -> list[ET.Element]:
    """The data marks of one Vega mark type in a rendered chart (legends and axes
    are other roles)."""
    return [
        item
        for group in svg.iter(f"{SVG}g")
        if f"mark-{kind} role-mark" in group.get("class", "")
        for item in group
    ]


# --- the page's content ---------------------------------------------------------------


def test_every_section_is_present_in_order(built: Built) -> None:
    positions = [built.html.index(f'<section id="{s}">') for s in SECTIONS]
    assert positions == sorted(positions)


def test_every_figure_is_a_vega_svg_with_the_right_number_of_marks(
    built: Built,
) -> None:
    for anchor, (kind, expected) in expected_figures(built).items():
        svg = built.figure(anchor)
        assert svg.tag == f"{SVG}svg" and svg.get("viewBox"), anchor
        assert len(marks(svg, kind)) == expected, anchor
    calibration = built.figure("calibration")
    assert len(marks(calibration, "line")) == 2  # the model and the diagonal


def test_curves_are_the_plot_data_thinned_to_the_point_budget(built: Built) -> None:
    plots = report.read_plots(built.paths.plots)
    specs = report.curve_specs(plots)
    points = pd.DataFrame(specs["gains"]["layer"][0]["data"]["values"])
    model = points[points["series"] == "Model"]
    gains = plots["gains_model"]
    assert len(model) == len(gains) <= charts.MAX_CURVE_POINTS
    np.testing.assert_allclose(model["x"], gains["share_of_leads"], atol=1e-5)
    np.testing.assert_allclose(model["y"], gains["share_of_wins"], atol=1e-5)
    pr = pd.DataFrame(specs["pr"]["layer"][0]["data"]["values"])
    drawn = int((pr["series"] == "Model").sum())
    assert len(plots["pr_model"]) > drawn and drawn <= charts.MAX_CURVE_POINTS + 2
    calibration = pd.DataFrame(specs["calibration"]["layer"][1]["data"]["values"])
    np.testing.assert_allclose(
        calibration["x"], plots["calibration"]["mean_predicted"], atol=1e-5
    )


def test_every_axis_is_titled_in_words(built: Built) -> None:
    specs = report.curve_specs(report.read_plots(built.paths.plots))
    for name, spec in specs.items():
        encoding = spec["layer"][0]["encoding"]
        for axis in ("x", "y"):
            title = encoding[axis]["title"]
            assert " " in title and encoding[axis]["field"] not in title, name
    for anchor in ("band-chart", "letter-chart", "column-chart"):
        texts = [e.text or "" for e in built.figure(anchor).iter(f"{SVG}text")]
        assert "win rate in the test window" in texts or any(
            "mean contribution" in text for text in texts
        ), anchor


def test_headline_numbers_are_those_of_metrics_json(built: Built) -> None:
    metrics = metrics_of(built)
    capacity = metrics["capacity"]
    text = built.section("headline")
    k, model, bant = capacity["k"], capacity["model_wins"], capacity["bant_wins"]
    assert f"work <b>{k:,}</b> leads" in text
    assert f'<span class="big">{model:,}</span>' in text
    assert f'<span class="big">{bant:,}</span>' in text
    assert f"{model - bant:+,} wins" in text
    assert f"model {metrics['model']['roc_auc']:.3f}" in text
    # Pipeline value only where deals have an amount (the synthetic CRM's).
    has_amount = built.project.params.source.tables.deals.amount is not None
    assert ("Pipeline value" in text) == has_amount
    if has_amount:
        assert f"{capacity['model_pipeline_value']:,.0f}" in text


def test_test_window_is_named_by_dates_only_where_there_are_dates(
    built: Built,
) -> None:
    metrics = metrics_of(built)
    deals = built.project.params.source.tables.deals
    text = built.section("headline")
    if metrics["split"] == "time":
        assert f"created {metrics['test_start']} to {metrics['test_end']}" in text
    else:
        assert metrics["test_start"] == ""
        assert not re.search(r"\d{4}-\d\d-\d\d", text)  # no dates, real or fake
        assert f"by {deals.order}" in text and "no created dates" in text


def test_score_bin_table_is_the_plot_data_in_order(built: Built) -> None:
    bands = pd.read_csv(built.paths.plots / "win_rate_by_band.csv")
    rows = table_rows(built.section("deciles"))
    assert len(rows) == len(bands)
    for row, band in zip(rows, bands.itertuples(), strict=True):
        assert row[:4] == [
            f"{band.band:,}",
            f"{band.n:,}",
            f"{band.wins:,}",
            f"{band.win_rate:.1%}",
        ]


def test_page_needs_no_network_and_runs_no_script(built: Built) -> None:
    page = built.html.lower()
    for forbidden in ("<script", "<link", "<img", "<iframe", "src=", "@import"):
        assert forbidden not in page
    # url() only for the charts' own clip paths, and ids unique on the page.
    assert re.findall(r"url\((?!#)", page) == []
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert all(f'id="{ref}"' in page for ref in re.findall(r"url\(#([^)]+)\)", page))
    assert set(re.findall(r"https?://[^\s\"'<]+", page)) <= {
        "http://www.w3.org/2000/svg",  # XML namespaces of the inline SVG
        "http://www.w3.org/1999/xlink",
    }


def test_page_names_the_source_and_its_id_column(built: Built) -> None:
    name = built.project.params.source.name
    assert f"<title>lead-ml model report: {name}</title>" in built.html
    assert f"<b>{name}</b>" in built.section("data")
    id_column = built.project.params.source.tables.deals.id
    assert f"<th>{id_column}</th>" in built.section("examples")


def test_page_names_the_exports_own_columns(built: Built) -> None:
    registry = built.scorer.registry
    columns = built.section("columns")
    for spec in registry.specs:
        assert f"<td>{spec.words}</td>" in columns, spec.name
    for words in OWN_COLUMNS[built.project.name]:
        assert words in columns
    # A lead-ml field name never appears where the export has no such column.
    has_meddic = any(c.startswith("meddic_") for c in built.scorer.contract.columns)
    assert ("meddic_" in built.html) == has_meddic


def test_column_chart_draws_the_most_important_columns_by_name(
    built: Built, window: report.Window
) -> None:
    table = report.column_importance(window.contributions, window.registry)
    expected = table["column"].head(report.MAX_CHART_COLUMNS).tolist()
    svg = built.figure("column-chart")
    labels = [
        e.text
        for g in svg.iter(f"{SVG}g")
        if "role-axis-label" in g.get("class", "")
        for e in g.iter(f"{SVG}text")
    ]
    # Axis labels: the columns in order (cut with an ellipsis past the limit).
    shown = [
        label for label in labels if label and not re.fullmatch(r"[−\d.,-]+", label)
    ]
    assert len(shown) == len(expected)
    for label, column in zip(shown, expected, strict=True):
        assert column.startswith(label.rstrip("…")), (label, column)


def test_cli_says_where_the_report_went(built: Built) -> None:
    output = built.output.replace("\n", "")
    assert str(built.paths.out) in output
    assert "no champion registered" in output


def test_report_is_logged_to_the_run_of_the_scorer(
    built: Built, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    # export.json holds no run id: the run is found by the scorer's content version.
    with project_environment(built.project.root):
        experiment = built.project.params.tracking.experiment
        run_id = report.run_id_of(built.paths.record, experiment)
    client = MlflowClient(tracking_uri=built.tracking_uri)
    logged = {a.path for a in client.list_artifacts(run_id)}
    assert report.REPORT_FILE in logged
    local = client.download_artifacts(run_id, report.REPORT_FILE, str(tmp_path))
    assert Path(local).read_text(encoding="utf-8") == built.html


def test_report_is_deterministic(built: Built, tmp_path: Path) -> None:
    again = report_paths(built.project, tmp_path / "again.html")
    with project_environment(built.project.root):
        report.run_report(built.project.params, again, log_to_mlflow=False)
    assert again.out.read_text(encoding="utf-8") == built.html


# --- the test window through the exported scorer --------------------------------------


def test_scorer_on_raw_lead_rows_reproduces_the_evaluated_auc(
    built: Built, window: report.Window
) -> None:
    from sklearn.metrics import roc_auc_score

    metrics = metrics_of(built)
    assert metrics["evaluation"] == "holdout"  # else metrics are out of fold
    scored = window.scored
    assert len(scored) == metrics["n_test"]
    assert scored["probability"].notna().all()
    auc = roc_auc_score(scored["won"], scored["probability"].astype(float))
    assert auc == pytest.approx(metrics["model"]["roc_auc"], abs=1e-9)


def test_column_contributions_add_up_to_the_scorers_dimensions(
    window: report.Window,
) -> None:
    dimensions = window.registry.dimensions()
    for dimension in (*MEDDIC_DIMENSIONS, "fit", "engagement", OTHER):
        members = [n for n, d in dimensions.items() if d == dimension]
        summed = window.contributions[members].sum(axis=1)
        given = window.scored.loc[summed.index, f"contrib_{dimension}"]
        np.testing.assert_allclose(summed, given, atol=1e-9)


def test_importance_is_the_mean_absolute_contribution(
    built: Built, window: report.Window
) -> None:
    dimensions = report.shown_dimensions(window.registry)
    importance = report.meddic_importance(window.scored, dimensions)
    assert set(importance.index) == set(dimensions)
    for dimension, row in importance.iterrows():
        values = window.scored[f"contrib_{dimension}"].astype(float)
        assert row["mean_abs"] == pytest.approx(values.abs().mean())
        assert row["raised"] - row["lowered"] == pytest.approx(row["mean_abs"])
        assert row["share_raised"] == pytest.approx((values > 0).mean())
    assert importance["mean_abs"].is_monotonic_decreasing
    table = built.section("meddic")
    top = str(importance.index[0])
    assert f"<td>{report.DIMENSION_LABELS[top]}</td>" in table
    assert f"{importance['mean_abs'].iloc[0]:.3f}".rstrip("0") in table


def test_other_is_shown_only_when_the_map_leaves_a_column_out(
    built: Built,
) -> None:
    unmapped = [
        spec.words for spec in built.scorer.registry.specs if spec.dimension == OTHER
    ]
    label = report.DIMENSION_LABELS[OTHER]
    assert (f"<td>{label}</td>" in built.section("meddic")) == bool(unmapped)
    if unmapped:
        rows = {row[0]: row for row in table_rows(built.section("meddic"))}
        assert sorted(rows[label][3].split(", ")) == sorted(unmapped)


def test_column_importance_is_the_mean_absolute_contribution_per_column(
    window: report.Window,
) -> None:
    table = report.column_importance(window.contributions, window.registry)
    assert set(table.index) == set(window.registry.names)
    for name, row in table.iterrows():
        spec = window.registry.spec(str(name))
        assert row["column"] == spec.words  # an activity feature by what it counts
        if spec.kind == "activity":
            assert row["column"] == spec.label
        assert row["mean_abs"] == pytest.approx(window.contributions[name].abs().mean())
    assert table["mean_abs"].is_monotonic_decreasing


def test_answers_are_the_recorded_values_of_every_meddic_column(
    built: Built, window: report.Window
) -> None:
    by_answer = report.contribution_by_answer(window)
    tabulated = report.answer_columns(window.registry)
    assert tabulated, "every source here maps a MEDDIC column"
    assert by_answer["feature"].unique().tolist() == [s.name for s in tabulated]
    counts = by_answer.groupby("feature")["leads"].sum()
    assert (counts == len(window.scored)).all()
    # "Not yet known" is what the export left blank (or a placeholder) for them.
    deals = built.project.deals().frame.set_index("deal_id")
    recorded = deals.loc[window.scored["deal_id"].to_numpy()]
    for spec in tabulated:
        rows = by_answer[by_answer["feature"] == spec.name].set_index("answer")
        blank = int(recorded[spec.column].isna().sum())
        assert rows["leads"].get(report.NOT_KNOWN, 0) == blank, spec.column
        known = rows.drop(index=report.NOT_KNOWN, errors="ignore")
        if spec.kind == "category" and len(known) <= report.MAX_ANSWERS:
            values = recorded[spec.column].dropna().astype(str).str.strip()
            assert sorted(known.index) == sorted(values.unique())
        # Each mean is the column's own contribution over those leads.
        answers = report.recorded_answers(spec, window.features[spec.name])
        for answer, row in rows.iterrows():
            mine = window.contributions.loc[answers == answer, spec.name]
            assert row["mean_contribution"] == pytest.approx(mine.mean(), abs=1e-6)
    page = built.section("answers")
    for column in by_answer["column"].unique():
        assert f"<td>{column}</td>" in page


def test_recorded_meddic_answers_move_scores_in_the_business_direction(
    synthetic_project: Project,
) -> None:
    test = split_frames(synthetic_project.features()).test
    scorer = load_scorer(synthetic_project.path("models/scorer"))
    window = report.score_window(
        scorer, test, synthetic_project.deals(), synthetic_project.params
    )
    by_answer = report.contribution_by_answer(window)
    for column in ("meddic_champion", "meddic_economic_buyer", "meddic_metrics"):
        rows = by_answer[by_answer["column"] == column]
        mean = dict(zip(rows["answer"], rows["mean_contribution"], strict=True))
        assert mean["yes"] > mean["no"], column


def test_five_example_leads_one_per_band_and_a_bant_surprise(
    built: Built, window: report.Window
) -> None:
    scored = window.scored
    examples = report.example_leads(scored)
    assert len(examples) == report.N_EXAMPLES
    assert examples["deal_id"].is_unique
    assert set(scored["band"]) <= set(examples["band"])
    surprise = examples[examples["why"].str.startswith("BANT qualifies")]
    qualified = scored[scored["bant_qualified"]]
    assert surprise["probability"].tolist() == [qualified["probability"].min()]
    table = built.section("examples")
    for deal_id, reasons in examples[["deal_id", "top_reasons"]].to_numpy(str):
        assert f"<td>{deal_id}</td>" in table
        assert reasons and reasons.split("; ")[0] in table


# --- the data summary for time, order and random splits -------------------------------


def test_data_summary_reconciles_with_the_files(built: Built) -> None:
    features = built.project.features()
    split = split_frames(features)
    rejects = pd.read_csv(built.paths.rejects)
    text = built.section("data")
    assert f"<b>{len(rejects):,}</b>" in text
    assert f"{len(features):,} valid deals" in text
    rows = {row[0]: row for row in table_rows(text)}
    for name, part in (("train", split.train), ("test", split.test)):
        assert rows[name][1:3] == [f"{len(part):,}", f"{int(part['won'].sum()):,}"]
    assert len(split.test) == metrics_of(built)["n_test"]


def test_windows_show_dates_order_values_or_nothing(built: Built) -> None:
    text = built.section("data")
    split = split_frames(built.project.features())
    test = table_rows(text)[-1]
    deals = built.project.params.source.tables.deals
    if metrics_of(built)["split"] == "time":
        assert "<th>created from</th>" in text
        first = split.test["created_at"].min().date().isoformat()
        assert test[4] == first
    else:
        assert "created from" not in text
        assert not re.search(r"\d{4}-\d\d-\d\d", text)  # no dates, real or fake
        assert f"<th>first {deals.order}</th>" in text
        assert test[4:] == [
            f"{split.test['order'].min():.0f}",
            f"{split.test['order'].max():.0f}",
        ]


def test_a_random_split_is_said_and_shows_no_window_bounds(built: Built) -> None:
    """Without created dates or order the audit splits at random: the summary says
    so and shows no from / to (the report reads the split method from the table)."""
    features = built.project.features()
    features["created_at"] = pd.Series(pd.NaT, index=features.index, dtype="<M8[ms]")
    features["order"] = np.nan
    split = split_frames(features)
    method, _ = split_method(features)
    scored = pd.DataFrame({"probability": [0.5]})
    summary = report.data_summary(features, split, {}, scored, method)
    assert method == "random"
    setting = report.Setting("a CRM export", "Id", method)
    html = report.data_section(summary, setting) + report.headline(
        metrics_of(built) | {"test_start": "", "test_end": ""}, setting
    )
    assert "split at random, stratified by outcome" in html
    assert table_rows(html)[-1][:2] == ["test", f"{len(split.test):,}"]
    assert len(table_rows(html)[-1]) == 4
    assert not re.search(r"\d{4}-\d\d-\d\d", html)


def test_audit_of_the_project_is_shown(built: Built) -> None:
    audit = json.loads(built.paths.audit.read_text())
    metrics = metrics_of(built)
    text = built.section("audit")
    assert f"{len(audit['warnings'])} audit warning(s)" in text
    assert f"{len(metrics['warnings'])} from the evaluation" in text
    assert f"<td>split</td><td>{audit['split']['method']}</td>" in text
    # Every warning of both files, and every column the audit left out.
    for warning in [*audit["warnings"], *metrics["warnings"]]:
        assert html.escape(warning) in text
    for column in audit["data"]["excluded"]:
        assert f"<td>{html.escape(column)}</td>" in text


def test_no_audit_and_no_champion_are_stated(built: Built, tmp_path: Path) -> None:
    paths = dataclasses.replace(
        report_paths(built.project, tmp_path / "report.html"),
        audit=tmp_path / "absent.json",
    )
    with project_environment(built.project.root):
        report.run_report(built.project.params, paths, log_to_mlflow=False)
    page = paths.out.read_text()
    assert "No audit run" in section_of(page, "audit")
    assert "No champion registered yet" in section_of(page, "champion")


def test_audit_warnings_are_shown_when_an_audit_ran(
    built: Built, tmp_path: Path
) -> None:
    audit = {
        "warnings": [
            "stage_at_close (presence, refused): known only after the outcome"
        ],
        "passed": False,
        "split": {"method": "time", "explanation": "ordered by created_at"},
        "blocking": ["stage_at_close", "lost_reason"],
        "columns": [{"name": "amount", "auc": 0.51}],
    }
    paths = dataclasses.replace(
        report_paths(built.project, tmp_path / "report.html"),
        audit=tmp_path / "audit.json",
    )
    paths.audit.write_text(json.dumps(audit))
    with project_environment(built.project.root):
        report.run_report(built.project.params, paths, log_to_mlflow=False)
    text = section_of(paths.out.read_text(), "audit")
    assert "No audit run" not in text and "1 audit warning(s)" in text
    assert "stage_at_close (presence, refused)" in text
    assert "<td>split</td><td>time</td>" in text and "<td>False</td>" in text
    assert "<td>stage_at_close, lost_reason</td>" in text
    assert "auc" not in text  # per-column details stay in audit.json


def test_champion_is_named_by_version_alias_and_date(built: Built) -> None:
    from mlflow import MlflowClient

    record = json.loads(built.paths.record.read_text())
    client = MlflowClient(tracking_uri=built.tracking_uri)
    params = built.project.params
    alias, name = params.tracking.champion_alias, record["registered_model"]
    with project_environment(built.project.root):
        run_id = report.run_id_of(built.paths.record, params.tracking.experiment)
    version = max(
        (v for v in client.search_model_versions(f"name = '{name}'")),
        key=lambda v: int(v.version) if v.run_id == run_id else -1,
    )
    client.set_registered_model_alias(name, alias, version.version)
    try:
        with project_environment(built.project.root):
            names = report.model_names(params, run_id)
            changes = report.champion_changes(params, run_id, names)
    finally:
        client.delete_registered_model_alias(name, alias)
    assert names["label"] == f"v{version.version}" and names["is_champion"]
    assert isinstance(changes, dict)
    page = report.champion_section(changes, alias)
    assert f"v{version.version} is the {alias}" in page
    assert re.search(rf"the {alias} since \d{{4}}-\d\d-\d\d", page) is None  # no move
    assert "No param differs" in page
    assert run_id not in page and "lead-ml-scorer:" not in page
    # The header names the version as people do, never the content hash.
    assert re.search(
        rf"Model v{version.version} of {name}, registered \d{{4}}-\d\d-\d\d",
        built.html,
    )


def test_verdict_says_wins_in_the_top_k_then_only_changed_params() -> None:
    changes = {
        "champion_label": "v2",
        "candidate_label": "v3",
        "alias": "champion",
        "since": "2026-11-30",
        "is_champion": False,
        "params": {"train.learning_rate": {"champion": "0.05", "candidate": "0.1"}},
        "metrics": {
            "capacity.model_wins": {"champion": 688.0, "candidate": 700.0, "delta": 12},
            "capacity.k": {"champion": 978.0, "candidate": 978.0, "delta": 0.0},
            "model.roc_auc": {"champion": 0.845, "candidate": 0.848, "delta": 0.003},
        },
    }
    page = report.champion_section(changes, "champion")
    assert "v3 puts 12 more wins in the top 978 than v2 (700 against 688)" in page
    assert "lead-ml compare v2 v3" in page and "95% CI" in page
    assert "the champion since 2026-11-30" in page
    assert table_rows(page) == [["train.learning_rate", "0.05", "0.1"]]
    # A champion that cannot score this window says why, then the logged figures.
    changes["paired"] = {"refused": "v2 reads column(s) Budget"}
    page = report.champion_section(changes, "champion")
    assert "v2 could not score this test window (v2 reads column(s) Budget)" in page
    assert "12 more wins in the top 978" in page
    # Paired on this page's window: the CI decides the words.
    paired: dict[str, object] = {
        "deals": 3120,
        "k": 978,
        "wins": {"challenger": 700, "reference": 660},
        "delta_wins": 40,
        "delta_wins_ci95": [12.0, 66.0],
        "roc_auc": {"challenger": 0.85, "reference": 0.84},
        "delta_roc_auc": 0.01,
        "delta_roc_auc_ci95": [0.002, 0.018],
    }
    changes["paired"] = paired
    page = report.champion_section(changes, "champion")
    assert "v3 puts 40 more wins in the top 978 than v2 (700 against 660" in page
    assert "95% CI +12 to +66" in page and "beyond chance" in page
    changes["paired"] = {
        **paired,
        "wins": {"challenger": 660, "reference": 700},
        "delta_wins": -40,
        "delta_wins_ci95": [-66.0, -12.0],
    }
    page = report.champion_section(changes, "champion")
    assert "40 fewer wins" in page and "finds fewer wins than v2" in page


def test_bands_a_to_d_show_thresholds_counts_win_rates_and_bant(
    built: Built, window: report.Window
) -> None:
    letters = report.band_table(window.scored)
    assert letters["band"].tolist() == list(report.BANDS)
    assert letters["leads"].sum() == len(window.scored)
    thresholds = built.scorer.thresholds
    rows = table_rows(built.section("bands"))
    for row, letter in zip(rows, letters["band"].astype(str), strict=True):
        members = window.scored[window.scored["band"] == letter]
        assert row[:4] == [
            letter,
            f"below {thresholds['C']:.1%}"
            if letter == "D"
            else f"{thresholds[letter]:.1%} or more",
            f"{len(members):,}",
            f"{int(members['won'].sum()):,}",
        ]
        qualified = members[members["bant_qualified"]]
        assert row[5:] == [f"{len(qualified):,}", f"{int(qualified['won'].sum()):,}"]
        # The band rule: probability >= the band's threshold.
        if letter != "D":
            assert (members["probability"] >= thresholds[letter]).all()
    guides = built.project.params.report.guides
    for band in report.BANDS:
        assert html.escape(getattr(guides, band)) in built.section("bands")
    assert "within 5 minutes" in guides.A and "Recycle" in guides.D
    axis = [e.text for e in built.figure("letter-chart").iter(f"{SVG}text")]
    assert [a for a in axis if a and re.fullmatch("band [A-D]", a)] == [
        f"band {b}" for b in report.BANDS
    ]


def test_band_guides_are_settings(built: Built) -> None:
    letters = pd.DataFrame(
        {
            "band": list(report.BANDS),
            "leads": [1, 1, 1, 1],
            "wins": [1, 0, 0, 0],
            "bant_leads": [0, 0, 0, 0],
            "bant_wins": [0, 0, 0, 0],
            "win_rate": [1.0, 0.0, 0.0, 0.0],
        }
    )
    guides = {b: f"custom words for {b}" for b in report.BANDS}
    cuts = {"A": 0.5, "B": 0.3, "C": 0.1}
    page = report.bands_section(letters, cuts, guides, bant_given=False)
    assert all(f"custom words for {b}" in page for b in report.BANDS)
    assert "50.0% or more" in page and "below 10.0%" in page
    assert report.NO_RULE in page and "BANT-qualified" not in page


def test_segments_judge_each_value_with_enough_deals(
    built: Built, window: report.Window
) -> None:
    from sklearn.metrics import roc_auc_score

    params = built.project.params
    assert window.deals is not None
    columns = report.segment_columns(params, window.deals)
    assert sorted(columns) == sorted(SEGMENTS[built.project.name])
    table = report.segment_table(window, columns, 100, 8)
    assert set(table["column"]) == set(columns)
    assert table.groupby("column")["deals"].sum().eq(len(window.scored)).all()
    records: list[dict[Any, Any]] = table.to_dict("records")
    for row in records:
        values = window.deals[row["column"]].astype("string").str.strip()
        if row["segment"].startswith("any of ") or row["segment"] == "not recorded":
            continue
        part = window.scored[(values == row["segment"]).fillna(False).to_numpy(bool)]
        assert len(part) == row["deals"]
        if row["judged"]:
            auc = roc_auc_score(part["won"], part["probability"].astype(float))
            assert row["auc"] == pytest.approx(auc)
        else:
            fewest = min(row["wins"], row["deals"] - row["wins"])
            assert row["deals"] < 100 or fewest < 10
    page = built.section("segments")
    assert ("not judged" in page) == (~table["judged"]).any()
    assert table["judged"].any(), "every source here has a segment large enough"


def test_amounts_carry_the_currency_of_params(built: Built) -> None:
    currency = built.project.params.report.currency
    has_amount = built.project.params.source.tables.deals.amount is not None
    assert (currency is not None) == has_amount  # the params files here say one
    if has_amount:
        value = metrics_of(built)["capacity"]["model_pipeline_value"]
        assert f"<b>{currency} {value:,.0f}</b>" in built.section("headline")


def test_next_questions_shown_move_the_probability(
    built: Built, window: report.Window
) -> None:
    examples = report.example_leads(window.scored)
    questions = report.question_leads(window.scored, examples)
    moves = report.question_moves(questions)
    assert (moves >= report.MIN_QUESTION_MOVE).all()
    assert set(questions["deal_id"]).isdisjoint(examples["deal_id"])
    page = built.section("examples")
    for deal_id, question in questions[["deal_id", "next_question"]].to_numpy(str):
        assert f"<td>{deal_id}</td>" in page and html.escape(question) in page
    # An example lead shows its question only when the question matters.
    for question, move in zip(
        examples["next_question"], report.question_moves(examples), strict=True
    ):
        if question and move < report.MIN_QUESTION_MOVE:
            assert html.escape(question) not in page


def test_without_a_bant_rule_the_page_compares_with_the_base_rate(
    built: Built,
) -> None:
    metrics = metrics_of(built)
    capacity = {
        k: v for k, v in metrics["capacity"].items() if not k.startswith("bant_")
    }
    metrics = metrics | {"bant": None, "capacity": capacity}
    for key in ("delta_roc_auc", "delta_roc_auc_ci95"):
        metrics.pop(key)
    setting = report.Setting("a CRM export", "Id", "time")
    page = report.headline(metrics, setting)
    k, base = capacity["k"], capacity["base_win_rate"]
    assert f"{k:,} leads taken at random about" in page
    assert f'<span class="big">{round(k * base):,}</span>' in page
    assert report.NO_RULE in page and "BANT rule" not in page.replace(
        "No BANT rule", ""
    )
    plots = report.read_plots(built.paths.plots, bant=False)
    assert not any(name.endswith("_bant") for name in plots)
    specs = report.curve_specs(plots)
    series = {p["series"] for p in specs["roc"]["layer"][0]["data"]["values"]}
    assert series == {"Model", "Random"}


# --- bad inputs -----------------------------------------------------------------------


def copy_inputs(built: Built, tmp_path: Path) -> report.ReportPaths:
    """A copy of the report's small inputs that a test may break."""
    shutil.copytree(built.paths.plots, tmp_path / "plots")
    shutil.copy(built.paths.metrics, tmp_path / "metrics.json")
    shutil.copy(built.paths.record, tmp_path / "export.json")
    return dataclasses.replace(
        built.paths,
        plots=tmp_path / "plots",
        metrics=tmp_path / "metrics.json",
        record=tmp_path / "export.json",
        out=tmp_path / "report.html",
    )


def test_missing_metrics_is_a_one_line_message(built: Built, tmp_path: Path) -> None:
    paths = copy_inputs(built, tmp_path)
    paths.metrics.unlink()
    params = built.project.path("params.yaml")
    result = runner.invoke(app, [*cli_arguments(paths, params), "--no-mlflow"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())  # rich wraps at the terminal width
    assert "metrics.json: not found" in message and "dvc repro" in message
    assert "Traceback" not in result.output
    assert not paths.out.exists()


def test_metrics_without_a_key_names_it(built: Built, tmp_path: Path) -> None:
    paths = copy_inputs(built, tmp_path)
    metrics = metrics_of(built)
    del metrics["capacity"]["k"]
    paths.metrics.write_text(json.dumps(metrics))
    with pytest.raises(report.ReportError, match=r"metrics\.json: no 'capacity\.k'"):
        report.run_report(built.project.params, paths, log_to_mlflow=False)


def test_a_value_that_is_not_a_number_names_file_line_and_column(
    built: Built, tmp_path: Path
) -> None:
    paths = copy_inputs(built, tmp_path)
    roc = paths.plots / "roc_model.csv"
    lines = roc.read_text().splitlines()
    lines[2] = lines[2].split(",")[0] + ",n/a"
    roc.write_text("\n".join(lines) + "\n")
    with pytest.raises(report.ReportError, match=r"roc_model\.csv: line 3, column tpr"):
        report.run_report(built.project.params, paths, log_to_mlflow=False)


def test_a_missing_plot_column_is_named(built: Built, tmp_path: Path) -> None:
    paths = copy_inputs(built, tmp_path)
    bands = paths.plots / "win_rate_by_band.csv"
    pd.read_csv(bands).drop(columns="win_rate").to_csv(bands, index=False)
    with pytest.raises(report.ReportError, match="missing column.*win_rate"):
        report.run_report(built.project.params, paths, log_to_mlflow=False)


def test_an_export_record_without_a_run_is_refused(
    built: Built, tmp_path: Path
) -> None:
    paths = copy_inputs(built, tmp_path)
    paths.record.write_text(json.dumps({"registered_version": 1}))
    with pytest.raises(report.ReportError, match="export.json: no 'model_version'"):
        report.run_report(built.project.params, paths, log_to_mlflow=False)


def test_missing_features_name_the_stage(built: Built, tmp_path: Path) -> None:
    paths = dataclasses.replace(
        copy_inputs(built, tmp_path), features=tmp_path / "absent.parquet"
    )
    with pytest.raises(report.ReportError, match=r"absent\.parquet: features not"):
        report.run_report(built.project.params, paths, log_to_mlflow=False)


# --- the DVC stage --------------------------------------------------------------------


def report_stage() -> dict[str, Any]:
    stage: dict[str, Any] = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][
        "report"
    ]
    return stage


def test_dvc_stage_declares_every_path_the_command_reads() -> None:
    stage = report_stage()
    options = dict(re.findall(r"--(\w+) (\S+)", stage["cmd"]))
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    assert outs == [options.pop("out")] == ["reports/report.html"]
    assert options.pop("params") == "params.yaml"
    assert sorted(options.values()) == sorted(
        d for d in stage["deps"] if not d.startswith("src/")
    )
    assert "src/lead_ml/report.py" in stage["deps"]
    defaults = {k: str(v) for k, v in vars(report.ReportPaths()).items()}
    assert all(defaults[name] == path for name, path in options.items())


def test_dvc_stage_command_writes_the_same_page(built: Built) -> None:
    """The stage's command as dvc.yaml writes it, run in the project folder (as DVC
    runs it), writes the page the test fixture wrote."""
    command = shlex.split(report_stage()["cmd"])
    assert command[:2] == ["lead-ml", "report"]
    with project_environment(built.project.root):
        result = runner.invoke(app, command[1:])
    assert result.exit_code == 0, result.output
    page = built.project.path("reports/report.html").read_text(encoding="utf-8")
    assert page == built.html


def dvc_plots() -> list[dict[str, Any]]:
    plots: list[dict[str, Any]] = [
        next(iter(plot.values()))
        for plot in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    ]
    return plots


def test_dvc_plots_are_labelled_and_bands_use_the_reports_spec() -> None:
    plots = dvc_plots()
    for plot in plots:
        assert " " in plot["x_label"] and " " in plot["y_label"], plot["title"]
    bands = next(p for p in plots if "win_rate_by_band.csv" in str(p["y"]))
    template = ROOT / bands["template"]
    assert json.loads(template.read_text()) == charts.dvc_band_template()
    assert template.name == charts.DVC_BAND_TEMPLATE


def test_dvc_plots_page_inlines_vega_and_loads_nothing() -> None:
    config = (ROOT / ".dvc" / "config").read_text()
    found = re.search(r"html_template = (\S+)", config)
    assert found and found.group(1) == f"plots/{charts.DVC_HTML_TEMPLATE}"
    page = (ROOT / ".dvc" / found.group(1)).read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{scripts}" not in page  # no CDN scripts
    assert "vegaEmbed" in page and not re.search(r"<script[^>]+src=", page)
    # The committed page is what charts writes from the installed Vega bundle.
    assert page == charts.dvc_html_template(), "rerun charts.write_dvc_files"


@pytest.mark.slow
def test_dvc_plots_show_renders_offline(
    synthetic_project: Project, chromium: str, tmp_path: Path
) -> None:
    """`dvc plots show` on a project's plot data, as dvc.yaml and .dvc/config
    declare it, writes a page that draws every plot without the network (once:
    the plot files have the same columns for every source)."""
    shutil.copytree(ROOT / ".dvc" / "plots", tmp_path / ".dvc" / "plots")
    config = (ROOT / ".dvc" / "config").read_text()
    (tmp_path / ".dvc" / "config").write_text(
        config.replace("[core]", "[core]\n    no_scm = true")
    )
    shutil.copytree(
        synthetic_project.path("reports/plots"), tmp_path / "reports" / "plots"
    )
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump(
            {"plots": yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]}
        )
    )
    dvc = Path(sys.executable).parent / "dvc"
    done = subprocess.run(
        [str(dvc), "plots", "show", "-o", "shown"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    page = tmp_path / "shown" / "index.html"
    assert "cdn.jsdelivr" not in page.read_text(encoding="utf-8")
    seen = visit(chromium, page, tmp_path / "profile")
    # Vega's console warnings are DVC's (its built-in templates and the v5 specs on
    # the bundle's Vega 6); an error or an exception would be a plot not drawn.
    errors = [p for p in seen.problems if not p.startswith("console.warning")]
    assert errors == [] and seen.requests == []
    assert distinct_colours(seen.screenshot) > 100  # drawn, not a blank page


# --- a real browser -------------------------------------------------------------------


def _installer() -> list[str] | None:
    """How to run apt-get as root here, or None when it is not allowed."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return ["apt-get"]
    sudo = shutil.which("sudo")
    if (
        sudo
        and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0
    ):
        return [sudo, "-n", "apt-get"]
    return None


def _install_chromium(apt: list[str]) -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*apt, "-o", "DPkg::Lock::Timeout=600", "install", "-y", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:  # stale package lists: refresh once and retry
        subprocess.run([*apt, "update"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
    return done.stderr[-500:]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when absent and allowed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    apt = _installer()
    if apt is None:
        pytest.skip(
            "chromium is not installed and apt-get needs root here: "
            "run `sudo apt-get install -y chromium` to test the report in a browser"
        )
    problem = _install_chromium(apt)
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"apt-get could not install chromium: {problem}")
    return found


def _above_ten(fd: int) -> int:
    """The same pipe end on a descriptor >= 10, so the child's dup2 to 3 and 4 never
    meets it (dup2 onto itself would keep close-on-exec)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """Headless chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, executable: str, profile: Path) -> None:
        self._replies, child_out = map(_above_ten, os.pipe())
        child_in, self._commands = map(_above_ten, os.pipe())

        def attach() -> None:  # in the child, before exec: the protocol's fds
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",  # root in a container has no usable sandbox
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=attach,
        )
        os.close(child_in)
        os.close(child_out)
        self._buffer = b""
        self._last_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str = ""
    ) -> dict[str, Any]:
        """Send one command and return its result; events met on the way are kept."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method}
        message |= {"params": params or {}} | (
            {"sessionId": session} if session else {}
        )
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._last_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                result: dict[str, Any] = reply["result"]
                return result
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        """Read events until one of the given method has arrived."""
        deadline = time.monotonic() + 60
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise TimeoutError("chromium did not answer within 60 s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def close(self) -> None:
        """Close the browser and the pipes."""
        try:
            self.send("Browser.close")
        except (OSError, EOFError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._replies)
        os.close(self._commands)


@dataclass(frozen=True)
class Visit:
    """What the browser saw on a page."""

    problems: list[str]
    requests: list[str]
    figures: list[dict[str, Any]]
    page_width: float
    screenshot: bytes
    overflow: dict[str, int] = dataclasses.field(default_factory=dict)


#: Per figure: its box on the page, how many data marks of each Vega mark type
#: (line, symbol, rect...) it draws with a visible size, and how many of its labels
#: stick out of the SVG's own box (a cut-off label would).
FIGURE_PROBE = """JSON.stringify([...document.querySelectorAll('figure')].map(f => {
  const svg = f.querySelector('svg');
  const box = svg.getBoundingClientRect();
  const drawn = {};
  f.querySelectorAll('svg g.role-mark').forEach(g => {
    const kind = [...g.classList].find(c => c.startsWith('mark-')).slice(5);
    const shown = [...g.children].filter(e => {
      const b = e.getBBox(); return b.width + b.height > 0; });
    drawn[kind] = (drawn[kind] || 0) + shown.length;
  });
  const outside = [...svg.querySelectorAll('text')].filter(t => {
    const b = t.getBoundingClientRect();
    return b.left < box.left - 1 || b.right > box.right + 1;
  }).length;
  return {id: f.id, x: box.x + scrollX, y: box.y + scrollY, width: box.width,
          height: box.height, outside: outside, drawn: drawn};
}))"""
#: The page's own width against the viewport's: wider means a sideways scroll.
OVERFLOW_PROBE = """JSON.stringify({scroll: document.documentElement.scrollWidth,
  client: document.documentElement.clientWidth})"""
VIEWPORT = 1280
#: The widths the page must work at: a wide screen and a small phone.
WIDTHS = (VIEWPORT, 360)


def visit(executable: str, page: Path, profile: Path, width: int = VIEWPORT) -> Visit:
    """Load a page at a width (1280 px by default; below 600 px as a phone), collect
    errors and requests, measure the figures and the page's width, take a
    full-page screenshot."""
    browser = Browser(executable, profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})
        session = browser.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": width,
                "height": 900,
                "deviceScaleFactor": 1,
                "mobile": width < 600,
            },
            session=session,
        )
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        probe = browser.send(
            "Runtime.evaluate",
            {"expression": FIGURE_PROBE, "returnByValue": True},
            session=session,
        )
        overflow = browser.send(
            "Runtime.evaluate",
            {"expression": OVERFLOW_PROBE, "returnByValue": True},
            session=session,
        )
        size = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
        shot = browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": clip | {"scale": 1},
            },
            session=session,
        )
    finally:
        browser.close()
    return Visit(
        problems=_problems(browser.events),
        requests=_requests(browser.events),
        figures=json.loads(probe["result"]["value"]),
        page_width=float(size["width"]),
        screenshot=base64.b64decode(shot["data"]),
        overflow=json.loads(overflow["result"]["value"]),
    )


def _problems(events: list[dict[str, Any]]) -> list[str]:
    """Uncaught exceptions, console errors and warnings, and logged errors."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails']}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in (
            "error",
            "warning",
            "assert",
        ):
            found.append(f"console.{params['type']}: {params['args']}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in (
            "error",
            "warning",
        ):
            found.append(f"log: {params['entry']['text']}")
    return found


def _requests(events: list[dict[str, Any]]) -> list[str]:
    """Every URL the page asked for other than local files and data URLs."""
    return [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
        and not e["params"]["request"]["url"].startswith(("file:", "data:"))
    ]


def distinct_colours(png: bytes, box: tuple[int, int, int, int] | None = None) -> int:
    """How many distinct colours a PNG (or a box of it) holds."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    region = image.crop(box) if box else image
    colours = region.getcolors(maxcolors=region.width * region.height)
    return len(colours or [])


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_report_loads_in_chromium_draws_every_figure_and_fits_the_screen(
    built: Built, chromium: str, tmp_path: Path, width: int
) -> None:
    seen = visit(chromium, built.paths.out, tmp_path / "profile", width)
    (tmp_path / f"report-{width}.png").write_bytes(seen.screenshot)
    assert seen.problems == []
    assert seen.requests == []
    # Nothing scrolls sideways: wide tables scroll inside their own card.
    assert seen.overflow["scroll"] <= seen.overflow["client"] == width
    assert seen.page_width <= width
    figures = {f["id"]: f for f in seen.figures}
    expected = expected_figures(built)
    assert set(figures) == set(expected)
    for anchor, (kind, count) in expected.items():
        figure = figures[anchor]
        assert figure["x"] >= 0 and figure["x"] + figure["width"] <= width, anchor
        assert figure["width"] > min(300, width - 60), anchor
        assert figure["drawn"].get(kind, 0) == count, anchor
        assert figure["outside"] == 0, anchor
        if width == VIEWPORT:
            left, top = math.floor(figure["x"]), math.floor(figure["y"])
            box = (left, top, left + int(figure["width"]), top + int(figure["height"]))
            # White, grid, text and each series' colour, with anti-aliasing.
            assert distinct_colours(seen.screenshot, box) > 20, anchor
    assert distinct_colours(seen.screenshot) > 200


@pytest.mark.slow
def test_browser_check_catches_errors_and_network_requests(
    chromium: str, tmp_path: Path
) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        '<html><body><figure id="x"><svg width="10" height="10"></svg></figure>'
        '<img src="http://127.0.0.1:9/pixel.png" style="display:none">'
        "<script>console.error('boom'); notDefined();</script></body></html>"
    )
    seen = visit(chromium, page, tmp_path / "profile")
    assert any("boom" in p for p in seen.problems)
    assert any(p.startswith("exception") for p in seen.problems)
    assert seen.requests == ["http://127.0.0.1:9/pixel.png"]
    assert distinct_colours(seen.screenshot) < 5
