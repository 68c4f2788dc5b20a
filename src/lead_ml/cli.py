"""The `lead-ml` command: one subcommand per pipeline stage, thin over the library."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from lead_ml.config import ConfigError, Params, load_params

if TYPE_CHECKING:
    from lead_ml.compare import Promotion

app = typer.Typer(
    help="lead-ml: score B2B leads with LightGBM, beat BANT, explain in MEDDIC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="The params file (see README).")
]
F = TypeVar("F", bound=Callable[..., Any])


def _user_errors() -> tuple[type[Exception], ...]:
    from lead_ml.audit import LeakageError
    from lead_ml.compare import CompareError
    from lead_ml.report import ReportError
    from lead_ml.schema import ContractError
    from lead_ml.scorer import ScorerError

    return (
        ConfigError,
        ContractError,
        ScorerError,
        LeakageError,
        CompareError,
        ReportError,
        FileNotFoundError,
    )


def friendly(command: F) -> F:
    """Turn user mistakes (bad params, data or paths) into a message and exit 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _user_errors() as error:
            # soft_wrap: one line per message line, whatever the terminal width.
            errors.print(
                f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _params(path: Path) -> Params:
    return load_params(path)


def _done(stage: str, started: float, details: str) -> None:
    elapsed = time.perf_counter() - started
    console.print(f"[green]{stage}[/] {details} ({elapsed:.1f}s)", soft_wrap=True)


@app.command("check-config")
@friendly
def check_config(
    params: ParamsOption = Path("params.yaml"),
    data: Annotated[
        bool,
        typer.Option(
            "--data/--no-data",
            help="Also check the columns crm: names against the files' headers "
            "(reads no rows).",
        ),
    ] = True,
) -> None:
    """Validate a params file without running anything; each problem names its key.

    Example: lead-ml check-config --params examples/maven_crm/params.yaml
    """
    settings = _params(params)
    if settings.crm is None:
        console.print(
            f"[green]check-config[/] {params}: valid (no crm section: the built-in "
            "synthetic CRM)",
            soft_wrap=True,
        )
        return
    crm = settings.crm
    checked = ""
    if data:
        from lead_ml.crm import check_columns

        headers = check_columns(crm)
        checked = (
            f"; every column it names is in the files ({len(headers['deals'])} deal "
            f"and {len(headers['accounts'])} account columns)"
        )
    letters = ", ".join(crm.bant.letters)
    console.print(
        f"[green]check-config[/] {params}: valid{checked}; deals {crm.deals.path}, "
        f"BANT letters {letters} (share {crm.bant.share:g}), "
        f"{len(crm.dimensions)} columns mapped to dimensions",
        soft_wrap=True,
    )


@app.command()
@friendly
def audit(
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="The audit report (JSON).")] = Path(
        "reports/audit.json"
    ),
    summary_md: Annotated[
        Path, typer.Option("--summary", help="Readable summary (Markdown).")
    ] = Path("reports/audit.md"),
    rejects: Annotated[
        Path, typer.Option(help="Rejected rows of the export, one reason each (CSV).")
    ] = Path("reports/audit_rejects.csv"),
) -> None:
    """Check your CRM export before training: sufficiency, split, copies, leakage.

    Writes the report, then stops (exit 2) when a column looks like leakage and is
    not under crm.allowed, saying why.

    Example: lead-ml audit --params examples/x_education/params.yaml
    """
    from lead_ml.audit import check, run_audit, write_report
    from lead_ml.crm import load_crm

    started = time.perf_counter()
    settings = _params(params)
    if settings.crm is None:
        raise ConfigError(
            f"{params}: no crm section; the audit checks your own CRM export (README "
            '"Use your own CRM export")'
        )
    deals = load_crm(settings.crm)
    result = run_audit(deals, settings.crm, settings.split, settings.seed)
    write_report(result, out, summary_md)
    rejects.parent.mkdir(parents=True, exist_ok=True)
    deals.rejects.to_csv(rejects, index=False)
    _print_audit(result.report)
    check(result)
    _done("audit", started, f"passed -> {out}, {summary_md}")


