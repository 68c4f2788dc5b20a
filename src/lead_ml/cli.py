"""The `lead-ml` command: one subcommand per pipeline stage, thin over the library."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup, TyperOption

from lead_ml.config import Params, load_params
from lead_ml.vocab import USER_ERRORS, CompareError, ConfigError, LeakageError

# Commands import what they run when they run: `lead-ml --help` and a mistyped
# option answer in a fraction of a second instead of loading LightGBM and MLflow.

if TYPE_CHECKING:
    from lead_ml.batch import CrmFile
    from lead_ml.compare import Promotion
    from lead_ml.scorer import Scorer, ScorerSource


def _untyped_flags(params: list[Any]) -> None:
    """Give flags (``--explain/--no-explain``, ``--help``) an empty metavar: a flag
    takes no value, and typer would print ``<bool>`` beside it in --help."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""


class LeadGroup(TyperGroup):
    """The `lead-ml` group: neither it nor any command shows a type beside a flag
    in --help (commands are fixed as the group hands them out, so a command added
    later is covered too)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _untyped_flags(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _untyped_flags(command.get_params(ctx))
        return command


app = typer.Typer(
    help="lead-ml: score B2B leads with LightGBM, beat BANT, explain in MEDDIC.",
    no_args_is_help=True,
    cls=LeadGroup,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="The params file (see README).")
]
#: The stages' files, named alike in every command that reads or writes them.
ValidatedOption = Annotated[
    Path, typer.Option("--validated", help="Folder of the validated tables.")
]
AuditOption = Annotated[Path, typer.Option("--audit", help="The audit report (JSON).")]
MetricsOption = Annotated[
    Path, typer.Option("--metrics", help="Metrics JSON (evaluate writes it).")
]
PlotsOption = Annotated[
    Path, typer.Option("--plots", help="Folder of plot data (evaluate writes it).")
]
F = TypeVar("F", bound=Callable[..., Any])
#: Exit codes besides 0 (done) and 2 (a user error, see `friendly`): a job that
#: scored no row because it rejected every one; a signal stopped it (128 + signal).
EXIT_ALL_REJECTED = 3
#: The choices of options that take one of a few values, listed in --help (a bad
#: value is refused naming them). GenerateFormat: params' synthetic.format values.
Engine = Literal["local", "spark"]
GenerateFormat = Literal["parquet", "csv"]
#: deals, accounts, activities, or a further table named under source.tables.
TableName = str


def _version(asked: bool) -> None:
    """Print lead-ml's version (its package metadata) and the scorer format it
    writes and reads, then exit."""
    if not asked:
        return
    from importlib.metadata import version

    from lead_ml.scorer import FORMAT_VERSION

    console.print(
        f"lead-ml {version('lead-ml')}, scorer format {FORMAT_VERSION} (written by "
        "`lead-ml export`, read by `lead-ml score`)",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Show lead-ml's version and its scorer format, then exit.",
        ),
    ] = False,
) -> None:
    # No docstring: the group's help is the Typer's (above).
    pass


def plain(value: object) -> str:
    """Text from the user (a path, a column, a message quoting them) made safe to
    print through rich: ``[red]`` and ``[/x]`` are shown as typed, not read as
    markup (which hid them, or failed the command after its work was done)."""
    return escape(str(value))


def table_row(*cells: object) -> list[str]:
    """Cells of a rich table row, each printed as typed (see :func:`plain`)."""
    return [plain(cell) for cell in cells]


def friendly(command: F) -> F:
    """Turn user mistakes (bad params, data or paths) into a message and exit 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as error:
            # soft_wrap: one line per message line, whatever the terminal width.
            errors.print(
                f"[bold red]error:[/] {plain(error)}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _params(path: Path) -> Params:
    return load_params(path)


def _done(stage: str, started: float, details: str) -> None:
    elapsed = time.perf_counter() - started
    console.print(
        f"[green]{stage}[/] {plain(details)} ({elapsed:.1f}s)", soft_wrap=True
    )


@app.command("check-config")
@friendly
def check_config(
    params: ParamsOption = Path("params.yaml"),
    data: Annotated[
        bool,
        typer.Option(
            "--data/--no-data",
            help="Also check the columns the source section and the BANT rule name "
            "against the files' headers, and, when a rule is given, that each of "
            "its letters is true for some deal (reads the deals and joined tables, "
            "not the activity log).",
        ),
    ] = True,
) -> None:
    """Validate a params file without running anything; each problem names its key.

    Example: lead-ml check-config --params examples/maven_crm/params.yaml
    """
    from lead_ml.baseline import NO_RULE, check_rule_on_files
    from lead_ml.sources import check_columns

    if _check_fragment(params):
        return
    settings = _params(params)
    source, rule = settings.source, settings.bant
    checked = ""
    if data:
        headers = check_columns(source, rule)
        counts = ", ".join(f"{len(h)} {name}" for name, h in headers.items())
        checked = f"; every column it names is in the files ({counts} columns)"
        if rule is not None:
            check_rule_on_files(rule, source)
            checked += ", and every BANT letter is true for some deal"
    if rule is None:
        compared = NO_RULE
    else:
        letters = ", ".join(rule.letters)
        compared = f"BANT letters {letters} (threshold {rule.threshold:g})"
    console.print(
        "[green]check-config[/] "
        + plain(
            f"{params}: valid{checked}; {source.name}: deals "
            f"{source.tables.deals.path}, {compared}, {len(source.dimensions)} "
            "columns mapped to dimensions"
        ),
        soft_wrap=True,
    )


def _check_fragment(params: Path) -> bool:
    """Check a params fragment (sections to merge into a params file, without
    source or bant, e.g. examples/writeback/salesforce.yaml); False when the file
    is a whole params file."""
    from lead_ml.config import is_fragment, parse_fragment, read_params_file

    raw = read_params_file(params)
    if not is_fragment(raw):
        return False
    sections = ", ".join(parse_fragment(raw, str(params)))
    console.print(
        "[green]check-config[/] "
        + plain(
            f"{params}: a valid params fragment (section(s) {sections}, no source "
            "or bant); merge it into a params file, or pass it as --params to "
            "`lead-ml score --crm-file` (which reads only writeback)"
        ),
        soft_wrap=True,
    )
    return True


@app.command()
@friendly
def read(
    table: Annotated[TableName, typer.Option(help="The source table.")],
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Where the copy goes (Parquet).")] = Path(
        "data/tables/deals.parquet"
    ),
) -> None:
    """Copy one table of the source (CSV or Parquet, as exported) to Parquet.

    Example: lead-ml read --table deals --out data/tables/deals.parquet
    """
    from lead_ml.stages import run_read

    started = time.perf_counter()
    result = run_read(_params(params), table, out)
    _done(
        "read",
        started,
        f"{result['rows']:,} rows of {result['path']} ({result['read_with']}) -> {out}",
    )


