"""The benchmark harness (bench/harness.py, outside the package): it runs end to end in
quick mode on the synthetic CRM and the X Education export (structure and sanity of
the figures, never their speed), builds each project through the pipeline's stages,
its building blocks measure what they say, and the bench stage stays out of the
default `dvc repro`."""

from __future__ import annotations

import doctest
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from projects import SOURCES, require_source

from lead_ml.synthetic import SyntheticCRM

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "bench" / "harness.py"


def load_harness() -> ModuleType:
    """bench/harness.py as a module (it is a script beside the package, by path)."""
    spec = importlib.util.spec_from_file_location("harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["harness"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


harness = load_harness()


def test_the_harness_is_not_in_the_package() -> None:
    assert importlib.util.find_spec("lead_ml.bench") is None
    assert not (ROOT / "src" / "lead_ml" / "bench.py").exists()


def test_the_harness_doctests_pass() -> None:
    failed, tried = doctest.testmod(harness)
    assert tried >= 3 and failed == 0


@pytest.mark.slow
def test_quick_bench_writes_every_figure_for_both_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_source("x_education")
    out, work = tmp_path / "bench.json", tmp_path / "work"
    headline = tmp_path / "bench_metrics.json"
    arguments = ["--quick", "--out", str(out), "--work", str(work)]
    arguments += ["--metrics", str(headline)]
    arguments += ["--params", str(SOURCES["synthetic"]), "--root", str(ROOT)]
    arguments += ["--export-params", str(SOURCES["x_education"])]
    assert harness.main(arguments) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    sources = [harness.SYNTHETIC, harness.EXPORT]
    quick = harness.BenchSizes.quick()
    assert list(results["figures"]) == [*sources, "export_vs_synthetic"]
    # a quick run does not clone the repository: said, not left out silently
    assert results["details"][harness.PIPELINE] == {"skipped": "quick run"}
    assert results["details"][harness.SPARK] == {"skipped": "quick run"}
    for source in sources:
        figures = results["figures"][source]
        has_log = source == harness.SYNTHETIC  # scored with its log, and without
        expected = set(harness.TARGETS) - set(() if has_log else harness.LOG_FIGURES)
        assert set(figures) == expected, source
        for name, value in figures.items():
            assert math.isfinite(value), (source, name)
            if not name.endswith(("_exponent", "_gap_vs_31_leaf")):
                assert value > 0, (source, name)  # ratios and speeds
        assert results["met"][source] == harness.judge(figures, harness.TARGETS)
        scoring = results["details"][source]["scoring"]
        assert scoring["leads"] == harness.BenchSizes.quick().leads
        assert scoring["rejected"] == 0
        assert 0.5 < scoring["test_auc"] <= 1
        rates = [v for k, v in scoring.items() if "_rows_per_second" in k]
        assert len(rates) == 11 + 2 * has_log
        assert all(math.isfinite(r) and r > 0 for r in rates)
        memory = results["details"][source]["memory"]
        assert memory["large_leads"] > memory["small_leads"] > 0
        assert memory["explained_vs_plain_large"] == pytest.approx(
            memory["explained_large_seconds"] / memory["large_seconds"]
        )
        growth = results["details"][source]["growth"]
        assert len(growth["featurize_seconds"]) == len(growth["factors"]) == 2
        deals = results["environment"]["models"][source]["deals"]
        base = quick.growth_base if has_log else deals  # an export: its own deals
        assert growth["deals"] == [base, 2 * base]
        assert growth["featurize_train_seconds_largest"] == pytest.approx(
            growth["featurize_seconds"][-1] + growth["configured_train_seconds"]
        )
        assert growth["configured_train_trees"] >= 1
        assert results["environment"]["models"][source]["trees"] >= 1
    cross = results["figures"]["export_vs_synthetic"]
    assert set(cross) == set(harness.CROSS_TARGETS)
    assert cross["export_vs_synthetic_explained"] == pytest.approx(
        results["figures"][harness.EXPORT]["explained_leads_per_second"]
        / results["figures"][harness.SYNTHETIC]["explained_leads_per_second"],
        abs=1e-3,
    )
    for name, target in results["targets"].items():
        assert name in printed and target in printed
    assert results["targets"]["explain_speedup_vs_shap_groupby"] == "reported"
    # tl2cgen is no dependency: its compiled predictor is said not measured, not 0
    anchor = results["compiled_anchor"]["tl2cgen"]
    assert anchor in printed
    assert anchor.startswith("not measured") == (
        importlib.util.find_spec("tl2cgen") is None
    )
    for source in sources:
        assert_built_by_the_stages(work / source)
    # the stage's DVC metrics: the headline figures, numbers only
    metrics = json.loads(headline.read_text())["bench"]
    assert set(metrics) == {*sources, "export_vs_synthetic"}
    for source in sources:
        assert metrics[source] == {
            name: results["figures"][source][name] for name in harness.HEADLINE
        }
    leaves = [v for group in metrics.values() for v in group.values()]
    assert all(isinstance(v, float) for v in leaves)


def assert_built_by_the_stages(folder: Path) -> None:
    """A bench project is laid out as `dvc repro` lays one out (the stage functions
    wrote it), and its exported scorer carries no code: neither the package (the
    installed lead-ml runs it) nor the harness."""
    for written in (
        "data/tables/deals.parquet",
        "data/validated/deals.parquet",
        "reports/audit.json",
        "data/features/registry.json",
        "models/model/run.json",
        "models/scorer/MLmodel",
    ):
        assert (folder / written).exists(), (folder.name, written)
    assert json.loads((folder / "reports/export.json").read_text())["model_version"]
    bundle = folder / "models/scorer"
    assert not (bundle / "code").exists()
    assert not [*bundle.rglob("harness.py"), *bundle.rglob("bench.py")]


def test_project_params_place_generated_tables_in_the_project(tmp_path: Path) -> None:
    synthetic = harness.Source("s", SOURCES["synthetic"], generated=True)
    export = harness.Source("x", SOURCES["x_education"], generated=False)
    changes = {"train": {"n_estimators": 7}}
    raw = harness.project_params(synthetic, tmp_path / "s", ROOT, changes)
    assert raw["source"]["tables"]["deals"]["path"] == str(
        tmp_path / "s" / "data/raw/deals.parquet"
    )
    assert raw["train"]["n_estimators"] == 7 and raw["train"]["num_leaves"] == 8
    raw = harness.project_params(export, tmp_path / "x", ROOT, {})
    path = Path(raw["source"]["tables"]["deals"]["path"])
    assert path.is_absolute() and path.name == "Leads.csv"


def test_judge_reads_the_direction_of_each_target() -> None:
    met = harness.judge(
        {
            "score_slowdown_vs_predict": 0.65,
            "explain_speedup_vs_31_leaf_pred_contrib": 9.0,
            "explain_speedup_vs_pred_contrib": 9.0,  # reported only: not judged
            "memory_ratio_large_vs_small": 1.31,
        },
        harness.TARGETS,
    )
    assert met == {
        "score_slowdown_vs_predict": True,
        "explain_speedup_vs_31_leaf_pred_contrib": False,
        "memory_ratio_large_vs_small": False,
    }
    cross = harness.judge(
        {"export_vs_synthetic_explained": 0.79}, harness.CROSS_TARGETS
    )
    assert cross == {"export_vs_synthetic_explained": False}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_leads_tiles_rows_with_fresh_ids(
    suffix: str, small_crm: SyntheticCRM, tmp_path: Path
) -> None:
    base = small_crm.deals.head(70)
    path = harness.write_leads(base, 200, tmp_path / f"leads{suffix}", "deal_id")
    leads = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert len(leads) == 200 and leads["deal_id"].is_unique
    assert list(leads.columns) == list(base.columns)
    assert (leads["amount"].to_numpy()[70:140] == base["amount"].to_numpy()).all()
    assert leads["deal_id"].iloc[70] == f"{base['deal_id'].iloc[0]}~1"
    harness.write_leads(base, 10, path, "deal_id")  # a second write replaces it
    assert (
        len(pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)) == 10
    )


