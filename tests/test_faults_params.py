"""Hostile params: nothing in a params file runs as code, and every bad setting is
refused with one clear line (exit 2 on the command line, no traceback).

A BANT condition is parsed into a small grammar and evaluated by lead-ml itself; a
condition that reaches for Python (attributes, calls, subscripts...) is refused by
`check-config`, every command and every stage, and leaves no trace on disk. Numbers
are strict (a YAML boolean or quoted text is not a number) and bounded, and a params
file that is too big, too deep or an alias bomb is refused before it is walked.
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from projects import Project, merged, project_environment, read_params_file
from typer.testing import CliRunner

from lead_ml import stages
from lead_ml.baseline import BantRule, LetterError, bant_scores, condition_holds
from lead_ml.cli import app
from lead_ml.config import (
    GRAMMAR,
    MAX_CONDITION_CHARS,
    BantConfig,
    load_params,
    parse_condition,
    parse_params,
)
from lead_ml.vocab import ConfigError

runner = CliRunner()


def exploit(marker: Path) -> str:
    """The condition of issue 13: through a column's class, reach os.system."""
    return (
        "bant_budget.__class__.__init__.__globals__['sys'].modules['os']"
        f".system('touch {marker}') == 0"
    )


def refused(args: list[str], *words: str) -> str:
    """Run a command that must refuse: exit 2, an ``error:`` line with ``words``, no
    traceback. Its output."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert re.search(r"^error: ", result.output, re.MULTILINE), result.output
    for word in words:
        assert word in result.output, (word, result.output)
    return result.output


def hostile_params(project: Project, folder: Path, changes: dict[str, Any]) -> Path:
    """The project's own params with ``changes`` merged in, written to ``folder``."""
    raw = merged(read_params_file(project.root / "params.yaml"), changes)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- the exploit of issue 13 ----------------------------------------------------------