@app.command()
@friendly
def pipeline(
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[
        Path, typer.Option(help="Folder for the audit, model, metrics and scorer.")
    ] = Path("runs/crm"),
) -> None:
    """Run your own CRM export end to end: audit, features, train, evaluate, export.

    Stops (exit 2) on columns the audit finds leaky, saying why; prints model vs
    your BANT rule. The scorer lands in OUT/scorer for `lead-ml score`.

    Example: lead-ml pipeline --params examples/x_education/params.yaml --out runs/x
    """
    from lead_ml.byo import run_crm_pipeline

    started = time.perf_counter()
    settings = _params(params)
    if settings.crm is None:
        raise ConfigError(
            f"{params}: no crm section; `lead-ml pipeline` runs your own CRM export "
            '(README "Use your own CRM export"); the synthetic CRM runs with `make run`'
        )
    result = run_crm_pipeline(settings, out)
    _print_audit(result["audit"])
    metrics = result["metrics"]
    if metrics["evaluation"] == "repeated_cv":
        cv = metrics["cv"]
        console.print(
            f"evaluated by {cv['folds']}-fold CV x {cv['repeats']} repeats "
            f"(too few deals for one test window): model ROC AUC "
            f"{cv['model_roc_auc_mean']:.3f} +- {cv['model_roc_auc_std']:.3f}"
        )
    _print_comparison(metrics)
    _done("pipeline", started, f"-> {out}")


def _print_audit(report: dict[str, Any]) -> None:
    data, split = report["data"], report["split"]
    console.print(
        f"{data['rows_in']:,} rows: {data['won']:,} won, {data['lost']:,} lost, "
        f"{data['open']:,} open, {data['rejected']:,} rejected; split by "
        f"{split['method']}; {report['sufficiency']['message']}",
        soft_wrap=True,
    )
    table = Table("column", "check", "outcome", "reason", title="audit flags")
    for flag in report["flags"]:
        outcome = "allowed" if flag["allowed"] else flag["severity"]
        style = "red" if flag["blocking"] else ""
        table.add_row(
            flag["column"], flag["check"], outcome, flag["reason"], style=style
        )
    if report["flags"]:
        console.print(table)


@app.command()
@friendly
def generate(
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Folder for the raw tables.")] = Path(
        "data/raw"
    ),
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="parquet or csv (default: params data.format)."),
    ] = None,
) -> None:
    """Generate the synthetic CRM (accounts, deals, activities, truth.json).

    Example: lead-ml generate --params params.yaml --out data/raw --format csv
    """
    from lead_ml.pipeline import run_generate

    started = time.perf_counter()
    settings = _params(params)
    if fmt is not None:
        settings = settings.model_copy(
            update={"data": settings.data.model_copy(update={"format": fmt})}
        )
        if fmt not in ("parquet", "csv"):
            raise ConfigError(f"--format: expected parquet or csv, got {fmt!r}")
    summary = run_generate(settings, out)
    _done(
        "generate",
        started,
        f"{summary['n_deals']:,} deals ({summary['n_open']:,} open), "
        f"{summary['n_activities']:,} activities, closed win rate "
        f"{summary['win_rate_closed']:.1%} -> {out}",
    )


@app.command()
@friendly
def validate(
    raw: Annotated[
        Path, typer.Option(help="Folder with accounts, deals, activities.")
    ] = Path("data/raw"),
    out: Annotated[Path, typer.Option(help="Folder for the valid rows.")] = Path(
        "data/validated"
    ),
    rejects: Annotated[
        Path, typer.Option(help="CSV of rejected rows, one reason each.")
    ] = Path("reports/rejects.csv"),
) -> None:
    """Check the data contract; bad rows go to the rejects file with a reason.

    Example: lead-ml validate --raw data/raw --rejects reports/rejects.csv
    """
    from lead_ml.pipeline import run_validate

    started = time.perf_counter()
    counts = run_validate(raw, out, rejects)
    table = Table("table", "rows in", "valid", "rejected", title="validate")
    for name, row in counts.items():
        table.add_row(
            name, f"{row['rows_in']:,}", f"{row['valid']:,}", f"{row['rejected']:,}"
        )
    console.print(table)
    _done("validate", started, f"rejects -> {rejects}")


@app.command()
@friendly
def featurize(
    params: ParamsOption = Path("params.yaml"),
    validated: Annotated[Path, typer.Option(help="Folder of validated tables.")] = Path(
        "data/validated"
    ),
    out: Annotated[Path, typer.Option(help="Features Parquet file.")] = Path(
        "data/features/features.parquet"
    ),
) -> None:
    """Build point-in-time features (only what was known at each deal's snapshot).

    Example: lead-ml featurize --validated data/validated --out data/features/f.parquet
    """
    from lead_ml.pipeline import run_featurize

    started = time.perf_counter()
    summary = run_featurize(_params(params), validated, out)
    _done(
        "featurize",
        started,
        f"{summary['deals']:,} deals x {summary['features']} columns -> {out}",
    )