def test_write_activities_tiles_the_log_with_the_leads(
    small_crm: SyntheticCRM, tmp_path: Path
) -> None:
    """Each copy of the leads write_leads tiles gets its own activities, under the
    same fresh ids; a last, partial copy only those of the leads it holds."""
    base, log = small_crm.deals.head(70), small_crm.activities
    leads = pd.read_parquet(
        harness.write_leads(base, 200, tmp_path / "leads.parquet", "deal_id")
    )
    path = tmp_path / "activities.parquet"
    harness.write_activities(log, base, 200, path, ("deal_id", "deal_id"))
    tiled = pd.read_parquet(path)
    mine = log[log["deal_id"].isin(base["deal_id"])]
    assert len(mine) and set(tiled["deal_id"]) <= set(leads["deal_id"])
    last = log["deal_id"].isin(base["deal_id"].head(60))  # 200 = 70 + 70 + 60
    assert len(tiled) == 2 * len(mine) + int(last.sum())
    first = tiled[tiled["deal_id"].str.endswith("~1")]
    assert (first["deal_id"].str[:-2].to_numpy() == mine["deal_id"].to_numpy()).all()
    assert list(tiled.columns) == list(log.columns)


def test_job_runs_score_a_log_source_with_and_without_its_log() -> None:
    files = {"parquet": Path("l.parquet"), "csv": Path("l.csv")}
    runs = harness.job_runs({**files, harness.LOG: Path("a.parquet")})
    assert [(key, log) for key, _, log, _ in runs] == [
        ("score_rows_per_second", Path("a.parquet")),
        ("explained_rows_per_second", Path("a.parquet")),
        ("score_rows_per_second_csv", Path("a.parquet")),
        ("explained_rows_per_second_csv", Path("a.parquet")),
        ("score_rows_per_second_no_log", None),
        ("explained_rows_per_second_no_log", None),
    ]
    assert all(path == files["parquet"] for _, path, _, _ in runs[4:])
    assert all(log is None for _, _, log, _ in harness.job_runs(files))


