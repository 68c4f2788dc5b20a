"""params.yaml: every shipped file is valid and complete, and every bad setting is
one plain error naming its key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from projects import ROOT, SOURCES

from lead_ml.config import (
    AuditConfig,
    BantConfig,
    Params,
    SourceConfig,
    TrainConfig,
    columns_read,
    load_params,
    parse_params,
    read_params_file,
)
from lead_ml.vocab import ConfigError

#: The smallest valid params: a deals file, its outcome and a BANT rule.
MINIMAL: dict[str, Any] = {
    "source": {
        "tables": {
            "deals": {
                "path": "deals.csv",
                "id": "Id",
                "created": "Created",
                "closed": "Closed",
            }
        },
        "outcome": {"column": "Stage", "won": ["Won"], "lost": ["Lost"]},
    },
    "bant": {
        "letters": {"budget": "Revenue >= 1e6", "need": "Pain == 'yes'"},
        "threshold": 1,
    },
}


def with_changes(changes: dict[str, Any], base: dict[str, Any] = MINIMAL) -> dict:
    """``base`` with ``changes`` merged in section by section (a None value deletes)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and value:
            out[key] = with_changes(value, out[key])
        else:
            out[key] = value
    return out


def config_error(raw: dict[str, Any]) -> str:
    """The message of the ConfigError ``raw`` raises (printed as is, no traceback)."""
    with pytest.raises(ConfigError) as caught:
        parse_params(raw, "params.yaml")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    return str(caught.value)


def test_the_minimal_params_need_only_source() -> None:
    params = parse_params(MINIMAL)
    assert params.train == TrainConfig() and params.audit == AuditConfig()
    assert params.source.tables.present().keys() == {"deals"}
    message = config_error(with_changes({"source": None}))
    assert "  source: Field required" in message
    # No BANT rule (an export with no BANT-like fields): the base rate is the bar.
    assert parse_params(with_changes({"bant": None})).bant is None


# One bad setting, one line naming its key. Every section of params.yaml is here.
BAD_SETTINGS = [
    ({"seed": "x"}, "seed", "expected a number, got text"),
    ({"source": {"name": 3}}, "source.name", "valid string"),
    ({"source": {"tables": {"deals": {"id": ""}}}}, "source.tables.deals.id", ""),
    (
        {"source": {"tables": {"deals": {"path": None}}}},
        "source.tables.deals.path",
        "Field required",
    ),
    (
        {"source": {"tables": {"accounts": {"path": "a.csv"}}}},
        "source.tables.accounts.key",
        "Field required",
    ),
    (
        {"source": {"tables": {"activities": {"path": "a", "key": "Id", "type": "t"}}}},
        "source.tables.activities.timestamp",
        "Field required",
    ),
    # Any other name is a further table (joined by key, or the outcome's table).
    (
        {"source": {"tables": {"leads": {"path": "l.csv"}}}},
        "source.tables.leads.key",
        "Field required",
    ),
    ({"source": {"outcome": {"column": ""}}}, "source.outcome.column", "1 character"),
    ({"source": {"outcome": {"won": []}}}, "source.outcome.won", "at least 1 item"),
    ({"source": {"missing_values": "Select"}}, "source.missing_values", "list"),
    ({"source": {"types": {"x": "integer"}}}, "source.types.x", "'number', 'date'"),
    ({"source": {"bounds": {"x": {}}}}, "source.bounds.x", "give min, max or both"),
    (
        {"source": {"bounds": {"x": {"min": 5, "max": 1}}}},
        "source.bounds.x",
        "min 5 is above max 1",
    ),
    ({"source": {"directions": {"x": 2}}}, "source.directions.x", "-1, 0 or 1"),
    (
        {"source": {"dimensions": {"x": "engagment"}}},
        "source.dimensions",
        "'engagment' is not a dimension",
    ),
    ({"source": {"max_levels": 1}}, "source.max_levels", "greater than or equal to 2"),
    ({"source": {"colour": "red"}}, "source.colour", "Extra inputs"),
    ({"bant": {"letters": {"budgett": "a > 1"}}}, "bant.letters", "['budgett']"),
    ({"bant": {"letters": {"need": "pain =="}}}, "bant.letters.need", "not a cond"),
    (
        {"bant": {"letters": {"need": "pain.__class__ == 1"}}},
        "bant.letters.need",
        "`pain.__class__` is an attribute",
    ),
    ({"bant": {"threshold": 0}}, "bant.threshold", "greater than 0"),
    ({"bant": {"weights": {"budget": -1}}}, "bant", "weights must be 0 or more"),
    ({"bant": {"weights": {"timeline": 1}}}, "bant", "without a condition"),
    ({"synthetic": {"n_deals": 10}}, "synthetic.n_deals", "100"),
    ({"synthetic": {"format": "xlsx"}}, "synthetic.format", "'parquet' or 'csv'"),
    ({"audit": {"max_single_auc": 0.4}}, "audit.max_single_auc", "0.5"),
    ({"audit": {"cv_splits": 1}}, "audit.cv_splits", "2"),
    ({"featurize": {"snapshot_days": -1}}, "featurize.snapshot_days", "0"),
    (
        {"featurize": {"activities": {"dimension": "engagment"}}},
        "featurize.activities.dimension",
        "use one of",
    ),
    ({"split": {"test_fraction": 0.9}}, "split.test_fraction", "less than 0.5"),
    ({"train": {"learning_rate": -1}}, "train.learning_rate", "greater than 0"),
    ({"train": {"num_leaves": "many"}}, "train.num_leaves", "got text"),
    ({"train": {"num_leaves": 8.0}}, "train.num_leaves", "valid integer"),
    ({"evaluate": {"capacity": 0}}, "evaluate.capacity", "1"),
    ({"bands": {"A": 0.5, "B": 0.3, "C": 0.3}}, "bands", "band D is not empty"),
    ({"tracking": {"champion_alias": ""}}, "tracking.champion_alias", "1 character"),
    ({"compare": {"min_month_deals": 0}}, "compare.min_month_deals", "1"),
    ({"promotion": {"max_month_drop": 2}}, "promotion.max_month_drop", "1"),
    (
        {"writeback": {"columns": {"id": "Id", "scored": "S"}}},
        "writeback.columns",
        "unknown field(s) 'scored'",
    ),
    ({"trian": {"n_estimators": 5}}, "trian", "Extra inputs"),
]


