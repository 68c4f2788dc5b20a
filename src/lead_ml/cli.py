"""The `lead-ml` command: one subcommand per pipeline stage, thin over the library."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from lead_ml.config import ConfigError, Params, load_params

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
    from lead_ml.schema import ContractError
    from lead_ml.scorer import ScorerError

    return (ConfigError, ContractError, ScorerError, FileNotFoundError)


def friendly(command: F) -> F:
    """Turn user mistakes (bad params, data or paths) into a message and exit 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _user_errors() as error:
            errors.print(f"[bold red]error:[/] {error}", highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _params(path: Path) -> Params:
    return load_params(path)


def _done(stage: str, started: float, details: str) -> None:
    elapsed = time.perf_counter() - started
    console.print(f"[green]{stage}[/] {details} ({elapsed:.1f}s)", soft_wrap=True)


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
) -> None:
    """Score open leads in chunks: probability, score, band, MEDDIC reasons.

    Example: lead-ml score --model models/scorer --input leads.csv --output s.parquet
    """
    from rich.progress import Progress

    from lead_ml.batch import count_rows, score_file
    from lead_ml.scorer import load_scorer

    scorer = load_scorer(model)
    rejects = rejects or output.with_name(f"{output.stem}.rejects.csv")
    total = count_rows(input) if input.exists() else None
    with Progress(console=errors, transient=True) as bar:
        task = bar.add_task("scoring", total=total)
        result = score_file(
            scorer,
            input,
            output,
            rejects,
            activities,
            explain,
            chunk_rows,
            progress=lambda n: bar.advance(task, n),
        )
    _print_batch(result.as_dict())
    if summary_json is not None:
        summary_json.write_text(json.dumps(result.as_dict(), indent=2) + "\n")


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
        )
    unseen = {k: v for k, v in result["unseen_categories"].items() if v}
    if unseen:
        console.print(f"unseen category values (scored as unseen): {unseen}")
    if result["rejected"]:
        console.print(f"rejected rows and reasons -> {result['rejects']}")
    if result["drift_warnings"]:
        errors.print(
            "[yellow]warning:[/] drift above PSI 0.25 against the training window in "
            f"{', '.join(result['drift_warnings'])}: the model may need a retrain"
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
    table = Table("", "model", "BANT rule", title=title)
    for row in comparison_rows(results):
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    app()