@app.command()
@friendly
def audit(
    params: ParamsOption = Path("params.yaml"),
    validated: ValidatedOption = Path("data/validated"),
    out: Annotated[Path, typer.Option(help="The audit report (JSON).")] = Path(
        "reports/audit.json"
    ),
    summary_md: Annotated[
        Path, typer.Option("--summary", help="Readable summary (Markdown).")
    ] = Path("reports/audit.md"),
    split: Annotated[
        Path, typer.Option(help="The split of every deal (Parquet).")
    ] = Path("data/audit/split.parquet"),
    tables: Annotated[
        Path,
        typer.Option(help="Folder of the tables `lead-ml read` copied (copies)."),
    ] = Path("data/tables"),
) -> None:
    """Check the deals before training: sufficiency, split, copies, leakage.

    Writes the report and the split, then stops (exit 2) when a column looks like
    leakage and is not under source.allowed, saying why.

    Example: lead-ml audit --validated data/validated --out reports/audit.json
    """
    from lead_ml.stages import run_audit

    started = time.perf_counter()
    try:
        report = run_audit(_params(params), validated, out, summary_md, split, tables)
    except LeakageError:
        _print_audit(json.loads(out.read_text()))
        raise
    _print_audit(report)
    _done("audit", started, f"passed -> {out}, {summary_md}")


def _print_audit(report: dict[str, Any]) -> None:
    data, split = report["data"], report["split"]
    console.print(
        plain(
            f"{data['rows_in']:,} rows: {data['won']:,} won, {data['lost']:,} lost, "
            f"{data['open']:,} open, {data['rejected']:,} rejected; split by "
            f"{split['method']}; {report['sufficiency']['message']}"
        ),
        soft_wrap=True,
    )
    table = Table("column", "check", "outcome", "reason", title="audit flags")
    for flag in report["flags"]:
        outcome = "allowed" if flag["allowed"] else flag["severity"]
        style = "red" if flag["blocking"] else ""
        table.add_row(
            *table_row(flag["column"], flag["check"], outcome, flag["reason"]),
            style=style,
        )
    if report["flags"]:
        console.print(table)
    # Every column left out, with its reason: a column never disappears unsaid.
    # One line each, never wrapped by the console: a long column name stays whole
    # (copied into params as it is) whatever the terminal's width.
    left_out = report["data"].get("excluded", {})
    if left_out:
        console.print(plain(f"columns left out ({len(left_out)}):"))
        for column, reason in left_out.items():
            console.print(plain(f"  {column}: {reason}"), soft_wrap=True)
    flagged = {f"{f['column']} ({f['check']}" for f in report["flags"]}
    for warning in report.get("warnings", []):
        if not any(warning.startswith(f) for f in flagged):
            console.print(plain(f"warning: {warning}"), soft_wrap=True)