@pytest.mark.parametrize(("changes", "key", "said"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_its_key(
    changes: dict[str, Any], key: str, said: str
) -> None:
    message = config_error(with_changes(changes))
    header, *lines = message.splitlines()
    assert header == "params.yaml: 1 bad setting(s)"
    assert len(lines) == 1
    assert lines[0].startswith(f"  {key}: ")
    assert said in lines[0]


def test_every_bad_setting_is_listed_at_once() -> None:
    raw = with_changes(
        {"train": {"learning_rate": -1}, "split": {"test_fraction": 0.9}, "seed": "x"}
    )
    header, *lines = config_error(raw).splitlines()
    assert header == "params.yaml: 3 bad setting(s)"
    assert sorted(line.split(":")[0].strip() for line in lines) == [
        "seed",
        "split.test_fraction",
        "train.learning_rate",
    ]


# --- the source section's consistency ---------------------------------------------


@pytest.mark.parametrize(
    ("source", "said"),
    [
        (
            {"tables": {"deals": {"closed": "Created"}}},
            "source.tables.deals.closed and source.tables.deals.created both name "
            "column 'Created'",
        ),
        (
            {"tables": {"deals": {"amount": "Id"}}},
            "source.tables.deals.amount and source.tables.deals.id both name",
        ),
        (
            {"outcome": {"column": "Created"}},
            "source.tables.deals.created and source.outcome.column both name",
        ),
        (
            {"tables": {"accounts": {"path": "a.csv", "key": "Stage"}}},
            "source.tables.accounts.key and source.outcome.column both name",
        ),
        (
            {"forbidden": ["x"], "allowed": ["x"]},
            "source.allowed: 'x' is also under source.forbidden",
        ),
        (
            {"ignore": ["x"], "allowed": ["x"]},
            "source.allowed: 'x' is also under source.ignore",
        ),
        (
            {"ignore": ["x"], "dimensions": {"x": "fit"}},
            "source.dimensions.x: 'x' is not a feature (it is under source.ignore)",
        ),
        (
            {"forbidden": ["x"], "directions": {"x": 1}},
            "source.directions.x: 'x' is not a feature (it is under source.forbidden)",
        ),
        (
            {"dimensions": {"Id": "fit"}},
            "source.dimensions.Id: 'Id' is not a feature (it is under "
            "source.tables.deals.id)",
        ),
        (
            {"directions": {"Closed": 1}},
            "(it is under source.tables.deals.closed)",
        ),
        (
            {"details": {"strength": "champion", "champion": "pain"}},
            "source.details.strength: 'champion' is itself a detail",
        ),
        ({"details": {"a": "a"}}, "source.details.a: a column cannot detail itself"),
        (
            {"details": {"a": "x"}, "forbidden": ["x"]},
            "source.details.a: 'x' is not a feature (it is under source.forbidden)",
        ),
        (
            {"details": {"Stage": "x"}},
            "source.details.Stage: 'Stage' is not a feature (it is under "
            "source.outcome.column)",
        ),
        (
            {"bounds": {"x": {"min": 0}}, "types": {"x": "category"}},
            "source.bounds.x: bounds need a number column, and source.types declares "
            "it category",
        ),
        (
            {"outcome": {"won": ["Won"], "lost": ["Won", "Lost"]}},
            "['Won'] are listed as both won and lost",
        ),
        ({"outcome": {"open": ["Won"]}}, "['Won'] are listed as both won and open"),
        ({"outcome": {"open": ["Lost"]}}, "['Lost'] are listed as both lost and open"),
    ],
)
def test_contradicting_source_settings_are_named(
    source: dict[str, Any], said: str
) -> None:
    message = config_error(with_changes({"source": source}))
    assert message.count("\n") == 1
    assert said in message


def test_a_sequential_id_may_also_be_the_order_column() -> None:
    deals = {"path": "d.csv", "id": "Lead Number", "order": "Lead Number"}
    source = parse_params(with_changes({"source": {"tables": {"deals": deals}}})).source
    assert source.roles()["source.tables.deals.order"] == "Lead Number"


def test_bounds_on_an_undeclared_or_number_column_are_fine() -> None:
    source = {"bounds": {"x": {"min": 0}, "y": {"max": 5}}, "types": {"y": "number"}}
    assert parse_params(with_changes({"source": source})).source.bounds["y"].max == 5


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"won": [True], "lost": ["No"]}, "source.outcome.won"),
        ({"won": ["Yes"], "lost": [False]}, "source.outcome.lost"),
        ({"open": [True]}, "source.outcome.open"),
    ],
)
def test_yaml_booleans_as_outcome_values_are_refused(
    values: dict[str, Any], key: str
) -> None:
    message = config_error(with_changes({"source": {"outcome": values}}))
    assert f"  {key}: " in message and "is a YAML boolean: quote the value" in message