@app.command()
@friendly
def train(
    params: ParamsOption = Path("params.yaml"),
    features: Annotated[Path, typer.Option(help="Features Parquet file.")] = Path(
        "data/features/features.parquet"
    ),
    out: Annotated[Path, typer.Option(help="Model folder.")] = Path("models/model"),
) -> None:
    """Train LightGBM on the oldest deals, stop early and calibrate on the next window.

    Example: lead-ml train --features data/features/features.parquet --out models/model
    """
    from lead_ml.pipeline import run_train

    started = time.perf_counter()
    summary = run_train(_params(params), features, out)
    _done(
        "train",
        started,
        f"{summary['best_iteration']} trees on {summary['n_train']:,} deals, "
        f"MLflow run {summary['run_id']} -> {out}",
    )


@app.command()
@friendly
def evaluate(
    params: ParamsOption = Path("params.yaml"),
    features: Annotated[Path, typer.Option(help="Features Parquet file.")] = Path(
        "data/features/features.parquet"
    ),
    model: Annotated[Path, typer.Option(help="Model folder.")] = Path("models/model"),
    metrics: Annotated[Path, typer.Option(help="Metrics JSON.")] = Path(
        "reports/metrics.json"
    ),
    plots: Annotated[Path, typer.Option(help="Folder for plot data.")] = Path(
        "reports/plots"
    ),
) -> None:
    """Score the model and the BANT rule on the same latest test window.

    Example: lead-ml evaluate --model models/model --metrics reports/metrics.json
    """
    from lead_ml.pipeline import run_evaluate

    started = time.perf_counter()
    results = run_evaluate(_params(params), features, model, metrics, plots)
    _print_comparison(results)
    _done("evaluate", started, f"-> {metrics}, {plots}")


@app.command()
@friendly
def export(
    params: ParamsOption = Path("params.yaml"),
    features: Annotated[Path, typer.Option(help="Features Parquet file.")] = Path(
        "data/features/features.parquet"
    ),
    model: Annotated[Path, typer.Option(help="Model folder.")] = Path("models/model"),
    validated: Annotated[Path, typer.Option(help="Validated tables.")] = Path(
        "data/validated"
    ),
    out: Annotated[Path, typer.Option(help="Scorer folder.")] = Path("models/scorer"),
    record: Annotated[Path, typer.Option(help="Registry record JSON.")] = Path(
        "reports/export.json"
    ),
) -> None:
    """Export the self-contained scorer (MLflow pyfunc) and register a new version.

    Example: lead-ml export --model models/model --out models/scorer
    """
    from lead_ml.pipeline import run_export

    started = time.perf_counter()
    result = run_export(_params(params), features, model, validated, out, record)
    _done(
        "export",
        started,
        f"{result['registered_model']} version {result['registered_version']} -> {out}",
    )


@app.command()
@friendly
def report(
    params: ParamsOption = Path("params.yaml"),
    metrics: Annotated[Path, typer.Option(help="Metrics JSON from evaluate.")] = Path(
        "reports/metrics.json"
    ),
    plots: Annotated[Path, typer.Option(help="Plot data from evaluate.")] = Path(
        "reports/plots"
    ),
    scorer: Annotated[Path, typer.Option(help="Scorer folder from export.")] = Path(
        "models/scorer"
    ),
    features: Annotated[Path, typer.Option(help="Features Parquet file.")] = Path(
        "data/features/features.parquet"
    ),
    validated: Annotated[Path, typer.Option(help="Validated tables.")] = Path(
        "data/validated"
    ),
    rejects: Annotated[Path, typer.Option(help="Rejects CSV from validate.")] = Path(
        "reports/rejects.csv"
    ),
    record: Annotated[Path, typer.Option(help="Export record (its MLflow run).")] = (
        Path("reports/export.json")
    ),
    audit: Annotated[
        Path, typer.Option(help="Audit findings, shown when the file exists.")
    ] = Path("reports/audit.json"),
    out: Annotated[Path, typer.Option(help="The HTML report.")] = Path(
        "reports/report.html"
    ),
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log it to the MLflow run.")
    ] = True,
) -> None:
    """Write the self-contained HTML model report for revenue ops.

    Example: lead-ml report --scorer models/scorer --out reports/report.html
    """
    from lead_ml.report import ReportPaths, run_report

    started = time.perf_counter()
    paths = ReportPaths(
        metrics=metrics,
        plots=plots,
        scorer=scorer,
        features=features,
        validated=validated,
        rejects=rejects,
        record=record,
        audit=audit,
        out=out,
    )
    result = run_report(_params(params), paths, log_to_mlflow=mlflow)
    logged = f", logged to MLflow run {result['run_id']}" if mlflow else ""
    _done("report", started, f"{result['champion']}; -> {out}{logged}")


