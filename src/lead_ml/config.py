"""Typed view of params.yaml: the single source of truth for every stage.

Each section of params.yaml is a frozen pydantic model. A bad setting raises
:class:`~lead_ml.vocab.ConfigError` naming the key and what is expected, never a raw
traceback. The ``source`` section is the data contract: which files hold the deals
(and optionally accounts and an activity log), their keys, the outcome, the missing
value placeholders, column kinds, bounds and directions, the forbidden columns and
the column-to-dimension map. The synthetic CRM is described by the same section as
any user's export.

Nothing in a params file runs as code. It is read with YAML's safe loader, and
refused when too big, too deep or an alias bomb (:func:`check_shape`). A BANT
condition is parsed into a small grammar (:func:`parse_condition`) that
:mod:`lead_ml.baseline` evaluates itself. Numbers are strict (a YAML ``true`` or a
quoted ``"0.1"`` is refused, not read as 1 or 0.1) and every count and size has an
upper bound.

>>> params = parse_params({
...     "source": {
...         "tables": {"deals": {"path": "deals.csv", "id": "Id"}},
...         "outcome": {"column": "Stage", "won": ["Won"], "lost": ["Lost"]},
...     },
...     "bant": {"letters": {"budget": "Revenue >= 1e6"}, "threshold": 1},
... })
>>> params.source.tables.deals.id, params.bant.weights
('Id', {'budget': 1.0})
>>> columns_read("`annual revenue` >= 1e6 and region == 'EU'")
['annual revenue', 'region']
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from lead_ml.vocab import (
    BANT_LETTERS,
    META_COLUMNS,
    OUTPUT_DIMENSIONS,
    REJECT_COLUMNS,
    ConfigError,
    DeclaredKind,
)

#: Words in a column name that usually mean "the state at export time": the audit
#: flags them (see lead_ml.audit); the user may allow a column after checking.
LATE_NAME_WORDS: tuple[str, ...] = tuple(
    "last latest status stage tag tags quality rating score reason close closed "
    "closing won lost converted outcome result final".split()
)
#: A part of the created date that may be a feature (featurize.date_parts).
DatePart = Literal["day_of_week", "month", "hour"]
#: Every date part, in the order the features are built.
DATE_PARTS: tuple[DatePart, ...] = ("day_of_week", "month", "hour")
#: The longest BANT condition accepted, in characters: a rule is a line or two, and
#: the bound keeps parsing and evaluating it cheap whatever a params file holds.
MAX_CONDITION_CHARS = 1000
#: The longest file path a table may have (most file systems allow 4,096 bytes).
MAX_PATH_CHARS = 4096
#: What a condition may hold, said in every refusal.
GRAMMAR = (
    "a condition may use only column names, literals, comparisons, in-lists, and/or/not"
)
_OPERATORS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "an attribute",
    ast.Call: "a function call",
    ast.Subscript: "a subscript",
    ast.BinOp: "arithmetic",
    ast.UnaryOp: "arithmetic",
    ast.Lambda: "a lambda",
    ast.IfExp: "an if-else expression",
    ast.NamedExpr: "an assignment",
    ast.JoinedStr: "an f-string",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Starred: "a starred expression",
    ast.Await: "an await",
    ast.Yield: "a yield",
    ast.YieldFrom: "a yield",
    ast.Slice: "a slice",
}


@dataclass(frozen=True)
class Column:
    """A column a condition reads, by its name in the source."""

    name: str


@dataclass(frozen=True)
class Value:
    """A literal of a condition: text, a finite number or True/False."""

    value: str | int | float | bool


@dataclass(frozen=True)
class Comparison:
    """``left op right`` with op one of == != < <= > >=; one side at least a column."""

    op: str
    left: Column | Value
    right: Column | Value


@dataclass(frozen=True)
class Membership:
    """``column in [values]`` (or ``not in`` when negated)."""

    column: Column
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class AllOf:
    """Every part holds (``and``; a chained comparison is one too)."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one part holds (``or``)."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Negation:
    """The part does not hold (``not``)."""

    part: Condition


#: A parsed BANT condition: nothing in it can name anything but a column or a value.
Condition = Comparison | Membership | AllOf | AnyOf | Negation