def test_the_exploit_is_refused_by_check_config_and_the_stage_commands(
    synthetic_project: Project, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    letters = {"budget": exploit(marker)}
    params = hostile_params(synthetic_project, tmp_path, {"bant": {"letters": letters}})
    root = synthetic_project.root
    said = "bant.letters.budget: `bant_budget.__class__` is an attribute; " + GRAMMAR
    refused(["check-config", "--params", str(params)], said)
    refused(["check-config", "--no-data", "--params", str(params)], said)
    refused(
        [
            "validate",
            "--params",
            str(params),
            "--tables",
            str(root / "data/tables"),
            "--out",
            str(tmp_path / "validated"),
            "--rejects",
            str(tmp_path / "rejects.csv"),
        ],
        said,
    )
    metrics = tmp_path / "metrics.json"
    refused(
        [
            "evaluate",
            "--params",
            str(params),
            "--features",
            str(root / "data/features/features.parquet"),
            "--registry",
            str(root / "data/features/registry.json"),
            "--model",
            str(root / "models/model"),
            "--validated",
            str(root / "data/validated"),
            "--audit",
            str(root / "reports/audit.json"),
            "--metrics",
            str(metrics),
            "--plots",
            str(tmp_path / "plots"),
        ],
        said,
    )
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_the_exploit_does_not_run_even_when_params_validation_is_bypassed(
    synthetic_project: Project, tmp_path: Path
) -> None:
    # Defence in depth: a BantConfig built without validation (model_construct) still
    # reaches only the parser, in the stages and in the estimator itself.
    marker = tmp_path / "marker"
    good = synthetic_project.params
    bant = BantConfig.model_construct(
        letters={"budget": exploit(marker)}, weights={"budget": 1.0}, threshold=1.0
    )
    params = good.model_copy(update={"bant": bant})
    root = synthetic_project.root
    paths = {
        "features": root / "data/features/features.parquet",
        "registry": root / "data/features/registry.json",
        "model": root / "models/model",
        "validated": root / "data/validated",
        "audit": root / "reports/audit.json",
        "metrics": tmp_path / "metrics.json",
        "plots": tmp_path / "plots",
    }
    with project_environment(tmp_path), pytest.raises(ConfigError) as caught:
        stages.run_evaluate(params, paths)
    assert str(caught.value).startswith(
        'bant.letters.budget: "bant_budget.__class__.__init__'
    )
    assert "`bant_budget.__class__` is an attribute" in str(caught.value)
    with pytest.raises(ConfigError, match="is an attribute"):
        bant_scores(bant, good.source, synthetic_project.deals().frame)
    with pytest.raises(LetterError, match="is an attribute"):
        BantRule({"budget": exploit(marker)}, threshold=1).fit(
            synthetic_project.leads()
        )
    assert not marker.exists()
    assert not paths["metrics"].exists()


# --- every construct outside the grammar is refused, naming the part ----------------

REFUSED = [
    ("bant_budget.__class__ == 1", "`bant_budget.__class__` is an attribute"),
    ("__import__('os').system('true') == 0", "`__import__('os')` is a function call"),
    ("abs(revenue) > 2", "`abs(revenue)` is a function call"),
    ("revenue.str.len() > 2", "`revenue.str` is an attribute"),
    ("`Annual Revenue`.max() > 2", "``Annual Revenue`.max` is an attribute"),
    ("stage[0] == 'W'", "`stage[0]` is a subscript"),
    ("revenue * 2 > 1", "`revenue * 2` is arithmetic"),
    ("revenue > 10 ** 3", "`10 ** 3` is arithmetic"),
    ("-revenue < 0", "`-revenue` is arithmetic"),
    ("~flag == 1", "`~flag` is arithmetic"),
    ("(lambda: 1)() == 1", "`(lambda: 1)()` is a function call"),
    ("(lambda: 1) == 1", "`lambda: 1` is a lambda"),
    ("stage == f'{stage}'", "`f'{stage}'` is an f-string"),
    ("stage in [s for s in 'ab']", "not a list of literals"),
    ("stage == {'a': 1}", "`{'a': 1}` is a dict"),
    ("stage == {'a'}", "`{'a'}` is a set"),
    ("(x := 1) == 1", "is an assignment"),
    ("(1 if stage else 2) == 1", "is an if-else expression"),
    ("stage is None", "`is` compares object identity"),
    ("stage == None", "`None` is not a value"),
    ("stage == b'x'", "`b'x'` (bytes) is not a literal a condition can use"),
    ("revenue == 1j", "`1j` (complex) is not a literal"),
    ("revenue == ...", "`...` (ellipsis) is not a literal"),
    ("revenue > 1e999", "`1e999` is not a finite number"),
    ("stage in other", "`other` is not a list of literals"),
    ("stage in ['a', other]", "`other` in `['a', other]` is a column"),
    ("['a'] == stage", "`['a']` is a list; a list may only follow `in`"),
    ("'a' in ['a']", "`'a'` is not a column"),
    ("1 == 1", "`1 == 1` compares two literals"),
    ("stage", "`stage` is not a true/false condition"),
    ("not flag", "`flag` is not a true/false condition"),
    ("stage == 'a' and flag", "`flag` is not a true/false condition"),
    ("stage ==", "not a condition (invalid syntax)"),
    ("stage = 'a'", "not a condition"),
    ("stage == 'a'; import os", "not a condition"),
    ("`stage == 'a'", "a `backtick` opens a column name that is empty or never"),
    ("`` == 'a'", "a `backtick` opens a column name that is empty or never"),
    ("x" * (MAX_CONDITION_CHARS - 4) + " == 1", f"at most {MAX_CONDITION_CHARS:,}"),
]


@pytest.mark.parametrize(("condition", "said"), REFUSED)
def test_a_construct_outside_the_grammar_is_refused_naming_the_part(
    condition: str, said: str
) -> None:
    with pytest.raises(ValueError) as caught:
        parse_condition(condition)
    assert said in str(caught.value)
    raw = {
        "source": {
            "tables": {"deals": {"path": "deals.csv", "id": "Id"}},
            "outcome": {"column": "Stage", "won": ["Won"], "lost": ["Lost"]},
        },
        "bant": {"letters": {"need": condition}, "threshold": 1},
    }
    with pytest.raises(ConfigError) as refusal:
        parse_params(raw, "params.yaml")
    header, line = str(refusal.value).splitlines()
    assert header == "params.yaml: 1 bad setting(s)"
    assert line.startswith("  bant.letters.need: ") and said in line


def test_every_refused_construct_is_refused_by_check_config(tmp_path: Path) -> None:
    deals = tmp_path / "deals.csv"
    deals.write_text("Id,Stage,revenue,stage,flag\n1,Won,3,a,yes\n")
    for i, (condition, said) in enumerate(REFUSED):
        params = tmp_path / f"params{i}.yaml"
        raw = {
            "source": {
                "tables": {"deals": {"path": str(deals), "id": "Id"}},
                "outcome": {"column": "Stage", "won": ["Won"], "lost": ["Lost"]},
            },
            "bant": {"letters": {"need": condition}, "threshold": 1},
        }
        params.write_text(yaml.safe_dump(raw))
        # Markup-like brackets in the condition are another helper's matter (the
        # error printer); the key and the part named must be on the line.
        output = refused(["check-config", "--params", str(params)], "bant.letters.need")
        for words in re.split(r"`[^`]*`", said):
            assert words.strip() in output, (condition, output)


# --- columns: checked against the files' headers, letter and condition named -------


def test_check_config_names_the_letter_condition_and_an_unknown_column(
    tmp_path: Path,
) -> None:
    deals = tmp_path / "deals.csv"
    deals.write_text("Id,Stage,pain_level,Annual Revenue\n1,Won,3,5\n")
    raw = {
        "source": {
            "tables": {"deals": {"path": str(deals), "id": "Id"}},
            "outcome": {"column": "Stage", "won": ["Won"], "lost": ["Lost"]},
        },
        "bant": {
            "letters": {"need": "pain_levl >= 3", "budget": "`Annual Revenu` > 1"},
            "threshold": 1,
        },
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    refused(
        ["check-config", "--params", str(params)],
        "source: 2 problem(s)",
        "bant.letters.need ('pain_levl >= 3'): no column 'pain_levl' in "
        f"{deals} (did you mean 'pain_level'?)",
        "bant.letters.budget ('`Annual Revenu` > 1'): no column 'Annual Revenu'",
        "(did you mean 'Annual Revenue'?)",
    )


@pytest.mark.parametrize(
    ("condition", "said"),
    [
        ("bant_budgt == 'yes'", "no column 'bant_budgt'"),
        ("bant_budget == 'yes' and", "not a condition (invalid syntax)"),
    ],
)
def test_the_synthetic_crm_conditions_are_checked_by_check_config(
    synthetic_project: Project, tmp_path: Path, condition: str, said: str
) -> None:
    # Issue 13: on the synthetic CRM check-config never parsed the rule, and the
    # mistake surfaced in `evaluate` as a traceback.
    letters = {"budget": condition}
    params = hostile_params(synthetic_project, tmp_path, {"bant": {"letters": letters}})
    output = refused(["check-config", "--params", str(params)], "bant.letters.budget")
    assert said in output


# --- strict numbers and bounds ------------------------------------------------------

MINIMAL: dict[str, Any] = {
    "source": {
        "tables": {"deals": {"path": "deals.csv", "id": "Id"}},
        "outcome": {"column": "Stage", "won": ["Won"], "lost": ["Lost"]},
        "bounds": {"Revenue": {"min": 0}},
        "directions": {"Revenue": 1},
    },
    "bant": {"letters": {"budget": "Revenue >= 1.0e6"}, "threshold": 1},
}

HOSTILE_NUMBERS = [
    ({"train": {"learning_rate": True}}, "train.learning_rate", "a YAML boolean"),
    ({"train": {"learning_rate": "0.1"}}, "train.learning_rate", "got text"),
    ({"train": {"learning_rate": float("nan")}}, "train.learning_rate", "got nan"),
    ({"bant": {"weights": {"budget": float("nan")}}}, "bant.weights.budget", "finite"),
    ({"train": {"reg_lambda": float("inf")}}, "train.reg_lambda", "got inf"),
    ({"train": {"n_estimators": 10**9}}, "train.n_estimators", "less than or equal"),
    ({"train": {"n_estimators": 600.0}}, "train.n_estimators", "valid integer"),
    ({"train": {"num_leaves": 10**6}}, "train.num_leaves", "less than or equal"),
    ({"train": {"max_depth": 10**4}}, "train.max_depth", "less than or equal"),
    ({"train": {"num_threads": 10**5}}, "train.num_threads", "less than or equal"),
    ({"evaluate": {"n_bootstrap": 10**12}}, "evaluate.n_bootstrap", "less than or"),
    ({"evaluate": {"n_bootstrap": "10^12"}}, "evaluate.n_bootstrap", "got text"),
    ({"evaluate": {"n_bootstrap": "1e3"}}, "evaluate.n_bootstrap", "write 1000"),
    ({"evaluate": {"capacity": True}}, "evaluate.capacity", "a YAML boolean"),
    ({"evaluate": {"calibration_bins": 10**6}}, "evaluate.calibration_bins", "less"),
    ({"featurize": {"snapshot_days": 10**6}}, "featurize.snapshot_days", "less"),
    (
        {"featurize": {"activities": {"max_types": 10**5}}},
        "featurize.activities.max_types",
        "less than or equal",
    ),
    ({"source": {"max_levels": 10**8}}, "source.max_levels", "less than or equal"),
    ({"source": {"bounds": {"Revenue": {"min": False}}}}, "source.bounds.Re", "YAML"),
    ({"source": {"directions": {"Revenue": True}}}, "source.directions.Rev", "YAML"),
    ({"synthetic": {"n_deals": 10**10}}, "synthetic.n_deals", "less than or equal"),
    ({"synthetic": {"start": 2023}}, "synthetic.start", "expected a date"),
    ({"audit": {"cv_repeats": 10**4}}, "audit.cv_repeats", "less than or equal"),
    ({"compare": {"min_month_deals": True}}, "compare.min_month_deals", "YAML"),
    ({"seed": True}, "seed", "a YAML boolean"),
    ({"seed": 2**40}, "seed", "less than or equal"),
    ({"bant": {"threshold": True}}, "bant.threshold", "a YAML boolean"),
    ({"bant": {"threshold": "1"}}, "bant.threshold", "got text"),
    ({"bant": {"weights": {"budget": True}}}, "bant.weights.budget", "YAML boolean"),
    ({"source": {"outcome": {"won": [["Won"]]}}}, "source.outcome.won", "got a list"),
    (
        {"source": {"tables": {"deals": {"path": "a\x00b"}}}},
        "source.tables.deals",
        "NUL",
    ),
]


@pytest.mark.parametrize(("changes", "key", "said"), HOSTILE_NUMBERS)
def test_a_hostile_setting_is_one_line_naming_its_key(
    changes: dict[str, Any], key: str, said: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_params(merged(MINIMAL, changes), "params.yaml")
    header, *lines = str(caught.value).splitlines()
    assert header == "params.yaml: 1 bad setting(s)"
    assert len(lines) == 1 and lines[0].startswith(f"  {key}") and said in lines[0]


def test_the_shipped_settings_are_still_numbers_within_bounds() -> None:
    params = parse_params(MINIMAL)
    assert params.train.learning_rate == 0.05 and params.evaluate.n_bootstrap == 1000
    # An int where a float is expected is a number: threshold: 1, weights: {x: 2}.
    assert params.bant is not None and isinstance(params.bant.threshold, float)


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("train:\n  learning_rate: true\n", "train.learning_rate: expected a number"),
        ("evaluate:\n  n_bootstrap: 1000000000000\n", "evaluate.n_bootstrap: Input"),
        ("evaluate:\n  n_bootstrap: 10^12\n", "evaluate.n_bootstrap: expected a nu"),
    ],
)
def test_hostile_numbers_are_refused_on_the_command_line(
    tmp_path: Path, setting: str, said: str
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(MINIMAL) + setting)
    output = refused(["check-config", "--no-data", "--params", str(params)], said)
    assert output.count("\n") == 2  # the file and its one bad setting


# --- the file itself: size, depth, aliases, duplicates ------------------------------


def _alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + f"\nsource: *a{levels - 1}\n"


FILES: list[tuple[str, Callable[[Path], object], str]] = [
    (
        "deep",
        lambda p: p.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n"),
        "nested more than 10 levels deep",
    ),
    (
        "deep-mapping",
        lambda p: p.write_text("source: " + "{a: " * 50 + "1" + "}" * 50 + "\n"),
        "nested more than 10 levels deep",
    ),
    ("alias-bomb", lambda p: p.write_text(_alias_bomb()), "more than 20,000 settings"),
    (
        "cyclic",
        lambda p: p.write_text("source: &s\n  tables: *s\n"),
        "not valid YAML (line 1, column 9): found unconstructable recursive node",
    ),
    (
        "huge",
        lambda p: p.write_text("ignore:\n" + "  - x\n" * 300_000),
        "over 1,000,000 bytes",
    ),
    (
        "long-text",
        lambda p: p.write_text("bant:\n  letters:\n    need: " + "x" * 20_000 + "\n"),
        "bant.letters.need holds a text of 20,000 characters",
    ),
    ("binary", lambda p: p.write_bytes(b"\xff\xfe\x00\x01" * 10), "not UTF-8"),
    ("directory", lambda p: p.mkdir(), "cannot be read"),
    (
        "python-tag",
        lambda p: p.write_text("seed: !!python/object/apply:os.system ['true']\n"),
        "not valid YAML",
    ),
    (
        "duplicate",
        lambda p: p.write_text("bant: {threshold: 1}\nbant: {threshold: 2}\n"),
        "not valid YAML (line 2, column 1): the key 'bant' is given twice",
    ),
]


@pytest.mark.parametrize(("kind", "write", "said"), FILES, ids=[f[0] for f in FILES])
def test_a_hostile_params_file_is_one_clear_error(
    tmp_path: Path, kind: str, write: Callable[[Path], object], said: str
) -> None:
    params = tmp_path / "params.yaml"
    write(params)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=re.escape(said)):
        load_params(params)
    output = refused(["check-config", "--no-data", "--params", str(params)], said)
    assert output.count("\n") == 1, output
    # An alias bomb or a deep file is refused quickly, not walked (each takes well
    # under a second alone; the margin is for a loaded test machine).
    assert time.perf_counter() - started < 10, kind