@app.command()
@friendly
def generate(
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Folder for the raw tables.")] = Path(
        "data/raw"
    ),
    fmt: Annotated[
        GenerateFormat | None,
        typer.Option(
            "--format", help="File format (default: params synthetic.format)."
        ),
    ] = None,
) -> None:
    """Generate the synthetic CRM (accounts, deals, activities, truth.json).

    Example: lead-ml generate --params params.yaml --out data/raw --format csv
    """
    from rich.progress import Progress

    from lead_ml.stages import run_generate
    from lead_ml.synthetic import STEPS

    started = time.perf_counter()
    settings = _params(params)
    if fmt is not None:
        synthetic = settings.synthetic.model_copy(update={"format": fmt})
        settings = settings.model_copy(update={"synthetic": synthetic})
    # On a terminal only (stderr), and gone when done: 400k deals take ~20 s.
    with Progress(console=errors, transient=True) as bar:
        task = bar.add_task("generate", total=len(STEPS))

        def step(name: str) -> None:
            bar.update(task, completed=STEPS.index(name), description=name)

        summary = run_generate(settings, out, step)
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
    params: ParamsOption = Path("params.yaml"),
    tables: Annotated[
        Path, typer.Option(help="Folder of the tables `lead-ml read` copied.")
    ] = Path("data/tables"),
    out: Annotated[Path, typer.Option(help="Folder for the valid deals.")] = Path(
        "data/validated"
    ),
    rejects: Annotated[
        Path, typer.Option(help="CSV of rejected rows, one reason each.")
    ] = Path("reports/rejects.csv"),
) -> None:
    """Check the data contract; bad rows go to the rejects file with a reason.

    Example: lead-ml validate --tables data/tables --rejects reports/rejects.csv
    """
    from lead_ml.stages import run_validate

    started = time.perf_counter()
    counts = run_validate(_params(params), tables, out, rejects)
    table = Table("table", "rows in", "kept", "rejected", title="validate")
    table.add_row(
        "deals",
        f"{counts['rows_in']:,}",
        f"{counts['deals']:,}",
        f"{counts['rejected']:,}",
    )
    for name in ("accounts", "activities"):
        if counts[f"{name}_in"]:
            kept = counts[f"{name}_in"] - counts[f"{name}_rejected"]
            table.add_row(
                name,
                f"{counts[f'{name}_in']:,}",
                f"{kept:,}",
                f"{counts[f'{name}_rejected']:,}",
            )
    console.print(table)
    console.print(
        f"{counts['won']:,} won, {counts['lost']:,} lost, {counts['open']:,} open",
        soft_wrap=True,
    )
    _done("validate", started, f"rejects -> {rejects}")


FeaturesOption = Annotated[
    Path, typer.Option("--features", help="Features Parquet file.")
]
RegistryOption = Annotated[
    Path, typer.Option("--registry", help="The feature registry (JSON).")
]
ModelOption = Annotated[Path, typer.Option("--model", help="Model folder.")]


@app.command()
@friendly
def featurize(
    params: ParamsOption = Path("params.yaml"),
    validated: ValidatedOption = Path("data/validated"),
    audit: AuditOption = Path("reports/audit.json"),
    split: Annotated[Path, typer.Option(help="The audit's split (Parquet).")] = Path(
        "data/audit/split.parquet"
    ),
    out: Annotated[Path, typer.Option(help="Features Parquet file.")] = Path(
        "data/features/features.parquet"
    ),
    registry: RegistryOption = Path("data/features/registry.json"),
) -> None:
    """Build point-in-time features (only what was known at each deal's snapshot).

    Example: lead-ml featurize --validated data/validated --out data/features/f.parquet
    """
    from lead_ml.stages import run_featurize

    started = time.perf_counter()
    summary = run_featurize(_params(params), validated, audit, split, out, registry)
    for note in summary["notes"]:
        errors.print(f"note: {plain(note)}", soft_wrap=True)
    _done(
        "featurize",
        started,
        f"{summary['deals']:,} deals x {summary['features']} features -> {out}",
    )


@app.command()
@friendly
def train(
    params: ParamsOption = Path("params.yaml"),
    features: FeaturesOption = Path("data/features/features.parquet"),
    registry: RegistryOption = Path("data/features/registry.json"),
    out: Annotated[Path, typer.Option(help="Model folder.")] = Path("models/model"),
) -> None:
    """Train LightGBM on the oldest deals, stop early and calibrate on the next window.

    Example: lead-ml train --features data/features/features.parquet --out models/model
    """
    from lead_ml.stages import run_train

    started = time.perf_counter()
    summary = run_train(_params(params), features, registry, out)
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
    features: FeaturesOption = Path("data/features/features.parquet"),
    registry: RegistryOption = Path("data/features/registry.json"),
    model: ModelOption = Path("models/model"),
    validated: ValidatedOption = Path("data/validated"),
    audit: AuditOption = Path("reports/audit.json"),
    metrics: MetricsOption = Path("reports/metrics.json"),
    plots: PlotsOption = Path("reports/plots"),
) -> None:
    """Score the model and the BANT rule on the same latest test window (or out of
    fold, when the audit finds too few deals for one).

    Example: lead-ml evaluate --model models/model --metrics reports/metrics.json
    """
    from lead_ml.stages import run_evaluate

    started = time.perf_counter()
    paths = {
        "features": features,
        "registry": registry,
        "model": model,
        "validated": validated,
        "audit": audit,
        "metrics": metrics,
        "plots": plots,
    }
    results = run_evaluate(_params(params), paths)
    _print_comparison(results)
    _done("evaluate", started, f"-> {metrics}, {plots}")


@app.command()
@friendly
def export(
    params: ParamsOption = Path("params.yaml"),
    features: FeaturesOption = Path("data/features/features.parquet"),
    registry: RegistryOption = Path("data/features/registry.json"),
    model: ModelOption = Path("models/model"),
    validated: ValidatedOption = Path("data/validated"),
    out: Annotated[Path, typer.Option(help="Scorer folder.")] = Path("models/scorer"),
    record: Annotated[Path, typer.Option(help="Registry record JSON.")] = Path(
        "reports/export.json"
    ),
) -> None:
    """Export the self-contained scorer (MLflow pyfunc) and register a new version.

    Example: lead-ml export --model models/model --out models/scorer
    """
    from lead_ml.stages import run_export

    started = time.perf_counter()
    paths = {
        "features": features,
        "registry": registry,
        "model": model,
        "validated": validated,
        "scorer": out,
        "record": record,
    }
    result = run_export(_params(params), paths)
    _done(
        "export",
        started,
        f"{result['registered_model']} version {result['registered_version']} -> {out}",
    )