def test_tile_keeps_every_copy_whole(small_crm: SyntheticCRM) -> None:
    deals = harness.tile(small_crm.deals, 3, "deal_id")
    activities = harness.tile(small_crm.activities, 3, "deal_id")
    assert len(deals) == 3 * len(small_crm.deals) and deals["deal_id"].is_unique
    assert len(activities) == 3 * len(small_crm.activities)
    assert set(activities["deal_id"]) <= set(deals["deal_id"])
    per_copy = activities["deal_id"].str.rsplit("~", n=1).str[1].value_counts()
    assert (per_copy == len(small_crm.activities)).all()
    assert small_crm.deals["deal_id"].is_unique  # the input is left as it was
    assert not small_crm.deals["deal_id"].astype(str).str.contains("~").any()


def test_growth_exponent_is_the_slope_in_log_log() -> None:
    assert harness.growth_exponent([1, 4, 16], [1.0, 16.0, 256.0]) == 2.0
    assert harness.growth_exponent([1, 2], [3.0, 3.0]) == 0.0


def test_best_seconds_stops_once_the_budget_is_spent() -> None:
    calls: list[int] = []
    harness.best_seconds(lambda: calls.append(1), repeats=3)
    assert len(calls) == 3
    harness.best_seconds(lambda: calls.append(1), repeats=3, budget=0.0)
    assert len(calls) == 4


def test_peak_memory_is_per_process() -> None:
    allocate = "import numpy; a = numpy.ones({n} * 2**20 // 8); print(a.sum())"
    big = harness.peak_memory_mb([sys.executable, "-c", allocate.format(n=300)])
    small = harness.peak_memory_mb([sys.executable, "-c", allocate.format(n=10)])
    assert big > 300 > small  # not the running maximum over all children
    with pytest.raises(RuntimeError, match="failed"):
        harness.peak_memory_mb([sys.executable, "-c", "raise SystemExit(3)"])


def test_shap_groupby_sums_shap_values_per_dimension() -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    matrix = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    won = (matrix["a"] + matrix["b"] > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 4},
        lgb.Dataset(matrix, won),
        num_boost_round=5,
    )
    dimensions = {"a": "fit", "b": "fit", "c": "champion"}
    grouped = harness.shap_groupby(harness.shap_explainer(booster), matrix, dimensions)
    contrib = np.asarray(booster.predict(matrix, pred_contrib=True))
    np.testing.assert_allclose(grouped["fit"], contrib[:, 0] + contrib[:, 1], atol=1e-9)
    np.testing.assert_allclose(grouped["champion"], contrib[:, 2], atol=1e-9)