# --- the evaluator agrees with plain Python on random conditions --------------------

OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le}
OPS |= {">": operator.gt, ">=": operator.ge}
TEXTS = ["a", "b", "c", "unknown"]
NUMBERS = [-2, 0, 1, 3]
Row = dict[str, Any]
Reference = Callable[[Row], bool | None]


def _missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and np.isnan(value))
        or (value == "unknown")
    )


Operand = tuple[Callable[[Row], Any], bool]  # its value in a row; is it a column?


def _compare(op: str, left: Operand, right: Operand) -> Reference:
    def holds(row: Row) -> bool | None:
        # Only a cell can be missing: the literal 'unknown' is just a word.
        sides = [(value(row), is_column) for value, is_column in (left, right)]
        if any(is_column and _missing(value) for value, is_column in sides):
            return None
        return bool(OPS[op](sides[0][0], sides[1][0]))

    return holds


def _column(name: str) -> Operand:
    return (lambda row: row[name]), True


def _literal(value: Any) -> Operand:
    return (lambda row: value), False


NUMBER_COLUMNS = {"n": "n", "m": "`m m`"}  # frame column -> as a condition names it
TEXT_COLUMNS = {"t": "t", "s": "`s-p`"}


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[str, Reference]:
    """One comparison, in-list or chain over a number, text or bool column."""
    shape = draw(st.sampled_from(["number", "text", "columns", "in", "chain", "bool"]))
    op = draw(st.sampled_from(list(OPS)))
    if shape == "bool":
        flag = draw(st.booleans())
        return f"flag {op if op in ('==', '!=') else '=='} {flag}", _compare(
            op if op in ("==", "!=") else "==", _column("flag"), _literal(flag)
        )
    if shape == "columns":
        return f"n {op} `m m`", _compare(op, _column("n"), _column("m"))
    if shape == "chain":
        low, high = draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(NUMBERS))
        op2 = draw(st.sampled_from(["<", "<="]))
        first = _compare(op2, _literal(low), _column("n"))
        second = _compare(op2, _column("n"), _literal(high))
        return f"{low} {op2} n {op2} {high}", _all([first, second])
    numeric = shape == "number" or (shape == "in" and draw(st.booleans()))
    columns, values = (NUMBER_COLUMNS, NUMBERS) if numeric else (TEXT_COLUMNS, TEXTS)
    column = draw(st.sampled_from(list(columns)))
    if shape == "in":
        listed = draw(st.lists(st.sampled_from(values), max_size=3))
        negated = draw(st.booleans())

        def member(row: Row) -> bool | None:
            value = row[column]
            return None if _missing(value) else (value in listed) != negated

        word = "not in" if negated else "in"
        return f"{columns[column]} {word} {listed!r}", member
    value = draw(st.sampled_from(values))
    if draw(st.booleans()):
        return f"{value!r} {op} {columns[column]}", _compare(
            op, _literal(value), _column(column)
        )
    return f"{columns[column]} {op} {value!r}", _compare(
        op, _column(column), _literal(value)
    )