@app.command()
@friendly
def track(
    params: ParamsOption = Path("params.yaml"),
    features: FeaturesOption = Path("data/features/features.parquet"),
    registry: RegistryOption = Path("data/features/registry.json"),
    model: ModelOption = Path("models/model"),
    validated: ValidatedOption = Path("data/validated"),
    metrics: MetricsOption = Path("reports/metrics.json"),
    plots: PlotsOption = Path("reports/plots"),
    scorer: Annotated[Path, typer.Option(help="Scorer folder from export.")] = Path(
        "models/scorer"
    ),
    record: Annotated[Path, typer.Option(help="Export record JSON.")] = Path(
        "reports/export.json"
    ),
    report: Annotated[Path, typer.Option(help="The report page, if written.")] = Path(
        "reports/report.html"
    ),
) -> None:
    """Complete the MLflow record of the current outputs (after `dvc repro`): the
    training run, its evaluation and report, the registered scorer version; only
    what the store lacks (after `make clean` DVC skips stages whose outputs come
    out the same), so running it again logs nothing. Writes no output.

    Example: lead-ml track --params params.yaml
    """
    from lead_ml.stages import run_track

    started = time.perf_counter()
    paths = {
        "features": features,
        "registry": registry,
        "model": model,
        "validated": validated,
        "metrics": metrics,
        "plots": plots,
        "scorer": scorer,
        "record": record,
        "report": report,
    }
    result = run_track(_params(params), paths)
    held = (
        f"run {result['run_id']}, {result['registered_model']} version "
        f"{result['registered_version']}"
    )
    if result["logged"]:
        _done("track", started, f"logged {', '.join(result['logged'])}: {held}")
    else:
        _done("track", started, f"MLflow record already complete ({held})")


@app.command()
@friendly
def report(
    params: ParamsOption = Path("params.yaml"),
    metrics: MetricsOption = Path("reports/metrics.json"),
    plots: PlotsOption = Path("reports/plots"),
    scorer: Annotated[
        str,
        typer.Option(
            help="Scorer folder from export, or models:/NAME@ALIAS, "
            "models:/NAME/VERSION or runs:/RUN_ID/PATH."
        ),
    ] = "models/scorer",
    features: Annotated[Path, typer.Option(help="Features Parquet file.")] = Path(
        "data/features/features.parquet"
    ),
    validated: ValidatedOption = Path("data/validated"),
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
    monitor: Annotated[
        Path | None,
        typer.Option(help="`lead-ml monitor`'s JSON: adds what past scores did."),
    ] = None,
) -> None:
    """Write the self-contained HTML model report for revenue ops.

    Example: lead-ml report --scorer models/scorer --out reports/report.html
    """
    from lead_ml.report import ReportPaths, run_report
    from lead_ml.scorer import resolve_scorer

    started = time.perf_counter()
    paths = ReportPaths(
        metrics=metrics,
        plots=plots,
        scorer=resolve_scorer(scorer).folder,
        features=features,
        validated=validated,
        rejects=rejects,
        record=record,
        audit=audit,
        out=out,
    )
    result = run_report(_params(params), paths, log_to_mlflow=mlflow, monitor=monitor)
    logged = f", logged to MLflow run {result['run_id']}" if mlflow else ""
    _done("report", started, f"{result['champion']}; -> {out}{logged}")