@app.command()
@friendly
def score(
    model: Annotated[
        Path, typer.Option(help="Scorer folder from `lead-ml export`.")
    ] = Path("models/scorer"),
    input: Annotated[
        Path, typer.Option("--input", help="Leads (.parquet or .csv).")
    ] = Path("leads.parquet"),
    output: Annotated[Path, typer.Option(help="Scores (.parquet or .csv).")] = Path(
        "scores.parquet"
    ),
    activities: Annotated[
        Path | None, typer.Option(help="Activity log of the leads (.parquet or .csv).")
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Rejected rows CSV (default: beside the output)."),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="MEDDIC reasons (slower).")
    ] = True,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Leads per chunk.")] = 50_000,
    summary_json: Annotated[
        Path | None, typer.Option("--summary", help="Also write the summary as JSON.")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="local: chunks in this process; spark: Spark reads the input and "
            "writes a Parquet folder (needs the spark extra and Java 17; README)."
        ),
    ] = "local",
    master: Annotated[
        str, typer.Option(help="Spark master for --engine spark, e.g. yarn.")
    ] = "local[*]",
) -> None:
    """Score open leads in chunks: probability, score, band, MEDDIC reasons.

    Example: lead-ml score --model models/scorer --input leads.csv --output s.parquet

    On Spark: lead-ml score --engine spark --input leads.parquet --output scores.parquet
    """
    from rich.progress import Progress

    from lead_ml.batch import count_rows, score_file
    from lead_ml.scorer import load_scorer

    if engine not in ("local", "spark"):
        raise ConfigError(f"--engine: expected local or spark, got {engine!r}")
    if engine == "spark":
        if rejects is not None:
            raise ConfigError(
                "--rejects: with --engine spark rejected rows stay in the output "
                "with their reject_reason; drop --rejects"
            )
        done = _score_on_spark(
            model, input, output, activities, explain, master, chunk_rows
        )
        _print_batch(done)
        if summary_json is not None:
            summary_json.write_text(json.dumps(done, indent=2) + "\n")
        return
    scorer = load_scorer(model)
    rejects = rejects or output.with_name(f"{output.stem}.rejects.csv")
    from lead_ml.byo import CrmScorer, score_crm_file

    total = count_rows(input) if input.exists() else None
    with Progress(console=errors, transient=True) as bar:
        task = bar.add_task("scoring", total=total)
        if isinstance(scorer, CrmScorer):  # a scorer of your own CRM export
            if scorer.counts_activities and activities is None:
                errors.print(
                    "note: this model counts activities; without --activities every "
                    "lead is scored as having none"
                )
            done = score_crm_file(
                scorer,
                input,
                output,
                rejects,
                explain,
                chunk_rows,
                progress=lambda n: bar.advance(task, n),
                activities_path=activities,
            )
        else:
            done = score_file(
                scorer,
                input,
                output,
                rejects,
                activities,
                explain,
                chunk_rows,
                progress=lambda n: bar.advance(task, n),
            ).as_dict()
    _print_batch(done)
    if summary_json is not None:
        summary_json.write_text(json.dumps(done, indent=2) + "\n")


def _score_on_spark(
    model: Path,
    input: Path,
    output: Path,
    activities: Path | None,
    explain: bool,
    master: str,
    chunk_rows: int,
) -> dict[str, Any]:
    """Run `lead-ml score --engine spark` (lead_ml.spark); its summary as a dict."""
    from lead_ml.spark import SparkJob, score_with_spark, spark_uri

    job = SparkJob(
        model=model,
        input=spark_uri(input),
        output=spark_uri(output),
        activities=spark_uri(activities) if activities else "",
        explain=explain,
        master=master,
        chunk_rows=chunk_rows,
    )
    return score_with_spark(job).as_dict()