def _all(parts: list[Reference]) -> Reference:
    def holds(row: Row) -> bool | None:
        values = [part(row) for part in parts]
        if False in values:
            return False
        return None if None in values else True

    return holds


def _any(parts: list[Reference]) -> Reference:
    def holds(row: Row) -> bool | None:
        values = [part(row) for part in parts]
        if True in values:
            return True
        return None if None in values else False

    return holds


def _not(part: Reference) -> Reference:
    def holds(row: Row) -> bool | None:
        value = part(row)
        return None if value is None else not value

    return holds


def _combined(
    children: st.SearchStrategy[tuple[str, Reference]],
) -> st.SearchStrategy[tuple[str, Reference]]:
    pairs = st.lists(children, min_size=2, max_size=3)
    return st.one_of(
        pairs.map(
            lambda ps: (" and ".join(f"({t})" for t, _ in ps), _all([f for _, f in ps]))
        ),
        pairs.map(
            lambda ps: (" or ".join(f"({t})" for t, _ in ps), _any([f for _, f in ps]))
        ),
        children.map(lambda c: (f"not ({c[0]})", _not(c[1]))),
    )


conditions = st.recursive(comparisons(), _combined, max_leaves=6)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    """Deals with number, text and bool columns, each with missing cells."""
    size = draw(st.integers(0, 12))
    numbers = st.lists(
        st.sampled_from([*map(float, NUMBERS), np.nan]), min_size=size, max_size=size
    )
    texts = st.lists(st.sampled_from([*TEXTS, None]), min_size=size, max_size=size)
    flags = st.lists(st.sampled_from([True, False, None]), min_size=size, max_size=size)
    return pd.DataFrame(
        {
            "n": pd.Series(draw(numbers), dtype=float),
            "m m": pd.Series(draw(numbers), dtype=float),
            "t": pd.Series(draw(texts), dtype="string"),
            "s-p": pd.Series(draw(texts), dtype=object),
            "flag": pd.Series(draw(flags), dtype="boolean"),
        }
    )