# --- the bench stage -----------------------------------------------------------------


def test_bench_stage_is_outside_the_default_repro(tmp_path: Path) -> None:
    for name in (
        "dvc.yaml",
        "params.yaml",
        "data/dvc.yaml",
        "bench/dvc.yaml",
        "bench/harness.py",
        "examples/x_education/params.yaml",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "src/lead_ml").mkdir(parents=True)  # the stage's dependency
    (tmp_path / "src/lead_ml/__init__.py").touch()
    dvc = [str(Path(sys.executable).with_name("dvc"))]

    def run(*args: str) -> str:
        done = subprocess.run(
            [*dvc, *args], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        return done.stdout

    run("init", "--no-scm", "-q")
    run("config", "core.analytics", "false")
    assert "bench/dvc.yaml:bench" in run("stage", "list", "--all")
    assert "bench" not in run("stage", "list")  # dvc.yaml, what `dvc repro` runs
    assert "python bench/harness.py" in run("repro", "--dry", "bench/dvc.yaml")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/bench.json").write_text(
        json.dumps({"figures": {"synthetic": {"score_slowdown_vs_predict": 1.5}}})
    )
    (tmp_path / "reports/bench_metrics.json").write_text(
        json.dumps({"bench": {"synthetic": {"explained_leads_per_second": 2.5}}})
    )
    # only the headline figures are metrics (`dvc exp show` columns); the full
    # record is a plain output, still shown when named
    metrics = json.dumps(json.loads(run("metrics", "show", "--json")))
    assert "reports/bench_metrics.json" in metrics and "2.5" in metrics
    assert "reports/bench.json" not in metrics and "1.5" not in metrics
    named = run("metrics", "show", "--json", "reports/bench.json")
    assert "1.5" in json.dumps(json.loads(named))


def test_repro_times_a_fresh_clone_stage_by_stage(tmp_path: Path) -> None:
    """bench_repro clones the repository and runs `dvc repro` there (real git and
    DVC, a two-stage pipeline): every stage timed, and the clone's committed tree
    is what runs, not the work tree's edits."""
    repo = tmp_path / "repo"
    repo.mkdir()
    dvc = str(Path(sys.executable).with_name("dvc"))

    def run(*command: str) -> None:
        subprocess.run(command, cwd=repo, check=True, capture_output=True)

    run("git", "init", "-q")
    run(dvc, "init", "-q")
    run(dvc, "config", "core.analytics", "false")
    (repo / "first.py").write_text("open('a.txt', 'w').write('1')\n")
    (repo / "second.py").write_text(
        "import time\ntime.sleep(1)\nopen('b.txt', 'w').write(open('a.txt').read())\n"
    )
    stages = {
        "stages": {
            "first": {"cmd": "python first.py", "outs": ["a.txt"]},
            "second": {
                "cmd": "python second.py",
                "deps": ["a.txt", "second.py"],
                "outs": ["b.txt"],
            },
        }
    }
    (repo / "dvc.yaml").write_text(json.dumps(stages))  # JSON is YAML
    run("git", "add", "-A")
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    (repo / "dvc.yaml").write_text("not: [valid")  # uncommitted: must not run
    timed = harness.bench_repro(repo, tmp_path / "work")
    assert set(timed["stage_seconds"]) == {"first", "second"}
    assert timed["stage_seconds"]["second"] >= 1.0
    assert (
        timed["dvc_repro_clean_clone_seconds"]
        >= sum(timed["stage_seconds"].values()) - 0.05
    )
    assert (tmp_path / "work/clone/b.txt").read_text() == "1"
    assert len(timed["commit"]) == 40
    # a pipeline that fails is an error with DVC's words, not a figure
    (repo / "dvc.yaml").write_text(
        json.dumps({"stages": {"bad": {"cmd": "python -c 'raise SystemExit(4)'"}}})
    )
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "y")
    with pytest.raises(RuntimeError, match="bad"):
        harness.bench_repro(repo, tmp_path / "work2")
    assert harness.bench_repro(tmp_path / "work", tmp_path / "w3") == {
        "skipped": f"{tmp_path / 'work'} is not a git repository"
    }