def _print_batch(result: dict[str, Any]) -> None:
    table = Table("rows in", "scored", "rejected", "seconds", "rows/s", title="score")
    table.add_row(
        f"{result['rows_in']:,}",
        f"{result['scored']:,}",
        f"{result['rejected']:,}",
        f"{result['seconds']:.1f}",
        f"{result['rows_per_second']:,.0f}",
    )
    console.print(table)
    console.print(
        f"rows in = scored + rejected: {result['rows_in']:,} = "
        f"{result['scored']:,} + {result['rejected']:,} (checked)"
    )
    drift = result["drift_psi"]
    if drift:
        worst = next(iter(drift))
        console.print(
            f"drift vs training window: largest PSI {drift[worst]:.3f} ({worst}), "
            f"score PSI {drift.get('score', 0.0):.3f}; above 0.25 means a shift"
            + (
                ""
                if result.get("drift_checked", True)
                else f" (not judged: fewer than {result['drift_min_rows']:,} rows)"
            ),
            soft_wrap=True,
        )
    unseen = {k: v for k, v in result["unseen_categories"].items() if v}
    if unseen:
        console.print(f"unseen category values (scored as unseen): {unseen}")
    if result["rejected"]:
        console.print(
            f"rejected rows and reasons -> {result['rejects']}", soft_wrap=True
        )
    if result["drift_warnings"]:
        errors.print(
            "[yellow]warning:[/] drift above PSI 0.25 against the training window in "
            f"{', '.join(result['drift_warnings'])}: the model may need a retrain",
            soft_wrap=True,
        )
    console.print(f"scores -> {result['output']}", soft_wrap=True)


@app.command()
@friendly
def summary(
    metrics: Annotated[Path, typer.Option(help="Metrics JSON from evaluate.")] = Path(
        "reports/metrics.json"
    ),
) -> None:
    """Print the model-vs-BANT table from a metrics file.

    Example: lead-ml summary --metrics reports/metrics.json
    """
    try:
        results = json.loads(metrics.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{metrics}: not found; run `dvc repro` (or `make run`) first"
        ) from None
    _print_comparison(results)


def _print_comparison(results: dict[str, Any]) -> None:
    from lead_ml.pipeline import comparison_rows

    title = (
        f"Model vs BANT on {results['n_test']:,} deals created "
        f"{results['test_start']} to {results['test_end']}"
    )
    if results.get("evaluation") == "repeated_cv":
        title = f"Model vs BANT, out-of-fold on {results['n_test']:,} closed deals"
    elif results.get("split") in ("order", "random"):
        title = (
            f"Model vs BANT on {results['n_test']:,} test deals "
            f"({results['split']} split: no created dates)"
        )
    table = Table("", "model", "BANT rule", title=title)
    for row in comparison_rows(results):
        table.add_row(*row)
    console.print(table)


FeaturesWindowOption = Annotated[
    Path, typer.Option("--features", help="Features Parquet file: its test split.")
]
ValidatedOption = Annotated[
    Path, typer.Option("--validated", help="Validated tables: lead rows, outcomes.")
]
RecordOption = Annotated[
    Path, typer.Option("--record", help="Export record, read from DVC experiments.")
]


@app.command()
@friendly
def compare(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="Versions (v3 or 3), latest, champion, MLflow run ids or DVC "
            "experiment names; the first is the reference. Default: the champion "
            "and the latest version.",
            show_default=False,
        ),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    features: FeaturesWindowOption = Path("data/features/features.parquet"),
    validated: ValidatedOption = Path("data/validated"),
    start: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First day of the window."),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Last day of the window."),
    ] = None,
    capacity: Annotated[
        int | None,
        typer.Option(min=1, help="Leads reps can work (default: evaluate.capacity)."),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option(help="Folder for compare.md and compare.csv.")
    ] = Path("reports/compare"),
    record: RecordOption = Path("reports/export.json"),
) -> None:
    """Compare model versions and the BANT rule on the same test window.

    Each model is loaded from the MLflow registry and re-scored on the
    newest test window (or --start/--end). Shows params that differ,
    metrics with 95% CIs, wins and pipeline value at capacity, conversion
    per band and stability per month; writes Markdown and CSV.

    Example: lead-ml compare v2 v3 --capacity 500 --out-dir reports/compare
    """
    from lead_ml.compare import headline, run_compare, sections, write_outputs

    started = time.perf_counter()
    comparison = run_compare(
        _params(params),
        models or [],
        features,
        validated,
        start.date() if start else None,
        end.date() if end else None,
        capacity,
        record=record,
    )
    console.print(headline(comparison), soft_wrap=True)
    for section, frame in sections(comparison).items():
        table = Table(*map(str, frame.columns), title=section)
        for row in frame.itertuples(index=False):
            table.add_row(*map(str, row))
        console.print(table)
    paths = write_outputs(comparison, out_dir)
    _done("compare", started, "-> " + ", ".join(map(str, paths)))