def _row_values(frame: pd.DataFrame) -> list[Row]:
    rows = []
    for record in frame.astype(object).to_dict("records"):
        row = {k: (None if v is pd.NA else v) for k, v in record.items()}
        rows.append(
            {"n": row["n"], "m": row["m m"], "t": row["t"], "s": row["s-p"]}
            | {"flag": row["flag"]}
        )
    return rows


@settings(max_examples=300, deadline=None)
@given(conditions, frames())
def test_the_evaluator_agrees_with_plain_python(
    condition: tuple[str, Reference], frame: pd.DataFrame
) -> None:
    text, reference = condition
    rows = _row_values(frame)
    expected = [reference(row) for row in rows]
    held = condition_holds(parse_condition(text), frame)
    assert held.index.equals(frame.index)
    assert [None if v is pd.NA else v for v in held.tolist()] == expected, text
    # A letter passes on positive evidence only: true, and every column it reads
    # known (a blank never passes, even under `not` or `!=`).
    rule = BantRule({"need": text}, threshold=1.0).fit(frame)
    read = rule.columns_read_["need"]
    names = {"m m": "m", "s-p": "s"}
    known = [all(not _missing(row[names.get(c, c)]) for c in read) for row in rows]
    passes = rule.letter_passes(frame)["need"].tolist()
    assert passes == [e is True and k for e, k in zip(expected, known, strict=True)]