@app.command()
@friendly
def score(
    model: Annotated[
        str,
        typer.Option(
            help="The scorer: a folder from `lead-ml export`, or from the MLflow "
            "store models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH."
        ),
    ] = "models/scorer",
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
        Engine,
        typer.Option(
            help="local: chunks in this process; spark: Spark reads the input and "
            "writes a Parquet folder (needs the spark extra and Java 17; README)."
        ),
    ] = "local",
    master: Annotated[
        str, typer.Option(help="Spark master for --engine spark, e.g. yarn.")
    ] = "local[*]",
    expect_version: Annotated[
        str | None,
        typer.Option(
            help="Refuse the scorer unless its model_version is this one "
            "(lead-ml-scorer:<64 hex digits>, as scored rows carry it)."
        ),
    ] = None,
    crm_file: Annotated[
        Path | None,
        typer.Option(
            "--crm-file",
            help="Also write a CSV to import into Salesforce or HubSpot, columns "
            "mapped by the writeback section of --params (README).",
        ),
    ] = None,
    params: Annotated[
        Path,
        typer.Option(
            "--params",
            "-p",
            help="The params file or fragment with the writeback "
            "section (read only with --crm-file).",
        ),
    ] = Path("params.yaml"),
    scored_at: Annotated[
        str | None,
        typer.Option(
            help="The time stamp of every row of --crm-file, ISO 8601 with a time "
            "zone (default: now, UTC), e.g. 2026-12-01T09:30:00Z."
        ),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            help="NAME=PATH: a many-to-one table training joined onto the deals "
            "(source.tables: accounts, products...), joined by key as training did; "
            "once per table.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score open leads in chunks: probability, score, band, MEDDIC reasons.

    Example: lead-ml score --model models/scorer --input leads.csv --output s.parquet

    The champion: lead-ml score --model models:/lead-ml-scorer@champion --input x.csv

    On Spark: lead-ml score --engine spark --input leads.parquet --output scores.parquet

    For the CRM: lead-ml score --input leads.csv --crm-file crm.csv --params
    examples/writeback/salesforce.yaml
    """
    from rich.progress import Progress

    from lead_ml.batch import JobInterrupted, score_file
    from lead_ml.scorer import load_scorer, resolve_scorer
    from lead_ml.tables import count_rows

    crm = _crm_file(crm_file, params, scored_at, summary_json)
    tables = _join_tables(table or [])
    if engine == "spark":
        if crm is not None:
            raise ConfigError(
                "--crm-file: only with --engine local (a Spark job writes a Parquet "
                "folder); score locally, or drop --crm-file"
            )
        if rejects is not None:
            raise ConfigError(
                "--rejects: with --engine spark rejected rows stay in the output "
                "with their reject_reason; drop --rejects"
            )
        _check_score_paths(input, output, None, activities, summary_json)
        source = resolve_scorer(model)
        # The folder is checked (and its version named) before Spark starts.
        checked = load_scorer(source.folder, expect_version)
        warnings = _activities_unknown(checked, activities)
        spark_options = (explain, master, chunk_rows, tables)
        done = _score_on_spark(source.folder, input, output, activities, *spark_options)
        done = _warned(done, warnings, checked)
        _finish_batch(done | _model_summary(source, checked), summary_json)
        return
    rejects = rejects or output.with_name(f"{output.stem}.rejects.csv")
    _check_score_paths(input, output, rejects, activities, summary_json)
    source = resolve_scorer(model)
    scorer = load_scorer(source.folder, expect_version)
    warnings = _activities_unknown(scorer, activities)
    total = count_rows(input) if input.exists() else None
    try:
        # On a terminal only (stderr), gone when done: never in an output file.
        with Progress(console=errors, transient=True) as bar:
            ids = bar.add_task("checking ids", total=total)
            task = bar.add_task("scoring", total=total)
            done = score_file(
                scorer,
                input,
                output,
                rejects,
                activities,
                explain,
                chunk_rows,
                progress=lambda n: bar.advance(task, n),
                crm=crm,
                checking=lambda n: bar.advance(ids, n),
                tables=tables,
            ).as_dict()
    except JobInterrupted as stop:
        errors.print(
            f"[bold red]error:[/] {plain(stop)}: nothing was replaced, "
            f"{plain(output)} is as it was; run the job again",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=stop.exit_code) from None
    done = _warned(done, warnings, scorer)
    _finish_batch(done | _model_summary(source, scorer), summary_json)


def _join_tables(given: list[str]) -> dict[str, Path]:
    """``--table NAME=PATH`` options as {name: path}; ConfigError for any other
    form or a name given twice."""
    tables: dict[str, Path] = {}
    for option in given:
        name, sep, path = option.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(
                f"--table {option!r}: give NAME=PATH, e.g. --table "
                "accounts=accounts.csv (NAME as under source.tables)"
            )
        if name.strip() in tables:
            raise ConfigError(f"--table {name.strip()}: given twice; give it once")
        tables[name.strip()] = Path(path.strip())
    return tables


def _activities_unknown(scorer: Scorer, activities: Path | None) -> list[str]:
    """Warn (one line) when a model that counts activities is scored without an
    activity log, and return the warning for the summary (none otherwise)."""
    if activities is not None or not scorer.counts_activities:
        return []
    columns = ", ".join(scorer.activity_columns or [])
    warning = (
        f"this model counts activities ({len(scorer.activity_features)} features); "
        "no --activities given: those features are read as unknown (scored as not "
        "known, never as 0 activities), and their drift only says so; pass "
        f"--activities FILE, the leads' activity log ({columns})"
    )
    errors.print(f"[yellow]warning:[/] {plain(warning)}", soft_wrap=True)
    return [warning]


def _warned(
    done: dict[str, Any], warnings: list[str], scorer: Scorer
) -> dict[str, Any]:
    """The summary with its ``warnings``. Features read as unknown for want of an
    activity log leave the drift warnings: the log is missing, not shifted."""
    if not warnings:
        return done | {"warnings": []}
    unknown = set(scorer.activity_features)
    drifted = [name for name in done["drift_warnings"] if name not in unknown]
    return done | {"warnings": warnings, "drift_warnings": drifted}


def _model_summary(source: ScorerSource, scorer: Scorer) -> dict[str, Any]:
    """The summary's ``model``: where the scorer came from (a folder, or a
    registered version and its alias) and its content version."""
    return {"model": source.as_dict() | {"model_version": scorer.model_version}}


def _crm_file(
    path: Path | None, params: Path, scored_at: str | None, summary_json: Path | None
) -> CrmFile | None:
    """The CRM import file `lead-ml score` writes (None without --crm-file): its
    mapping from the params' writeback section, one time stamp for the job."""
    from lead_ml.batch import CrmFile, refuse_collisions, scored_at_moment
    from lead_ml.config import load_writeback

    if path is None:
        if scored_at is not None:
            raise ConfigError("--scored-at: only with --crm-file; add --crm-file")
        return None
    refuse_collisions(
        {"--params": params, "--crm-file": path, "--summary": summary_json}
    )
    return CrmFile(path, load_writeback(params), scored_at_moment(scored_at))


def _check_score_paths(
    input: Path,
    output: Path,
    rejects: Path | None,
    activities: Path | None,
    summary_json: Path | None,
) -> None:
    """Refuse, before the scorer is even loaded, paths of `lead-ml score` that
    collide or a summary path that is a folder (the job checks its own files)."""
    from lead_ml.batch import refuse_collisions, refuse_folder

    named = {
        "--input": input,
        "--output": output,
        "--rejects": rejects,
        "--activities": activities,
        "--summary": summary_json,
    }
    refuse_collisions(named)
    if summary_json is not None:
        refuse_folder(summary_json, "--summary")