@app.command()
@friendly
def promote(
    model: Annotated[
        str | None,
        typer.Argument(
            help="The challenger (a version, run id or DVC experiment); default: the "
            "latest version.",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Move the champion here, no gate (rollback)."),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    features: FeaturesWindowOption = Path("data/features/features.parquet"),
    validated: ValidatedOption = Path("data/validated"),
    record: RecordOption = Path("reports/export.json"),
) -> None:
    """Make the challenger the champion only if it passes the promotion gate.

    The gate (promotion: in params.yaml) compares it with the champion,
    or with the BANT rule when there is none yet, on the newest test
    window. A failed gate exits with code 1 and leaves the champion
    alone; --to moves the alias to any version without the gate.

    Example: lead-ml promote v3   (and to roll back: lead-ml promote --to v2)
    """
    from lead_ml.compare import CompareError, rollback
    from lead_ml.compare import promote as run_promotion

    settings = _params(params)
    alias = settings.tracking.champion_alias
    if to is not None:
        if model is not None:
            raise CompareError("give a challenger or --to VERSION, not both")
        previous, target = rollback(settings, to, record=record)
        before = f"v{previous}" if previous is not None else "none"
        console.print(
            f"{alias} moved to {target.label} (was {before}) without the promotion "
            "gate: --to skips it"
        )
        return
    result = run_promotion(settings, model, features, validated, record=record)
    _print_promotion(result, alias)


def _print_promotion(result: Promotion, alias: str) -> None:
    label = result.challenger.label
    before = f"v{result.previous}" if result.previous is not None else "none"
    if result.previous == result.challenger.version:
        console.print(f"{label} is already the {alias}; nothing to do")
        return
    table = Table("condition", "result", "numbers", title=f"Promotion gate for {label}")
    for check in result.checks:
        verdict = "[green]pass[/]" if check.passed else "[bold red]FAIL[/]"
        table.add_row(check.condition, verdict, check.numbers)
    console.print(table)
    console.print(f"on {result.window}", soft_wrap=True)
    if result.promoted:
        console.print(f"[green]promoted:[/] {label} is now the {alias} (was {before})")
        return
    failed = "; ".join(c.condition for c in result.checks if not c.passed)
    errors.print(
        f"[bold red]gate failed:[/] {failed}. The {alias} stays {before}.",
        highlight=False,
    )
    raise typer.Exit(code=1)


@app.command()
@friendly
def bench(
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Results JSON.")] = Path(
        "reports/bench.json"
    ),
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny sizes: seconds, for tests.")
    ] = False,
) -> None:
    """Benchmark scoring, explanations, memory and growth; print every ratio with
    its target (figures are ratios to references measured in the same run).

    Example: lead-ml bench --params params.yaml --out reports/bench.json
    """
    from lead_ml.bench import BenchSizes, run_bench, write_results

    sizes = BenchSizes.quick() if quick else BenchSizes()
    results = run_bench(
        _params(params), sizes, progress=lambda step: errors.print(step)
    )
    write_results(results, out)
    _print_bench(results)
    console.print(f"bench -> {out} ({results['seconds']:.0f}s)")


def _print_bench(results: dict[str, Any]) -> None:
    table = Table("figure", "value", "target", "met", title="lead-ml bench")
    for name, value in results["figures"].items():
        met = results["met"].get(name)
        verdict = "-" if met is None else "[green]yes[/]" if met else "[bold red]no[/]"
        table.add_row(name, f"{value:,.3g}", results["targets"][name], verdict)
    console.print(table)


if __name__ == "__main__":
    app()