def test_an_unquoted_yes_in_a_params_file_is_refused(tmp_path: Path) -> None:
    raw = with_changes({"source": {"outcome": {"won": ["x"], "lost": ["y"]}}})
    text = yaml.safe_dump(raw).replace("- x", "- Yes").replace("- y", "- No")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="YAML boolean"):
        load_params(path)


def test_numbers_as_outcome_values_are_the_text_the_file_holds() -> None:
    outcome = {"column": "Converted", "won": [1], "lost": 0.0, "open": ["2"]}
    params = parse_params(with_changes({"source": {"outcome": outcome}}))
    cfg = params.source.outcome
    assert (cfg.won, cfg.lost, cfg.open) == (["1"], ["0"], ["2"])


def test_excluded_columns_say_why() -> None:
    source = parse_params(
        with_changes({"source": {"ignore": ["Notes"], "forbidden": ["Reason"]}})
    ).source
    assert source.excluded() == {
        "Id": "its role is source.tables.deals.id",
        "Stage": "its role is source.outcome.column",
        "Created": "its role is source.tables.deals.created",
        "Closed": "its role is source.tables.deals.closed",
        "Notes": "listed under source.ignore",
        "Reason": "listed under source.forbidden (recorded after the outcome)",
    }


# --- the BANT rule ----------------------------------------------------------------


def _rule(raw: dict[str, Any]) -> BantConfig:
    """The BANT rule of params that give one."""
    rule = parse_params(raw).bant
    assert rule is not None, "these params give a rule"
    return rule


def test_bant_weights_default_to_one_per_letter() -> None:
    assert _rule(MINIMAL).weights == {"budget": 1.0, "need": 1.0}
    partial = with_changes({"bant": {"weights": {"need": 2.5}, "threshold": 3.5}})
    assert _rule(partial).weights == {"budget": 1.0, "need": 2.5}


def test_a_threshold_above_the_sum_of_the_weights_is_refused() -> None:
    message = config_error(with_changes({"bant": {"threshold": 2.5}}))
    assert "  bant: threshold 2.5 is above the sum of the weights (2)" in message
    assert _rule(with_changes({"bant": {"threshold": 2}})).threshold == 2
    # 0.3 + 0.6 is 0.8999999999999999 in floats: 0.9 is the sum, not above it.
    floats = {"weights": {"budget": 0.3, "need": 0.6}, "threshold": 0.9}
    assert _rule(with_changes({"bant": floats})).threshold == 0.9