def _finish_batch(done: dict[str, Any], summary_json: Path | None) -> None:
    """Print a job's summary, write it as JSON if asked, and exit with code 3 and
    a warning when the job rejected every row (so that a scheduler notices)."""
    from lead_ml.tables import write_json

    _print_batch(done)
    if summary_json is not None:
        write_json(done, summary_json)
    if done["rows_in"] and not done["scored"]:
        errors.print(
            f"[yellow]warning:[/] every row was rejected ({done['rows_in']:,} of "
            f"{done['rows_in']:,}) and no lead was scored; see the reasons in "
            f"{plain(done['rejects'] or done['output'])}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=EXIT_ALL_REJECTED)


def _score_on_spark(
    model: Path,
    input: Path,
    output: Path,
    activities: Path | None,
    explain: bool,
    master: str,
    chunk_rows: int,
    tables: dict[str, Path] | None = None,
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
        tables={name: str(path) for name, path in (tables or {}).items()},
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
    if "crm_file" in result:
        console.print(
            plain(
                f"CRM import file: {result['crm_rows']:,} rows, one per scored lead "
                f"(rejected rows are only in {result['rejects']}): "
                f"{result['crm_file']}"
            ),
            soft_wrap=True,
        )
    for name, n in result.get("leads_without_match", {}).items():
        console.print(
            plain(
                f"--table {name}: {n:,} leads have no row in it (their key is not "
                f"there): scored with its columns unknown, as training kept such deals"
            ),
            soft_wrap=True,
        )
    drift = result["drift_psi"]
    if drift:
        worst = next(iter(drift))
        console.print(
            plain(
                f"drift vs training window: largest PSI {drift[worst]:.3f} ({worst}), "
                f"score PSI {drift.get('score', 0.0):.3f}; above 0.25 means a shift"
            )
            + (
                ""
                if result.get("drift_checked", True)
                else f" (not judged: fewer than {result['drift_min_rows']:,} rows)"
            ),
            soft_wrap=True,
        )
    unseen = {k: v for k, v in result["unseen_categories"].items() if v}
    if unseen:
        console.print(
            plain(f"unseen category values (scored as unseen): {unseen}"),
            soft_wrap=True,
        )
    if result.get("activities_rejected"):
        console.print(
            f"activity rows left out: {result['activities_rejected']:,} (no lead id, "
            "no readable time stamp or type, or a malformed CSV line)",
            soft_wrap=True,
        )
    if result["rejected"]:
        console.print(
            f"rejected rows and reasons -> {plain(result['rejects'])}", soft_wrap=True
        )
    if result["drift_warnings"]:
        errors.print(
            "[yellow]warning:[/] drift above PSI 0.25 against the training window in "
            f"{plain(', '.join(result['drift_warnings']))}: the model may need a "
            "retrain",
            soft_wrap=True,
        )
    if "model" in result:
        model = result["model"]
        console.print(
            plain(f"model: {model['description']}, {model['model_version']}"),
            soft_wrap=True,
        )
    console.print(f"scores -> {plain(result['output'])}", soft_wrap=True)


@app.command()
@friendly
def serve(
    model: Annotated[
        str,
        typer.Option(
            help="The scorer: a folder from `lead-ml export`, or models:/NAME@ALIAS, "
            "models:/NAME/VERSION or runs:/RUN_ID/PATH (resolved once, at start)."
        ),
    ] = "models/scorer",
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 5001,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    expect_version: Annotated[
        str | None,
        typer.Option(
            help="Refuse the scorer unless its model_version is this one "
            "(default: LEAD_ML_EXPECT_VERSION, if set)."
        ),
    ] = None,
) -> None:
    """Serve a scorer over HTTP: MLflow's scoring server, POST /invocations.

    Checks the folder, then runs `mlflow models serve --env-manager local` with
    this environment's bin folder first on PATH, pinned to the checked version.

    Example: lead-ml serve --model models/scorer --port 5001
    """
    import os

    from lead_ml.scorer import (
        EXPECT_VERSION_ENV,
        find_folder,
        resolve_scorer,
        serve_command,
        verify_folder,
    )

    source = resolve_scorer(model)
    folder = find_folder(source.folder)
    pinned = expect_version or os.environ.get(EXPECT_VERSION_ENV) or None
    checked = verify_folder(folder, pinned)
    argv, env = serve_command(folder, checked, host, port, workers)
    errors.print(
        plain(f"serving {source.describe()} ({checked}) on http://{host}:{port}"),
        soft_wrap=True,
    )
    os.execve(argv[0], argv, env)  # the server replaces this process (signals too)


@app.command()
@friendly
def summary(
    metrics: MetricsOption = Path("reports/metrics.json"),
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


def comparison_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The model-vs-BANT table `make run` prints: (measure, model, BANT); without a
    rule, (measure, model, base rate)."""
    model, bant, capacity = metrics["model"], metrics["bant"], metrics["capacity"]
    low, high = metrics["delta_roc_auc_ci95"]
    if bant is None:
        return _base_rate_rows(metrics)
    return [
        ("ROC AUC", f"{model['roc_auc']:.3f}", f"{bant['roc_auc']:.3f}"),
        ("PR AUC", f"{model['pr_auc']:.3f}", f"{bant['pr_auc']:.3f}"),
        (
            "AUC gain (95% CI)",
            f"{metrics['delta_roc_auc']:+.3f} [{low:+.3f}, {high:+.3f}]",
            "",
        ),
        (
            f"wins in top {capacity['k']} leads",
            f"{capacity['model_wins']} ({capacity['model_win_rate']:.1%})",
            f"{capacity['bant_wins']} ({capacity['bant_win_rate']:.1%})",
        ),
        ("calibration error (ECE)", f"{model['ece']:.3f}", "-"),
    ]


def _base_rate_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """:func:`comparison_rows` without a rule: the model against the base rate (a
    list in no order: ROC AUC 0.5, its top K win at the base rate)."""
    model, capacity = metrics["model"], metrics["capacity"]
    baseline = metrics.get("baseline") or {}
    low, high = metrics["delta_roc_auc_ci95"]
    rate = capacity["base_win_rate"]
    return [
        ("ROC AUC", f"{model['roc_auc']:.3f}", "0.500"),
        ("PR AUC", f"{model['pr_auc']:.3f}", f"{baseline.get('pr_auc', rate):.3f}"),
        (
            "AUC gain (95% CI)",
            f"{metrics['delta_roc_auc']:+.3f} [{low:+.3f}, {high:+.3f}]",
            "",
        ),
        (
            f"wins in top {capacity['k']} leads",
            f"{capacity['model_wins']} ({capacity['model_win_rate']:.1%})",
            f"{capacity.get('base_rate_wins', rate * capacity['k']):.0f} ({rate:.1%})",
        ),
        ("calibration error (ECE)", f"{model['ece']:.3f}", "-"),
    ]


def _print_comparison(results: dict[str, Any]) -> None:
    rule = results.get("bant") is not None
    versus = "BANT" if rule else "the base rate"
    title = (
        f"Model vs {versus} on {results['n_test']:,} deals created "
        f"{results['test_start']} to {results['test_end']}"
    )
    evaluation = results.get("evaluation")
    if evaluation not in (None, "holdout"):
        cv = results["cv"]
        kind = (
            "rolling-origin folds"
            if evaluation == "rolling_origin"
            else "stratified folds (no dates or order)"
        )
        title = (
            f"Model vs {versus}, out of fold on {results['n_test']:,} closed deals "
            f"({cv['folds']} {kind}: ROC AUC is the folds' mean, sd "
            f"{cv['model_roc_auc_std']:.3f})"
        )
    elif results.get("split") in ("order", "random"):
        title = (
            f"Model vs {versus} on {results['n_test']:,} test deals "
            f"({results['split']} split: no created dates)"
        )
    table = Table("", "model", "BANT rule" if rule else "base rate", title=plain(title))
    for row in comparison_rows(results):
        table.add_row(*table_row(*row))
    console.print(table)
    interval = results["model"].get("roc_auc_ci95")
    if interval:
        console.print(
            plain(
                f"model ROC AUC {results['model']['roc_auc']:.3f} "
                f"(95% CI {interval[0]:.3f} to {interval[1]:.3f})"
            )
        )
    if not rule:
        note = (results.get("baseline") or {}).get("note", "no BANT rule was given")
        console.print(plain(note[:1].upper() + note[1:]), soft_wrap=True)
    if results.get("verdict"):
        console.print(plain(f"verdict: {results['verdict']}"), soft_wrap=True)
    for warning in results.get("warnings", []):
        console.print(plain(f"warning: {warning}"), soft_wrap=True)


FeaturesWindowOption = Annotated[
    Path, typer.Option("--features", help="Features Parquet file: its test split.")
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
    """Compare model versions and the BANT rule (or, without one, the base rate)
    on the same test window.

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
    console.print(plain(headline(comparison)), soft_wrap=True)
    for section, frame in sections(comparison).items():
        table = Table(*table_row(*frame.columns), title=plain(section))
        for row in frame.itertuples(index=False):
            table.add_row(*table_row(*row))
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
    reason: Annotated[
        str | None,
        typer.Option(
            help="Why, in your words: kept with the move in the registry's alias "
            "history (tags lead_ml.alias_move.N).",
            show_default=False,
        ),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    features: FeaturesWindowOption = Path("data/features/features.parquet"),
    validated: ValidatedOption = Path("data/validated"),
    record: RecordOption = Path("reports/export.json"),
) -> None:
    """Make the challenger the champion only if it passes the promotion gate.

    The gate (promotion: in params.yaml) compares it with the champion,
    or with the BANT rule (the base rate without one) when there is none
    yet, on the newest test window. A failed gate exits with code 1 and
    leaves the champion alone; --to moves the alias to any version without the gate.

    Every move is kept in the registry's alias history with its date and
    reason.

    Example: lead-ml promote v3   (and to roll back: lead-ml promote --to v2
    --reason "v3 over-scores new accounts")
    """
    from lead_ml.compare import promote as run_promotion
    from lead_ml.compare import rollback

    settings = _params(params)
    alias = settings.tracking.champion_alias
    if to is not None:
        if model is not None:
            raise CompareError("give a challenger or --to VERSION, not both")
        previous, target = rollback(settings, to, record=record, reason=reason)
        before = f"v{previous}" if previous is not None else "none"
        console.print(
            plain(
                f"{alias} moved to {target.label} (was {before}) without the "
                "promotion gate: --to skips it"
            )
        )
        return
    result = run_promotion(
        settings, model, features, validated, record=record, reason=reason
    )
    _print_promotion(result, alias)


def _print_promotion(result: Promotion, alias: str) -> None:
    label, alias = plain(result.challenger.label), plain(alias)
    before = f"v{result.previous}" if result.previous is not None else "none"
    if result.previous == result.challenger.version:
        console.print(f"{label} is already the {alias}; nothing to do")
        return
    table = Table("condition", "result", "numbers", title=f"Promotion gate for {label}")
    for check in result.checks:
        verdict = "[green]pass[/]" if check.passed else "[bold red]FAIL[/]"
        table.add_row(plain(check.condition), verdict, plain(check.numbers))
    console.print(table)
    console.print(f"on {plain(result.window)}", soft_wrap=True)
    if result.promoted:
        console.print(f"[green]promoted:[/] {label} is now the {alias} (was {before})")
        return
    failed = "; ".join(plain(c.condition) for c in result.checks if not c.passed)
    errors.print(
        f"[bold red]gate failed:[/] {failed}. The {alias} stays {before}.",
        highlight=False,
    )
    raise typer.Exit(code=1)


@app.command()
@friendly
def monitor(
    scores: Annotated[
        list[Path],
        typer.Argument(
            help="Score files `lead-ml score` wrote (.parquet or .csv), any number.",
            show_default=False,
        ),
    ],
    params: ParamsOption = Path("params.yaml"),
    validated: ValidatedOption = Path("data/validated"),
    rejects: Annotated[
        Path, typer.Option(help="Rejects CSV from validate (ids it refused).")
    ] = Path("reports/rejects.csv"),
    model: Annotated[
        str | None,
        typer.Option(
            help="Scorer folder or models:/ reference: its training window is the "
            "PSI reference (default models/scorer when it exists, else the first "
            "month scored)."
        ),
    ] = None,
    scored_at: Annotated[
        list[str] | None,
        typer.Option(
            "--scored-at",
            help="When the files were scored (ISO 8601): once for all, or once per "
            "file in order. Default: a scored_at column, else the file's time.",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="The monitor result (JSON).")] = Path(
        "reports/monitor.json"
    ),
    fail_on_retrain: Annotated[
        bool,
        typer.Option(
            "--fail-on-retrain", help="Exit with code 1 when the verdict is retrain."
        ),
    ] = False,
) -> None:
    """Judge past scores by the outcomes closed since: win rate per band,
    calibration by month, AUC, PSI over time, and the retrain rule (monitor: in
    params.yaml). Re-run `lead-ml validate` (or `dvc repro`) on the newer export
    first, so data/validated holds the outcomes.

    Example: lead-ml monitor scores/2025-06.parquet --scored-at 2025-06-30
    """
    from lead_ml.monitor import headline, monitor_scores, score_files, tables
    from lead_ml.scorer import load_scorer, resolve_scorer
    from lead_ml.sources import read_deals
    from lead_ml.tables import write_json

    started = time.perf_counter()
    settings = _params(params)
    folder = Path("models/scorer") if model is None else resolve_scorer(model).folder
    reference, version = None, None
    if model is not None or folder.exists():
        scorer = load_scorer(folder)
        reference = scorer.spec["drift_reference"]["score"]
        version = scorer.model_version
    deals = read_deals(validated, rejects)
    files = score_files(scores, scored_at)
    result = monitor_scores(settings, files, deals, reference, version)
    console.print(plain(headline(result)), soft_wrap=True)
    for title, frame in tables(result).items():
        table = Table(*table_row(*frame.columns), title=plain(title))
        for row in frame.itertuples(index=False):
            table.add_row(*table_row(*row))
        console.print(table)
    write_json(result, out)
    _done("monitor", started, f"{result['verdict']['decision']} -> {out}")
    if fail_on_retrain and result["verdict"]["retrain"]:
        raise typer.Exit(code=1)


@app.command("open-leads")
@friendly
def open_leads(
    at: Annotated[
        datetime,
        typer.Option(formats=["%Y-%m-%d"], help="The day (UTC, start of day)."),
    ],
    out: Annotated[Path, typer.Option(help="The leads (.parquet or .csv).")],
    params: ParamsOption = Path("params.yaml"),
    validated: ValidatedOption = Path("data/validated"),
    activities_out: Annotated[
        Path | None,
        typer.Option(help="Also write their activity log up to that day here."),
    ] = None,
) -> None:
    """Write the leads that were open on a day, as the export held them, and their
    activities up to then: replay a past scoring run for `lead-ml monitor`.

    Example: lead-ml open-leads --at 2025-06-30 --out leads/2025-06-30.parquet
    """
    from lead_ml.monitor import open_at
    from lead_ml.sources import read_deals
    from lead_ml.tables import write_csv, write_parquet

    started = time.perf_counter()
    settings = _params(params)
    leads, log = open_at(read_deals(validated), settings.source, at)
    for frame, path in ((leads, out), (log, activities_out)):
        if frame is not None and path is not None:
            csv = path.suffix.lower() == ".csv"
            (write_csv if csv else write_parquet)(frame, path)
    shown = f"{len(leads):,} leads open on {at.date()} -> {out}"
    if activities_out is not None and log is not None:
        shown += f", {len(log):,} activities -> {activities_out}"
    elif activities_out is not None:
        errors.print("note: the source has no activity log; none written")
    _done("open-leads", started, shown)


if __name__ == "__main__":
    app()