def parse_condition(text: str) -> Condition:
    """A BANT condition parsed into the safe grammar; ValueError naming the part that
    is not allowed, or the syntax error. Column names with spaces or other characters
    go in `backticks`, as in pandas queries.

    >>> parse_condition("`Annual Revenue` >= 1e6").left
    Column(name='Annual Revenue')
    >>> parse_condition("bant_budget.__class__ == 1")
    Traceback (most recent call last):
    ...
    ValueError: `bant_budget.__class__` is an attribute; a condition may use only \
column names, literals, comparisons, in-lists, and/or/not
    """
    if not isinstance(text, str):
        raise ValueError(f"a condition is text; got {type(text).__name__}")
    if len(text) > MAX_CONDITION_CHARS:
        raise ValueError(
            f"the condition is {len(text):,} characters long; at most "
            f"{MAX_CONDITION_CHARS:,} are allowed"
        )
    plain, names = _unquote_columns(text)
    try:
        tree = ast.parse(plain.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(
            f'not a condition ({error.msg}); write e.g. "annual_revenue >= 1e6", '
            "with `backticks` around column names that have spaces"
        ) from None
    except (RecursionError, MemoryError):
        raise ValueError("the condition is nested too deeply") from None
    return _ConditionParser(plain.strip(), names).condition(tree.body)


def columns_read(condition: str | Condition) -> list[str]:
    """Sorted names of the columns a condition reads; ValueError when it is not one.

    >>> columns_read("`annual revenue` >= 1e6 and region in ['EU', 'UK']")
    ['annual revenue', 'region']
    """
    parsed = parse_condition(condition) if isinstance(condition, str) else condition
    return sorted(_columns(parsed))


def _columns(condition: Condition) -> set[str]:
    if isinstance(condition, AllOf | AnyOf):
        return set().union(*(_columns(part) for part in condition.parts))
    if isinstance(condition, Negation):
        return _columns(condition.part)
    if isinstance(condition, Membership):
        return {condition.column.name}
    sides = (condition.left, condition.right)
    return {side.name for side in sides if isinstance(side, Column)}


def _unquote_columns(text: str) -> tuple[str, dict[str, str]]:
    """The condition with each `backticked` column name replaced by an identifier
    that occurs nowhere else in it, and those identifiers' column names."""
    prefix = "_column"
    while prefix in text:
        prefix += "_"
    names: dict[str, str] = {}
    out: list[str] = []
    quote, i = "", 0
    while i < len(text):
        char = text[i]
        if quote:
            # Inside a string literal a backtick is just a character.
            step = 2 if char == "\\" else 1
            out.append(text[i : i + step])
            quote = "" if char == quote else quote
            i += step
            continue
        if char == "`":
            end = text.find("`", i + 1)
            name = text[i + 1 : end]
            if end < 0 or not name.strip():
                raise ValueError(
                    "a `backtick` opens a column name that is empty or never closes"
                )
            placeholder = f"{prefix}{len(names)}"
            names[placeholder] = name
            # A space keeps the placeholder a word of its own where it touches one
            # (not`b` is `not b`, never a name `not_column0`).
            before = " " if out and _word_char(out[-1][-1:]) else ""
            after = " " if _word_char(text[end + 1 : end + 2]) else ""
            out.append(f"{before}{placeholder}{after}")
            i = end + 1
            continue
        quote = char if char in "'\"" else ""
        out.append(char)
        i += 1
    return "".join(out), names


class _ConditionParser:
    """Turns the AST of a condition into :data:`Condition`, refusing the rest."""

    def __init__(self, text: str, names: dict[str, str]) -> None:
        self.text = text
        self.names = names

    def condition(self, node: ast.expr) -> Condition:
        if isinstance(node, ast.BoolOp):
            parts = tuple(self.condition(value) for value in node.values)
            return AllOf(parts) if isinstance(node.op, ast.And) else AnyOf(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Negation(self.condition(node.operand))
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            pairs = tuple(
                self.pair(node, left, op, right)
                for left, op, right in zip(
                    operands, node.ops, operands[1:], strict=False
                )
            )
            return pairs[0] if len(pairs) == 1 else AllOf(pairs)
        if isinstance(node, ast.Name | ast.Constant | ast.UnaryOp):
            self.operand(node)  # a bad literal is named as such first
            raise ValueError(
                f"`{self.segment(node)}` is not a true/false condition; compare it, "
                'e.g. "bant_budget == \'yes\'" or "employees >= 100"'
            )
        raise self.refused(node)

    def pair(
        self, node: ast.Compare, left: ast.expr, op: ast.cmpop, right: ast.expr
    ) -> Condition:
        if isinstance(op, ast.In | ast.NotIn):
            column = self.operand(left)
            if not isinstance(column, Column):
                raise ValueError(
                    f"`{self.segment(left)}` is not a column: `in` tests a column's "
                    "value against a list, e.g. \"region in ['EU', 'UK']\""
                )
            return Membership(column, self.values(right), isinstance(op, ast.NotIn))
        if isinstance(op, ast.Is | ast.IsNot):
            raise ValueError(
                "`is` compares object identity, not values; use == or != (a "
                "missing value never passes a letter, so there is no need to test "
                "for None)"
            )
        sides = self.operand(left), self.operand(right)
        if not any(isinstance(side, Column) for side in sides):
            raise ValueError(
                f"`{self.segment(node)}` compares two literals; name a column on "
                "one side"
            )
        return Comparison(_OPERATORS[type(op)], *sides)

    def values(self, node: ast.expr) -> tuple[Value, ...]:
        if not isinstance(node, ast.List | ast.Tuple):
            raise ValueError(
                f"`{self.segment(node)}` is not a list of literals; write e.g. "
                "\"region in ['EU', 'UK']\""
            )
        values = []
        for element in node.elts:
            value = self.operand(element)
            if not isinstance(value, Value):
                raise ValueError(
                    f"`{self.segment(element)}` in `{self.segment(node)}` is a "
                    "column; an in-list holds only literals"
                )
            values.append(value)
        return tuple(values)

    def operand(self, node: ast.expr) -> Column | Value:
        if isinstance(node, ast.Name):
            return Column(self.names.get(node.id, node.id))
        signed = _signed_number(node)
        if signed is not None:
            return self.literal(node, signed)
        if isinstance(node, ast.Constant):
            return self.literal(node, node.value)
        if isinstance(node, ast.List | ast.Tuple):
            raise ValueError(
                f"`{self.segment(node)}` is a list; a list may only follow `in` or "
                "`not in`"
            )
        raise self.refused(node)

    def literal(self, node: ast.expr, value: object) -> Value:
        if isinstance(value, str | bool):
            return Value(value)
        if _is_number_literal(value):
            assert isinstance(value, int | float)
            if not math.isfinite(_as_float(value)):
                raise ValueError(
                    f"`{self.segment(node)}` is not a finite number; a condition "
                    "compares with numbers a column can hold"
                )
            return Value(value)
        if value is None:
            raise ValueError(
                "`None` is not a value a condition compares with: a missing value "
                "never passes a letter, so there is no need to test for it"
            )
        raise ValueError(
            f"`{self.segment(node)}` ({type(value).__name__}) is not a literal a "
            "condition can use; literals are text in quotes, numbers, True and False"
        )

    def refused(self, node: ast.expr) -> ValueError:
        culprit = _culprit(node)
        what = _REFUSED.get(type(culprit), f"a {type(culprit).__name__} expression")
        return ValueError(f"`{self.segment(culprit)}` is {what}; {GRAMMAR}")

    def segment(self, node: ast.AST) -> str:
        """The text of a node as the user wrote it (`backticks` and all)."""
        text = ast.get_source_segment(self.text, node) or ast.unparse(node)
        for placeholder, name in self.names.items():
            text = text.replace(placeholder, f"`{name}`")
        return text.strip()


def _culprit(node: ast.expr) -> ast.expr:
    """The innermost call, subscript or attribute of a chain such as
    ``x.__class__.__init__(...)``: the first part that is not allowed."""
    while True:
        inner = (
            node.func
            if isinstance(node, ast.Call)
            else node.value
            if isinstance(node, ast.Attribute | ast.Subscript)
            else None
        )
        if not isinstance(inner, ast.Call | ast.Attribute | ast.Subscript):
            return node
        node = inner


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _signed_number(node: ast.expr) -> int | float | None:
    """The value of ``-3`` or ``+2.5`` (a sign on a number literal), else None."""
    if not isinstance(node, ast.UnaryOp) or not isinstance(
        node.op, ast.USub | ast.UAdd
    ):
        return None
    number = node.operand.value if isinstance(node.operand, ast.Constant) else None
    if not isinstance(number, int | float) or isinstance(number, bool):
        return None
    return -number if isinstance(node.op, ast.USub) else number


def _is_number_literal(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _a_condition(text: str) -> str:
    parse_condition(text)  # raises naming the part that is not allowed
    return text


def _not_text_or_boolean(value: Any) -> Any:
    # Lax pydantic reads YAML `true` as 1 and "0.1" as 0.1: a setting written that
    # way is a mistake to point out, not a number to guess.
    if isinstance(value, bool):
        raise ValueError("expected a number, got a YAML boolean (true/false/yes/no)")
    if isinstance(value, str):
        raise ValueError(
            "expected a number, got text: write it unquoted (YAML reads 1e3 as text; "
            "write 1000 or 1.0e3)"
        )
    return value


#: A number setting: finite, and never a YAML boolean or quoted text.
Number = Annotated[
    float, BeforeValidator(_not_text_or_boolean), Strict(), Field(allow_inf_nan=False)
]
#: A whole-number setting: never a float, a YAML boolean or quoted text.
Count = Annotated[int, BeforeValidator(_not_text_or_boolean), Strict()]


def _a_file_path(path: Path) -> Path:
    if "\x00" in str(path) or len(str(path)) > MAX_PATH_CHARS:
        raise ValueError(
            f"not a usable file path (a NUL byte, or over {MAX_PATH_CHARS} characters)"
        )
    return path


#: A file a table is read from.
FilePath = Annotated[Path, AfterValidator(_a_file_path)]


def _a_date(value: Any) -> Any:
    # Lax pydantic reads a number as seconds since 1970: 2023 would be a date.
    if not isinstance(value, str | date):
        raise ValueError(f"expected a date such as 2023-01-01; got {value!r}")
    return value


def _a_direction(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected -1, 0 or 1, got a YAML boolean")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- the source: files and their contract -------------------------------------------


#: Field separators a CSV export is read with (detected among them when not set).
SEPARATORS = (",", ";", "\t", "|")
#: The name of the row-number id column when ``id: {row_number: true}`` names none.
ROW_NUMBER_COLUMN = "row_number"
#: A table name becomes a file name (data/tables/<name>.parquet) and a params key.
TABLE_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


def _a_separator(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("tab", "\\t"):
        return "\t"
    return value


class _Reading(_Section):
    """How a table's file is read: every key optional (CSV dialect detected)."""

    sep: (
        Annotated[Literal[",", ";", "\t", "|"], BeforeValidator(_a_separator)] | None
    ) = Field(
        None,
        description="CSV field separator: ',', ';', tab ('\\t' or tab) or '|'; "
        "default: detected from the file's first lines",
    )
    encoding: str = Field(
        "utf-8",
        min_length=1,
        max_length=40,
        description="text encoding of a CSV file, e.g. utf-8, cp1252, latin-1 "
        "(a UTF-8 byte-order mark is skipped)",
    )
    decimal: Literal[".", ","] = Field(
        ".",
        description="decimal mark of the numbers in a CSV file; with ',' a value "
        "such as 1.234,5 reads as 1234.5",
    )
    sheet: str | None = Field(
        None, min_length=1, description="the sheet of an .xlsx file (default: first)"
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(
                f"{encoding!r} is not a text encoding; use e.g. utf-8, cp1252 or "
                "latin-1"
            ) from None
        return encoding


def _row_number_id(data: Any) -> Any:
    """``id: {row_number: true[, name: ...]}``: the id is the file's row number."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), dict):
        return data
    spec = dict(data["id"])
    if spec.pop("row_number", None) is not True:
        raise ValueError(
            "id: give a column name, or {row_number: true} (optionally with "
            "name: ...) when the export has no id column"
        )
    name = spec.pop("name", ROW_NUMBER_COLUMN)
    if name in (*REJECT_COLUMNS, *META_COLUMNS):
        raise ValueError(
            f"id.name: {name!r} is a name lead-ml uses for its own columns; "
            "choose another"
        )
    if spec:
        raise ValueError(f"id: unknown key(s) {sorted(spec)}; use row_number, name")
    return {**data, "id": name, "row_number": True}


class DealsTable(_Reading):
    """The deals table: one row per lead or opportunity."""

    path: FilePath = Field(
        description="CSV, Excel (.xlsx) or Parquet file, relative to the project root"
    )
    id: str = Field(min_length=1, description="column with a unique id per deal")
    row_number: bool = Field(
        False,
        description="the export has no id column: the id is the 1-based row number "
        "of the file (header and blank lines not counted), added as column `id`; "
        "written id: {row_number: true} (column 'row_number') or "
        "{row_number: true, name: ...}",
    )
    created: str | None = Field(
        None, description="column with the date the lead came in (time split)"
    )
    closed: str | None = Field(
        None, description="column with the date the deal was won or lost"
    )
    order: str | None = Field(
        None,
        description="with no created date: a column of numbers or dates that orders "
        "deals in time (e.g. a sequential lead number); it may also be the id",
    )
    amount: str | None = Field(
        None, description="column with the deal's expected value, known at creation"
    )

    @model_validator(mode="before")
    @classmethod
    def _id_form(cls, data: Any) -> Any:
        return _row_number_id(data)


class AccountsTable(_Reading):
    """A table joined onto the deals on a key, many deals to one row (accounts,
    products, teams...); or, named by ``source.outcome.table``, the outcome."""

    path: FilePath
    key: str = Field(min_length=1, description="column of the deals naming the row")
    id: str | None = Field(
        None, description="the matching id column of this table (default: key)"
    )
    columns: list[str] | None = Field(
        None, description="columns to join (default: all but the id)"
    )

    @property
    def id_column(self) -> str:
        """The id column of this table."""
        return self.id or self.key


#: A further many-to-one table (products, teams...): an accounts table by shape.
JoinTable = AccountsTable


class ActivitiesTable(_Reading):
    """An optional activity log: one row per email, call, visit... of a deal."""

    path: FilePath
    key: str = Field(min_length=1, description="column holding the deal id")
    timestamp: str = Field(min_length=1, description="column with when it happened")
    type: str = Field(min_length=1, description="column with the kind of activity")


class TablesConfig(_Section):
    """The source's tables; leave out the ones the export does not have. Any other
    name is a further table (:data:`JoinTable`): joined onto the deals by key like
    the accounts, or the outcome table that ``source.outcome.table`` names."""

    model_config = ConfigDict(frozen=True, extra="allow")
    __pydantic_extra__: dict[str, JoinTable] = Field(init=False)

    deals: DealsTable
    accounts: AccountsTable | None = None
    activities: ActivitiesTable | None = None

    @model_validator(mode="after")
    def _table_names(self) -> TablesConfig:
        for name in self.extra():
            if not re.match(TABLE_NAME, name):
                raise ValueError(
                    f"{name!r}: a table name is a letter then letters, digits, _ "
                    "or - (it names a file, data/tables/<name>.parquet)"
                )
        return self

    def extra(self) -> dict[str, JoinTable]:
        """The further tables by name, in params order."""
        return dict(self.__pydantic_extra__ or {})

    def present(self) -> dict[str, DealsTable | AccountsTable | ActivitiesTable]:
        """The configured tables by name (what `lead-ml read` reads, one a stage)."""
        tables: dict[str, DealsTable | AccountsTable | ActivitiesTable | None] = {
            "deals": self.deals,
            "accounts": self.accounts,
            "activities": self.activities,
            **self.extra(),
        }
        return {name: table for name, table in tables.items() if table is not None}


def _outcome_value(value: Any) -> str:
    if not isinstance(value, str | int | float):
        raise ValueError(
            f"an outcome value is text as the file holds it; got a "
            f"{type(value).__name__}"
        )
    if isinstance(value, bool):
        raise ValueError(
            f"{value!r} is a YAML boolean: quote the value as it is written in "
            "the file, e.g. won: ['Yes']"
        )
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class OutcomeConfig(_Section):
    """The outcome column and which of its values mean won, lost and (optionally) open.

    With ``open`` given, any other value rejects its row; without it, every value
    that is neither won nor lost is an open deal, the kind that gets scored.

    With ``table`` (a further table of ``source.tables``, matched on its key) the
    outcome is in another table: with no ``column`` a deal is won when its key is in
    that table; with a ``column`` its value there is read as above. A deal missing
    from the table is ``absent`` (lost, or open).
    """

    column: str | None = Field(
        None, min_length=1, description="the outcome column (of `table` when set)"
    )
    won: list[str] = Field(
        default_factory=list, description="values meaning closed-won"
    )
    lost: list[str] = Field(
        default_factory=list, description="values meaning closed-lost"
    )
    open: list[str] | None = Field(
        None, description="values meaning still open; others are rejected when set"
    )
    table: str | None = Field(
        None,
        min_length=1,
        description="a further table of source.tables holding the outcome: a deal is "
        "won when its key is there (or by `column` there)",
    )
    absent: Literal["lost", "open"] = Field(
        "lost", description="with `table`: the outcome of a deal the table lacks"
    )

    @field_validator("won", "lost", "open", mode="before")
    @classmethod
    def _values_as_text(cls, values: Any, info: ValidationInfo) -> Any:
        if values is None:
            return None if info.field_name == "open" else []
        if not isinstance(values, list):
            values = [values]
        if not values and info.field_name != "open":
            raise ValueError("List should have at least 1 item (a value of the file)")
        return [_outcome_value(value) for value in values]

    @model_validator(mode="after")
    def _values_differ(self) -> OutcomeConfig:
        if self.table is not None and self.column is None:
            given = [k for k in ("won", "lost", "open") if getattr(self, k)]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: with a table and no column a deal is won "
                    "when its key is in the table; name the table's outcome column "
                    "(column) to read its values, or drop them"
                )
            return self
        for key in ("column", "won", "lost"):
            if not getattr(self, key):
                raise ValueError(
                    f"{key}: required (the outcome column and its won and lost "
                    "values), unless the outcome is a table's keys (table)"
                )
        groups = {"won": self.won, "lost": self.lost, "open": self.open or []}
        for first, second in (("won", "lost"), ("won", "open"), ("lost", "open")):
            both = sorted(set(groups[first] or []) & set(groups[second] or []))
            if both:
                raise ValueError(f"{both} are listed as both {first} and {second}")
        return self

    @property
    def deals_column(self) -> str | None:
        """The deals table's outcome column (None when the outcome is a table's)."""
        return self.column if self.table is None else None


class Bounds(_Section):
    """The range a number column's values must lie in; a value outside rejects its
    row (in training and in scoring alike)."""

    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _a_range(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class SourceConfig(_Section):
    """The ``source`` section: the files of a CRM export and how to read them."""

    name: str = Field("CRM export", description="what the report calls the data")
    tables: TablesConfig
    outcome: OutcomeConfig
    missing_values: list[str] = Field(
        default_factory=list,
        description='values meaning "not answered", e.g. Select; blank is always',
    )
    ignore: list[str] = Field(default_factory=list, description="not features")
    forbidden: list[str] = Field(
        default_factory=list, description="recorded after the outcome: never features"
    )
    allowed: list[str] = Field(
        default_factory=list,
        description="columns the audit flagged that the user checked and keeps",
    )
    types: dict[str, DeclaredKind] = Field(
        default_factory=dict, description="kinds that cannot be inferred safely"
    )
    bounds: dict[str, Bounds] = Field(
        default_factory=dict, description="number columns' allowed ranges"
    )
    directions: dict[
        str, Annotated[Literal[-1, 0, 1], BeforeValidator(_a_direction)]
    ] = Field(
        default_factory=dict,
        description="1: more of it never lowers the score; -1: never raises it",
    )
    max_levels: Count = Field(
        50,
        ge=2,
        le=10_000,
        description="distinct values above which text is not a category",
    )
    dimensions: dict[str, str] = Field(
        default_factory=dict,
        description="column -> MEDDIC dimension, fit or engagement",
    )
    details: dict[str, str] = Field(
        default_factory=dict,
        description="column -> the column it details (a champion's strength details "
        "the champion): filled in only once that one is answered, and asked with it",
    )

    @field_validator("dimensions")
    @classmethod
    def _known_dimensions(cls, dimensions: dict[str, str]) -> dict[str, str]:
        for column, dimension in dimensions.items():
            if dimension not in OUTPUT_DIMENSIONS:
                raise ValueError(
                    f"{column!r}: {dimension!r} is not a dimension; use one of "
                    f"{', '.join(OUTPUT_DIMENSIONS)}"
                )
        return dimensions

    @model_validator(mode="after")
    def _consistent(self) -> SourceConfig:
        problem = _consistency_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    def roles(self) -> dict[str, str]:
        """Columns with a role (id, outcome, dates...) keyed by their params key."""
        deals, accounts = self.tables.deals, self.tables.accounts
        named = {
            "source.tables.deals.id": deals.id,
            "source.outcome.column": self.outcome.deals_column,
            "source.tables.deals.created": deals.created,
            "source.tables.deals.closed": deals.closed,
            "source.tables.deals.order": deals.order,
            "source.tables.deals.amount": deals.amount,
            "source.tables.accounts.key": accounts.key if accounts else None,
        }
        return {key: column for key, column in named.items() if column is not None}

    def excluded(self) -> dict[str, str]:
        """Columns that are never features, with the reason."""
        reasons = {column: f"its role is {key}" for key, column in self.roles().items()}
        reasons |= dict.fromkeys(self.ignore, "listed under source.ignore")
        reasons |= dict.fromkeys(
            self.forbidden, "listed under source.forbidden (recorded after the outcome)"
        )
        return reasons


def _consistency_problem(source: SourceConfig) -> str:
    """The first contradiction between keys of the source section, or ''."""
    roles = source.roles()
    problem = _tables_problem(source)
    if problem:
        return problem
    seen: dict[str, str] = {}
    for key, column in roles.items():
        # A sequential id may also be the order column; no other role is shared.
        pair = {key, seen.get(column)}
        shared = pair == {"source.tables.deals.id", "source.tables.deals.order"}
        if column in seen and not shared:
            return f"{key} and {seen[column]} both name column {column!r}; use one"
        seen[column] = key
    excluded = dict.fromkeys(source.ignore, "source.ignore")
    excluded |= dict.fromkeys(source.forbidden, "source.forbidden")
    for column in source.allowed:
        if column in excluded:
            return (
                f"source.allowed: {column!r} is also under {excluded[column]}; a "
                "column is either used (allowed) or left out"
            )
    for key in ("dimensions", "directions"):
        for column in getattr(source, key):
            where = excluded.get(column) or _role_key(roles, column)
            if where:
                return (
                    f"source.{key}.{column}: {column!r} is not a feature (it is "
                    f"under {where}); remove it from source.{key}"
                )
    for detail, parent in source.details.items():
        if detail == parent:
            return f"source.details.{detail}: a column cannot detail itself"
        if parent in source.details:
            return (
                f"source.details.{detail}: {parent!r} is itself a detail; name the "
                "column both detail"
            )
        for column in (detail, parent):
            where = excluded.get(column) or _role_key(roles, column)
            if where:
                return (
                    f"source.details.{detail}: {column!r} is not a feature (it is "
                    f"under {where})"
                )
    for column in source.bounds:
        kind = source.types.get(column, "number")
        if kind != "number":
            return (
                f"source.bounds.{column}: bounds need a number column, and "
                f"source.types declares it {kind}"
            )
    return ""


def _tables_problem(source: SourceConfig) -> str:
    """A contradiction between the tables and the outcome's table, or ''."""
    tables, outcome = source.tables, source.outcome
    extra = tables.extra()
    if outcome.table is not None and outcome.table not in extra:
        named = ", ".join(extra) or "none"
        return (
            f"outcome.table: {outcome.table!r} is not a further table under "
            f"source.tables (those: {named}); add it there with path and key"
        )
    return ""


def _role_key(roles: dict[str, str], column: str) -> str:
    return next((key for key, name in roles.items() if name == column), "")


class AuditConfig(_Section):
    """Thresholds of the checks before training (see :mod:`lead_ml.audit`)."""

    max_auc_ci_width: Number = Field(
        0.10,
        gt=0,
        lt=1,
        description="widest 95% CI of the test window's ROC AUC (Hanley-McNeil, at "
        "planning_auc) that one test window may give; wider: folds over all deals",
    )
    planning_auc: Number = Field(
        0.75,
        gt=0.5,
        lt=1,
        description="the AUC the CI width is planned at (a typical lead model)",
    )
    max_single_auc: Number = Field(
        0.95,
        gt=0.5,
        le=1,
        description="a column ranking won above lost this well on its own is leakage",
    )
    decisive_purity: Number = Field(
        0.97, gt=0.5, le=1, description="a value this one-sided decides the outcome"
    )
    decisive_min_rows: Count = Field(
        30,
        ge=1,
        le=1_000_000,
        description="rows a value needs before its purity counts",
    )
    decisive_share: Number = Field(
        0.05,
        gt=0,
        le=1,
        description="share of training deals with deciding values that flags a column",
    )
    one_outcome_max_other: Number = Field(
        0.01,
        ge=0,
        lt=0.2,
        description="a column filled for at most this share of one outcome (and five "
        "times more of the other) is filled only once the outcome is known",
    )
    late_date_share: Number = Field(
        0.01,
        ge=0,
        lt=1,
        description="share of closed deals with a date after the close that flags it",
    )
    late_name_words: list[str] = Field(
        default_factory=lambda: list(LATE_NAME_WORDS),
        description="words in a column name that mean a state at export time",
    )
    cv_splits: Count = Field(
        5,
        ge=2,
        le=20,
        description="folds: rolling-origin test blocks over dated or ordered deals, "
        "else stratified folds per repeat",
    )
    cv_repeats: Count = Field(
        3, ge=1, le=20, description="repeats of stratified CV (undated deals only)"
    )
    rolling_min_train: Number = Field(
        0.5,
        ge=0.2,
        le=0.9,
        description="share of the closed deals (the oldest) that trains the first "
        "rolling-origin fold; the rest is cut into cv_splits test blocks",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "min_per_outcome" in data:
            raise ValueError(
                "audit.min_per_outcome was replaced by audit.max_auc_ci_width (the "
                "widest AUC confidence interval one test window may give, e.g. 0.10): "
                "a fixed count threw away good time splits"
            )
        return data


# --- the stages ---------------------------------------------------------------------


class SyntheticConfig(_Section):
    """Size and shape of the built-in synthetic CRM (`lead-ml generate` only)."""

    n_deals: Count = Field(
        40_000, ge=100, le=5_000_000, description="deals to generate"
    )
    n_accounts: Count = Field(
        8_000, ge=10, le=1_000_000, description="accounts the deals belong to"
    )
    start: Annotated[date, BeforeValidator(_a_date)] = Field(
        date(2023, 1, 1), description="first created_at"
    )
    months: Count = Field(
        36, ge=3, le=240, description="months of history up to the export"
    )
    activities_per_deal: Number = Field(
        28.0, gt=0, le=1000, description="mean activity-log rows per deal (roughly)"
    )
    format: Literal["parquet", "csv"] = Field(
        "parquet", description="file format of the generated tables"
    )


class ActivityFeatures(_Section):
    """What the activity log turns into, counted up to each deal's snapshot."""

    types: list[str] | None = Field(
        None,
        description="activity types counted one by one; null: the most common "
        "max_types of the training deals",
    )
    max_types: Count = Field(
        20, ge=1, le=200, description="types counted when types is null"
    )
    half_life_days: Number = Field(
        7.0, gt=0, le=3650, description="half-life of the recency weight on activities"
    )
    intent_types: list[str] = Field(
        default_factory=list,
        description="types that signal buying intent (pricing, demo, trial...): "
        "their recency-weighted count is a feature of its own",
    )
    dimension: str = Field(
        "engagement", description="what the activity features explain"
    )

    @field_validator("dimension")
    @classmethod
    def _a_dimension(cls, dimension: str) -> str:
        if dimension not in OUTPUT_DIMENSIONS:
            raise ValueError(f"use one of {', '.join(OUTPUT_DIMENSIONS)}")
        return dimension


class FeaturizeConfig(_Section):
    """Point-in-time feature settings."""

    snapshot_days: Count = Field(
        14,
        ge=0,
        le=3650,
        description="features use only what was known this many days after created",
    )
    activities: ActivityFeatures = ActivityFeatures()
    date_parts: list[DatePart] = Field(
        default_factory=lambda: list(DATE_PARTS),
        description="parts of the created date that are features (explained as "
        "'other'): month only when the training deals span every month, hour only "
        "when created dates carry a time; [] for none",
    )


class SplitConfig(_Section):
    """Time-ordered split of closed deals: oldest train, then validation, then test."""

    valid_fraction: Number = Field(0.15, gt=0, lt=0.5)
    test_fraction: Number = Field(0.2, gt=0, lt=0.5)


class TrainConfig(_Section):
    """LightGBM settings; the tree shape also decides how fast explanations run."""

    learning_rate: Number = Field(0.05, gt=0, le=1)
    # Explanations walk every leaf of every tree: the bounds keep them (and the
    # bundle) a size a scoring job can hold.
    num_leaves: Count = Field(8, ge=2, le=1024)
    max_depth: Count = Field(3, ge=-1, le=64)
    n_estimators: Count = Field(600, ge=1, le=20_000)
    early_stopping_rounds: Count = Field(50, ge=1, le=20_000)
    min_child_samples: Count = Field(40, ge=1, le=1_000_000)
    reg_lambda: Number = Field(1.0, ge=0, le=1e6)
    feature_fraction: Number = Field(0.9, gt=0, le=1)
    bagging_fraction: Number = Field(0.9, gt=0, le=1)
    # One thread: at tens of thousands of deals LightGBM's OpenMP threads gain little
    # and, when the cores are busy (CI, a shared box), spin: measured 1.3 s vs 30 s.
    num_threads: Count = Field(1, ge=1, le=256)
    small_data: Annotated[bool, Strict()] = Field(
        True,
        description="at a few thousand training deals or fewer, cap min_child_samples "
        "and leaves by the deal count (see lead_ml.model.scaled_train), and train "
        "each fold model on all its deals, its tree count chosen by folds over them "
        "(lead_ml.model.inner_cv_model)",
    )
    calibrate_on: Literal["validation", "latest"] = Field(
        "validation",
        description="Platt fit of the exported model: on the validation window (or "
        "every out-of-fold score), or on the latest labelled window when the base "
        "rate has moved (the evaluation still judges the validation fit)",
    )


class BantConfig(_Section):
    """The BANT rule: each letter is a condition on the source's columns (see
    :func:`parse_condition`); leave out letters the export has no data for.

    A lead passes a letter when its condition is true; the rule qualifies a lead when
    the weighted count of passed letters reaches ``threshold``. Weights default to 1.
    The whole section is optional: without a rule (an export with no BANT-like
    fields) the model is compared with the base rate (``Params.bant`` None).
    """

    letters: dict[str, Annotated[str, AfterValidator(_a_condition)]] = Field(
        min_length=1
    )
    weights: dict[str, Number] = Field(default_factory=dict)
    threshold: Number = Field(gt=0)

    @field_validator("letters")
    @classmethod
    def _letters_parse(cls, letters: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(letters) - set(BANT_LETTERS))
        if unknown:
            raise ValueError(
                f"unknown letters {unknown}; use some of {list(BANT_LETTERS)}"
            )
        return letters

    @model_validator(mode="before")
    @classmethod
    def _default_weights(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("letters"), dict):
            given = data.get("weights") or {}
            if isinstance(given, dict):
                weights = dict.fromkeys(data["letters"], 1.0)
                data = {**data, "weights": weights | given}
        return data

    @model_validator(mode="after")
    def _weights_fit(self) -> BantConfig:
        extra = sorted(set(self.weights) - set(self.letters))
        if extra:
            raise ValueError(f"weights given for letters without a condition: {extra}")
        weights = self.weights
        if any(weight < 0 for weight in weights.values()):
            raise ValueError("weights must be 0 or more")
        total = sum(weights.values())
        # Weights are floats: 0.3 + 0.6 is 0.8999999999999999, and must allow 0.9.
        if self.threshold > total and not math.isclose(self.threshold, total):
            raise ValueError(
                f"threshold {self.threshold:g} is above the sum of the weights "
                f"({sum(weights.values()):g}): no lead could pass"
            )
        return self

    def conditions(self) -> dict[str, Condition]:
        """Each letter's parsed condition."""
        return {letter: parse_condition(text) for letter, text in self.letters.items()}

    def letter_columns(self) -> dict[str, list[str]]:
        """The columns each letter's condition reads."""
        return {letter: columns_read(c) for letter, c in self.conditions().items()}

    def columns(self) -> list[str]:
        """Every column the rule reads."""
        return sorted({c for read in self.letter_columns().values() for c in read})


class ExplainConfig(_Section):
    """What a scored lead is told (kept in the scorer: `lead-ml score`, the pyfunc
    and the report alike)."""

    min_question_gain: Number = Field(
        0.01,
        ge=0,
        lt=1,
        description="the least change in win probability (0.01: one percentage "
        "point) an answer must make for its next question to be offered; below it "
        "the lead is told no question is worth asking",
    )


class EvaluateConfig(_Section):
    """Evaluation settings: bootstrap, capacity, calibration bins."""

    capacity: Count | None = Field(
        None,
        ge=1,
        le=100_000_000,
        description="leads reps can work; null = as many as BANT qualifies",
    )
    n_bootstrap: Count = Field(1000, ge=50, le=100_000)
    calibration_bins: Count = Field(10, ge=2, le=100)
    score_bands: Count = Field(
        10, ge=2, le=100, description="bins of the win-rate-by-score plot"
    )
    max_base_rate_ratio: Number = Field(
        1.5,
        gt=1,
        le=100,
        description="test win rate this many times the training one (or its "
        "inverse), and beyond chance, warns of a base-rate shift",
    )
    max_ece: Number = Field(
        0.05,
        gt=0,
        lt=1,
        description="calibration error on the test window above this, and above "
        "what a calibrated model shows by chance there, warns of miscalibration",
    )


class BandsConfig(_Section):
    """Score bands A, B, C as shares of the validation window; D is the rest."""

    A: Number = Field(0.10, gt=0, lt=1)
    B: Number = Field(0.20, gt=0, lt=1)
    C: Number = Field(0.30, gt=0, lt=1)

    @model_validator(mode="after")
    def _shares_fit(self) -> BandsConfig:
        if self.A + self.B + self.C >= 1:
            raise ValueError("A + B + C must stay below 1 so band D is not empty")
        return self


class TrackingConfig(_Section):
    """MLflow experiment and registered model names, and the live model's alias."""

    experiment: str = "lead-ml"
    registered_model: str = "lead-ml-scorer"
    champion_alias: str = Field(
        "champion",
        min_length=1,
        description="registry alias of the model in production (`lead-ml promote`)",
    )


class CompareConfig(_Section):
    """`lead-ml compare`: which months of the test window are judged for stability."""

    min_month_deals: Count = Field(
        100,
        ge=1,
        le=1_000_000,
        description="months with fewer closed deals are shown, not judged (too noisy)",
    )


class PromotionConfig(_Section):
    """The gate `lead-ml promote` applies, declared before anyone looks at results.

    The challenger is scored against the champion (with no champion yet: the BANT
    rule) on the same test window, and every condition must hold.
    """

    min_delta_auc_ci_low: Number = Field(
        0.0,
        ge=-1,
        le=1,
        description="the 95% CI low bound of challenger minus champion ROC AUC "
        "must be above this",
    )
    max_month_drop: Number = Field(
        0.02,
        ge=0,
        le=1,
        description="no judged month may have the challenger's ROC AUC below the "
        "champion's by more than this",
    )
    min_capacity_wins_ratio: Number = Field(
        1.0,
        ge=0,
        le=100,
        description="challenger's wins in the top K leads must be at least this "
        "times the champion's",
    )


class MonitorConfig(_Section):
    """The retrain rule of `lead-ml monitor`, declared before anyone looks at results.

    Past scores are judged against the outcomes that closed since; the rule says
    retrain when any judged check fails. A check with too few leads is shown but not
    judged, and with nothing judged the verdict is "not enough data".
    """

    # Hosmer & Lemeshow's rule of thumb: 0.5 no discrimination, 0.7-0.8 acceptable,
    # 0.8-0.9 excellent; below 0.7 reps would do about as well sorting by hand.
    min_auc: Number = Field(
        0.70,
        gt=0,
        lt=1,
        description="retrain when the ROC AUC of past scores is below this",
    )
    # The batch job's own drift warning (lead_ml.scorer.PSI_WARNING), the common
    # credit-scoring bands: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a real shift.
    max_psi: Number = Field(
        0.25,
        gt=0,
        le=100,
        description="retrain when the score's PSI in the latest judged month of "
        "scoring, against the training window, is above this",
    )
    # Bands and forecasts read the probability: ten points off (a "30%" lead that
    # wins 20% or 40% of the time) misleads revenue ops' forecast accuracy.
    max_calibration_gap: Number = Field(
        0.10,
        gt=0,
        lt=1,
        description="retrain when the latest judged month's mean predicted "
        "probability and realized win rate differ by more than this, outside the "
        "win rate's 95% interval",
    )
    # Below ~30 of each the AUC's bootstrap interval is wider than +-0.1.
    min_outcomes: Count = Field(
        30,
        ge=1,
        le=1_000_000,
        description="won and lost leads each needed before the AUC is judged",
    )
    # As compare.min_month_deals: fewer closed leads make a month's rate noise.
    min_month_leads: Count = Field(
        100,
        ge=1,
        le=1_000_000,
        description="closed leads a month of scoring needs for its calibration "
        "to be judged",
    )
    # Until most of a month's leads closed, the closed ones are the quick ones,
    # which in most CRMs win more often (deals left open end lost).
    min_closed_share: Number = Field(
        0.5,
        ge=0,
        le=1,
        description="share of a month's scored leads that must have closed for "
        "its calibration to be judged",
    )
    # lead_ml.batch.DRIFT_MIN_ROWS: below ~1,000 rows PSI is mostly sampling noise.
    min_psi_rows: Count = Field(
        1000,
        ge=1,
        le=100_000_000,
        description="scores a month needs for its PSI to be judged",
    )


#: What a row of the CRM import file can carry from a scored lead (`lead-ml score
#: --crm-file`): ``id`` is the source's id column, whatever the export calls it;
#: ``scored_at`` is the job's one time stamp; the others are the output's columns.
WRITEBACK_FIELDS: tuple[str, ...] = (
    "id",
    "probability",
    "score",
    "band",
    "top_reasons",
    "next_question",
    "model_version",
    "scored_at",
)
#: Fields every import row must carry: which record, which model, when.
WRITEBACK_REQUIRED: tuple[str, ...] = ("id", "model_version", "scored_at")
#: The longest CRM column name (Salesforce field labels and HubSpot property labels
#: are far shorter; the bound keeps a pasted value out of the header).
MAX_CRM_COLUMN_CHARS = 255


def _a_crm_column(name: str) -> str:
    if not name.strip() or name != name.strip():
        raise ValueError(
            f"a CRM column name must be non-blank with no spaces around it; got "
            f"{name!r}"
        )
    if len(name) > MAX_CRM_COLUMN_CHARS or any(c in name for c in "\r\n\t\x00"):
        raise ValueError(
            f"a CRM column name is one line of at most {MAX_CRM_COLUMN_CHARS} "
            "characters"
        )
    if name[0] in "=+-@":
        raise ValueError(
            f"{name!r} starts with {name[0]!r}, which a spreadsheet reads as a "
            "formula; name the column as the CRM field is named"
        )
    return name


#: A column header of the import file: the CRM field (or property) it fills.
CrmColumn = Annotated[str, Strict(), AfterValidator(_a_crm_column)]


class WritebackConfig(_Section):
    """`lead-ml score --crm-file`: the import file for Salesforce or HubSpot.

    ``columns`` maps a field of the scored lead (:data:`WRITEBACK_FIELDS`) to the
    CRM column it fills, ``passthrough`` an input column (owner, account...) to
    its CRM column; the file's header is these names, in this order.
    """

    columns: dict[str, CrmColumn] = Field(
        min_length=1,
        description="scored field -> CRM column; id, model_version and "
        "scored_at are required",
    )
    passthrough: dict[Annotated[str, Field(min_length=1)], CrmColumn] = Field(
        default_factory=dict, description="input column -> CRM column"
    )
    probability: Literal["percent", "decimal"] = Field(
        "percent",
        description="percent: a whole number 0-100 (a HubSpot number property, a "
        "Salesforce Percent field); decimal: 0-1 with `decimals` digits",
    )
    decimals: Count = Field(4, ge=1, le=10, description="digits of a decimal")
    scored_at: Literal["datetime", "date"] = Field(
        "datetime",
        description="datetime: 2026-12-01T09:30:00Z (a Salesforce Date/Time field); "
        "date: 2026-12-01 (a HubSpot date picker property)",
    )
    excel_bom: Annotated[bool, Strict()] = Field(
        False,
        description="start the file with a UTF-8 byte order mark, for Excel; off "
        "by default: Salesforce Data Loader reads it into the first column name",
    )

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = [field for field in columns if field not in WRITEBACK_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(map(repr, unknown))}; a scored lead has "
                f"{', '.join(WRITEBACK_FIELDS)} (input columns go under "
                "writeback.passthrough)"
            )
        absent = [field for field in WRITEBACK_REQUIRED if field not in columns]
        if absent:
            raise ValueError(
                f"map {', '.join(absent)} too: every imported row says which record "
                "it updates, with which model and when it was scored"
            )
        return columns

    @model_validator(mode="after")
    def _one_field_per_column(self) -> WritebackConfig:
        # CRM field names are matched without regard to case (Salesforce API
        # names, HubSpot's column-to-property matching): Score and score collide.
        seen: dict[str, str] = {}
        named = [(f"columns.{k}", v) for k, v in self.columns.items()]
        named += [(f"passthrough.{k}", v) for k, v in self.passthrough.items()]
        for key, name in named:
            earlier = seen.setdefault(name.casefold(), key)
            if earlier != key:
                raise ValueError(
                    f"the CRM column {name!r} is given twice (writeback.{earlier} "
                    f"and writeback.{key}); give each field a column of its own"
                )
        return self

    def header(self) -> list[str]:
        """The import file's columns, in order."""
        return [*self.columns.values(), *self.passthrough.values()]


class BandGuide(_Section):
    """What reps do with a lead of each band (shown beside the band's numbers)."""

    A: str = Field(
        "Speed to lead: first touch within 5 minutes (leads reached that fast are "
        "about 9x more likely to convert).",
        min_length=1,
    )
    B: str = Field(
        "Nurture with a rep: a named rep follows up this week and works the open "
        "MEDDIC questions.",
        min_length=1,
    )
    C: str = Field(
        "Marketing nurture: keep them in campaigns; a rep looks again when the "
        "score moves up a band.",
        min_length=1,
    )
    D: str = Field(
        "Recycle: no rep time now; back to marketing, re-scored when new activity "
        "arrives.",
        min_length=1,
    )


class ReportConfig(_Section):
    """`lead-ml report`: band guidance, segments, currency.

    The band thresholds are the scorer's (``bands`` shares of the validation
    window); only the words are set here.
    """

    guides: BandGuide = BandGuide()
    currency: str | None = Field(
        None, description="currency of deal amounts, e.g. USD or EUR (null: none said)"
    )
    segments: list[str] | None = Field(
        None,
        description="export columns to judge the model per value of (region, "
        "industry, lead source, owner...); null: the source's columns with such names",
    )
    min_segment_deals: Count = Field(
        100,
        ge=2,
        le=1_000_000,
        description="segments with fewer test deals (or under 10 wins or losses) "
        "are shown, not judged",
    )
    max_segment_values: Count = Field(8, ge=1, le=100)


class Params(_Section):
    """All of params.yaml: ``source`` is required, the rest default. Without
    ``bant`` no rule is given: the model is compared with the base rate."""

    # LightGBM takes a 32-bit seed.
    seed: Count = Field(42, ge=0, le=2**31 - 1)
    source: SourceConfig
    bant: BantConfig | None = None
    synthetic: SyntheticConfig = SyntheticConfig()
    audit: AuditConfig = AuditConfig()
    featurize: FeaturizeConfig = FeaturizeConfig()
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    bands: BandsConfig = BandsConfig()
    tracking: TrackingConfig = TrackingConfig()
    compare: CompareConfig = CompareConfig()
    promotion: PromotionConfig = PromotionConfig()
    monitor: MonitorConfig = MonitorConfig()
    writeback: WritebackConfig | None = None
    explain: ExplainConfig = ExplainConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _rule_reads_no_outcome(self) -> Params:
        late = {*self.source.forbidden, self.source.outcome.column} - {None}
        if self.source.tables.deals.closed:
            late.add(self.source.tables.deals.closed)
        if self.bant is None:
            return self
        for letter, read in self.bant.letter_columns().items():
            condition = self.bant.letters[letter]
            for column in read:
                if column in late:
                    raise ValueError(
                        f"bant.letters.{letter}: {condition!r} reads {column!r}, "
                        "which is known only after the outcome; a rule on it leaks"
                    )
                if (
                    column in META_COLUMNS
                    and column not in self.source.roles().values()
                ):
                    raise ValueError(
                        f"bant.letters.{letter}: {column!r} is a name lead-ml uses for "
                        "its own columns; the rule reads the source's columns"
                    )
        return self


#: Bounds on the shape of a params file: a real one is a page or two, a few levels
#: deep. Past them it is a mistake (a data file pasted in) or hostile (an alias
#: bomb), refused in one line before validation walks it.
MAX_PARAMS_BYTES = 1_000_000
MAX_PARAMS_DEPTH = 10
MAX_PARAMS_ITEMS = 20_000
MAX_TEXT_CHARS = 10_000


def check_shape(raw: Any, source: str = "params") -> None:
    """Raise ConfigError when a params mapping is nested too deeply, holds too many
    settings and items, or a text that is too long; the key is named.

    >>> check_shape({"bant": {"letters": {"need": "x" * 20_000}}})
    Traceback (most recent call last):
    ...
    lead_ml.vocab.ConfigError: params: bant.letters.need holds a text of 20,000 \
characters; at most 10,000 are allowed
    """
    seen = 0
    # An explicit stack, not recursion: a cyclic or deep structure cannot overflow it,
    # and the count stops an alias bomb (shared references) after a few steps.
    stack: list[tuple[Any, int, str]] = [(raw, 0, "")]
    while stack:
        node, depth, key = stack.pop()
        seen += 1
        where = key or "the top level"
        if seen > MAX_PARAMS_ITEMS:
            raise ConfigError(
                f"{source}: more than {MAX_PARAMS_ITEMS:,} settings and list items; "
                "a params file is a page or two (was a data file pasted in?)"
            )
        if depth > MAX_PARAMS_DEPTH:
            raise ConfigError(
                f"{source}: {where} is nested more than {MAX_PARAMS_DEPTH} levels "
                "deep; a params file is a few levels deep"
            )
        if isinstance(node, str) and len(node) > MAX_TEXT_CHARS:
            raise ConfigError(
                f"{source}: {where} holds a text of {len(node):,} characters; at "
                f"most {MAX_TEXT_CHARS:,} are allowed"
            )
        if isinstance(node, dict):
            stack.extend((k, depth + 1, f"{where} (a key)") for k in node)
            stack.extend(
                (v, depth + 1, f"{key}.{k}" if key else str(k)) for k, v in node.items()
            )
        elif isinstance(node, list | tuple):
            stack.extend((v, depth + 1, f"{key}[{i}]") for i, v in enumerate(node))


def _shown(value: Any) -> str:
    """A bad value as a message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:100]}... ({len(text):,} characters)"


def _explain(error: ValidationError, source: str) -> str:
    lines = [f"{source}: {error.error_count()} bad setting(s)"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        got = item.get("input")
        shown = "" if isinstance(got, dict) else f" (got {_shown(got)})"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {key}: {message}{shown}")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a params mapping; raise ConfigError naming every bad key."""
    check_shape(raw, source)
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_explain(error, source)) from None


class _ParamsLoader(yaml.SafeLoader):
    """YAML's safe loader (plain data only: no tag builds an object or runs code)
    that also refuses a key given twice, which YAML would silently resolve to the
    last one."""


def _unique_keys(loader: _ParamsLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if (
            isinstance(key_node, yaml.ScalarNode)
            and key_node.tag != "tag:yaml.org,2002:merge"
        ):
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_ParamsLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _unique_keys,
)


def _refuse_deep_yaml(text: str, path: Path) -> None:
    """ConfigError when the YAML nests deeper than a params file can, found from the
    parser's events, stopping at the first level too deep."""
    # Building a 5,000-deep list costs PyYAML seconds and ends in RecursionError;
    # the events (no recursion) tell the depth after a few tokens.
    depth = 0
    for event in yaml.parse(text, Loader=_ParamsLoader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            # The top-level mapping is one level above check_shape's count.
            if depth > MAX_PARAMS_DEPTH + 1:
                raise ConfigError(
                    f"{path}: nested more than {MAX_PARAMS_DEPTH} levels deep; a "
                    "params file is a few levels deep"
                )
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


def read_params_file(path: Path | str) -> dict[str, Any]:
    """The raw mapping of a params file; ConfigError when it is absent, unreadable,
    too big, not YAML, or not a mapping of sections."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            # Read at most one byte past the bound: /dev/zero must not fill memory.
            data = file.read(MAX_PARAMS_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found; run from the project root or pass --params"
        ) from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    if len(data) > MAX_PARAMS_BYTES:
        raise ConfigError(
            f"{path}: over {MAX_PARAMS_BYTES:,} bytes; a params file is a page or two"
        )
    try:
        text = data.decode("utf-8")
        _refuse_deep_yaml(text, path)
        # _ParamsLoader is a SafeLoader: this is safe_load plus the duplicate check.
        raw = yaml.load(text, Loader=_ParamsLoader) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8)") from None
    except yaml.MarkedYAMLError as error:
        # One line: where it is and what is wrong, not PyYAML's excerpt and caret.
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = error.problem or error.context or "cannot be read"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: nested too deeply to read; a params file is a few levels deep"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return raw


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate a params.yaml file."""
    return parse_params(read_params_file(path), str(path))


# --- fragments: a file of optional sections, merged into params.yaml by the user ---


def is_fragment(raw: dict[str, Any]) -> bool:
    """Whether a params mapping is a fragment: some sections to merge into a params
    file (such as examples/writeback/*.yaml), without ``source`` or ``bant``."""
    return bool(raw) and "source" not in raw and "bant" not in raw


def _fragment_model() -> type[BaseModel]:
    """Params with only its optional sections (every one, as Params declares it)."""
    optional = {
        name: (field.annotation, field)
        for name, field in Params.model_fields.items()
        if not field.is_required()
    }
    return create_model("ParamsFragment", __base__=_Section, **optional)  # type: ignore[call-overload]


def parse_fragment(raw: dict[str, Any], source: str = "params") -> dict[str, Any]:
    """Validate a fragment's sections as Params validates them; ConfigError naming
    every bad key (a section Params lacks is one). Returns section -> value.

    >>> parse_fragment({"bands": {"A": 0.2}})["bands"].A
    0.2
    """
    check_shape(raw, source)
    try:
        fragment = _fragment_model().model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_explain(error, source)) from None
    return {name: getattr(fragment, name) for name in raw}


def load_writeback(path: Path | str = "params.yaml") -> WritebackConfig:
    """The ``writeback`` section of a params file or fragment, validated on its own
    (a batch job needs no more: the scorer folder holds the rest); ConfigError when
    the file has none."""
    raw = read_params_file(path)
    if raw.get("writeback") is None:
        raise ConfigError(
            f"{path}: no writeback section; --crm-file needs one, mapping each scored "
            "field to its CRM column (see examples/writeback/salesforce.yaml), or "
            "pass --params with the file that has it"
        )
    section: WritebackConfig = parse_fragment(
        {"writeback": raw["writeback"]}, str(path)
    )["writeback"]
    return section