def test_a_rule_needs_a_letter() -> None:
    raw = with_changes({"bant": None})
    raw["bant"] = {"letters": {}, "threshold": 1}
    assert "  bant.letters: " in config_error(raw)


@pytest.mark.parametrize(
    ("changes", "column"),
    [
        ({"bant": {"letters": {"need": "Stage == 'Won'"}}}, "Stage"),
        ({"bant": {"letters": {"need": "Closed > '2024-01-01'"}}}, "Closed"),
        (
            {
                "source": {"forbidden": ["close value"]},
                "bant": {"letters": {"need": "`close value` > 0"}},
            },
            "close value",
        ),
    ],
)
def test_a_letter_reading_a_column_known_after_the_outcome_is_refused(
    changes: dict[str, Any], column: str
) -> None:
    message = config_error(with_changes(changes))
    assert "bant.letters.need: " in message
    assert f"reads {column!r}, which is known only after the outcome" in message


def test_a_letter_reading_a_lead_ml_column_name_is_refused() -> None:
    message = config_error(with_changes({"bant": {"letters": {"need": "won > 0"}}}))
    assert "bant.letters.need: 'won' is a name lead-ml uses" in message
    # ...unless the source's own column of that name has that role.
    deals = {"path": "d.csv", "id": "Id", "amount": "amount"}
    raw = with_changes(
        {
            "source": {"tables": {"deals": deals}},
            "bant": {"letters": {"budget": "amount > 10"}},
        }
    )
    assert "amount" in _rule(raw).columns()


@pytest.mark.parametrize(
    ("condition", "columns"),
    [
        ("`annual revenue` >= 1e6 and region == 'EU'", ["annual revenue", "region"]),
        ("not (0 < score <= 2)", ["score"]),
        ("bant_need not in ('no', 'maybe')", ["bant_need"]),
        ("`a` > `b b` or c in ['x', 'y']", ["a", "b b", "c"]),
        ("`it's` == 'a`b' and `x` == \"`y`\"", ["it's", "x"]),
    ],
)
def test_the_columns_a_condition_reads(condition: str, columns: list[str]) -> None:
    assert columns_read(condition) == columns
    letters = {"need": condition}
    assert BantConfig(letters=letters, threshold=1).columns() == columns


# --- files --------------------------------------------------------------------------


def test_missing_and_broken_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found; run from the project root"):
        load_params(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="a mapping of sections"):
        load_params(scalar)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=r"empty\.yaml: 1 bad setting"):
        load_params(empty)  # source is required; bant is not


def test_params_are_frozen() -> None:
    params = parse_params(MINIMAL)
    with pytest.raises(ValueError):
        params.train.learning_rate = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        params.source.forbidden = ["x"]  # type: ignore[misc]


def _dvc_params(dvc_file: Path, raw: dict[str, Any]) -> list[str]:
    """Every params key the stages of a dvc.yaml read (foreach stages expanded)."""
    keys = []
    for stage in yaml.safe_load(dvc_file.read_text())["stages"].values():
        if "foreach" in stage:
            section = stage["foreach"].strip("${}").split(".")
            items = raw
            for part in section:
                items = items[part]
            keys += [
                key.replace("${key}", item)
                for item in items
                for key in stage["do"].get("params", [])
            ]
        else:
            keys += stage.get("params", [])
    return keys


def _has(raw: dict[str, Any], key: str) -> bool:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("name", list(SOURCES))
def test_shipped_params_files_parse_and_hold_every_section_dvc_reads(
    name: str,
) -> None:
    path = SOURCES[name]
    params = load_params(path)
    assert isinstance(params, Params)
    raw = read_params_file(path)
    keys = _dvc_params(ROOT / "dvc.yaml", raw) + _dvc_params(
        ROOT / "data" / "dvc.yaml", raw
    )
    assert "source.tables.deals" in keys and "synthetic" in keys
    # DVC fails on a section a stage lists that the file lacks (defaults do not count).
    assert [key for key in keys if not _has(raw, key)] == []


def test_the_examples_read_the_shared_data_and_the_default_the_generated_crm() -> None:
    for name in ("x_education", "maven"):
        deals = load_params(SOURCES[name]).source.tables.deals
        assert str(deals.path).startswith("../shared/data/")
    source: SourceConfig = load_params(SOURCES["synthetic"]).source
    assert all(
        str(table.path).startswith("data/raw/")
        for table in source.tables.present().values()
    )
