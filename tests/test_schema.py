"""The row contract: kinds, bounds and reasons, for training (type_table) and scoring
(LeadContract) alike."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lead_ml.schema import LeadContract, bound_reasons, id_text, type_table
from lead_ml.tables import no_reasons
from lead_ml.vocab import ContractError, Kind

KINDS: tuple[Kind, ...] = ("number", "date", "bool", "evidence", "category", "text")


def deals(**columns: list[Any]) -> pd.DataFrame:
    """Three deal rows as a CSV reads them (text), indexed 5, 6, 7, with changes."""
    base: dict[str, list[Any]] = {
        "id": ["a", "b", "c"],
        "amount": ["100", "250.5", "0"],
        "region": ["EU", "US", "Select"],
        "visits": ["3", "Select", "12"],
        "signed": ["2024-01-02", "", "2024-03-01T10:00:00"],
        "champion": ["Yes", "no", ""],
    }
    frame = pd.DataFrame(base | columns, index=[5, 6, 7])
    return frame.astype("string")


def typed(
    frame: pd.DataFrame,
    declared: dict[str, Kind] | None = None,
    bounds: dict[str, tuple[float | None, float | None]] | None = None,
) -> Any:
    return type_table(
        frame,
        "deals",
        "deals.csv",
        declared or {"champion": "evidence"},
        missing=["Select"],
        max_levels=50,
        bounds=bounds,
    )


# --- type_table ---------------------------------------------------------------------


def test_declared_and_inferred_kinds_and_what_is_known_of_each_column() -> None:
    table = typed(deals())
    kinds = {c: (k.kind, k.declared) for c, k in table.kinds.items()}
    assert kinds == {
        "id": ("category", False),
        "amount": ("number", False),
        "region": ("category", False),
        "visits": ("number", False),  # "Select" is missing, not a reason for text
        "signed": ("date", False),
        "champion": ("evidence", True),
    }
    assert table.kinds["region"].levels == 2
    assert table.kinds["visits"].missing_share == pytest.approx(1 / 3)
    assert table.kinds["visits"].as_dict()["missing_share"] == 0.3333
    assert table.reasons.tolist() == [None, None, None]


def test_columns_come_back_in_their_kinds_with_the_index_kept() -> None:
    table = typed(deals())
    frame = table.frame
    assert list(frame.index) == [5, 6, 7]
    assert frame["amount"].dtype == np.dtype("float64")
    assert frame["signed"].dtype == np.dtype("datetime64[ms]")
    assert frame["champion"].tolist() == ["yes", "no", pd.NA]
    assert frame["region"].tolist() == ["EU", "US", pd.NA]


def test_a_value_that_does_not_read_rejects_its_row_with_the_first_reason() -> None:
    frame = deals(amount=["12k", "5", "-1"], signed=["soon", "2024-01-01", "later"])
    table = typed(frame, {"amount": "number", "signed": "date"}, {"amount": (0, None)})
    assert table.reasons.tolist() == [
        "amount is not a number: '12k'",  # amount comes before signed
        None,
        "amount is below 0 (-1)",
    ]


def test_a_declared_kind_no_value_reads_as_is_a_contract_error() -> None:
    with pytest.raises(ContractError) as caught:
        typed(deals(), {"region": "date"})
    message = str(caught.value)
    assert message.startswith("deals.csv: no value of column 'region' reads as an ")
    assert "(first: 'EU')" in message and "source.types" in message


def test_an_all_missing_declared_column_is_no_error() -> None:
    table = typed(deals(amount=["", "Select", None]), {"amount": "number"})
    assert table.frame["amount"].isna().all()
    assert table.reasons.tolist() == [None, None, None]


def test_inputs_are_not_mutated() -> None:
    frame = deals(amount=["x", "1", "2"])
    before = frame.copy()
    typed(frame)
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.parametrize(
    ("bounds", "reasons"),
    [
        ((0.0, None), ["x is below 0 (-0.5)", None, None, None]),
        ((None, 5.0), [None, None, "x is above 5 (7)", None]),
        ((0.0, 5.0), ["x is below 0 (-0.5)", None, "x is above 5 (7)", None]),
        ((-1.0, 7.0), [None, None, None, None]),  # the bounds themselves are inside
    ],
)
def test_bounds_reject_values_outside_them_and_never_missing_ones(
    bounds: tuple[float | None, float | None], reasons: list[str | None]
) -> None:
    found = no_reasons(4)
    bound_reasons(pd.Series([-0.5, 5.0, 7.0, np.nan]), "x", bounds, found)
    assert found.tolist() == reasons


# --- LeadContract -------------------------------------------------------------------

CONTRACT = LeadContract(
    "Lead Id",
    {"Lead Id": "category", "visits": "number", "champion": "evidence"},
    required=("visits",),
    missing_values=("Select",),
    bounds={"visits": (0.0, 100.0)},
)


def leads(**columns: list[Any]) -> pd.DataFrame:
    base: dict[str, list[Any]] = {
        "Lead Id": ["L1", "L2", "L3", "L4"],
        "visits": ["3", "4", "5", "6"],
        "champion": ["yes", "Select", "", "NO"],
    }
    return pd.DataFrame(base | columns, index=[40, 30, 20, 10])


def test_leads_read_in_their_kinds_with_the_index_kept() -> None:
    frame, reasons = CONTRACT.read(leads())
    assert list(frame.index) == [40, 30, 20, 10]
    assert frame["visits"].tolist() == [3.0, 4.0, 5.0, 6.0]
    assert frame["champion"].tolist() == ["yes", pd.NA, pd.NA, "no"]
    assert reasons.tolist() == [None] * 4
    assert CONTRACT.columns == ["Lead Id", "visits", "champion"]


def test_each_lead_gets_the_first_reason_in_contract_order() -> None:
    changes: dict[str, list[Any]] = {
        "Lead Id": ["L1", None, "L1", "L4"],
        "visits": ["lots", "-3", "", "500"],
        "champion": ["maybe", "yes", "yes", "yes"],
    }
    rows = leads(**changes)
    _, reasons = CONTRACT.read(rows)
    assert reasons.tolist() == [
        "visits is not a number: 'lots'",  # kinds first, in column order
        "Lead Id is missing",  # then the id and required values
        "visits is missing",
        "visits is above 100 (500)",  # then bounds
    ]


def test_a_repeated_id_is_rejected_only_after_a_valid_row_took_it() -> None:
    rows = leads(
        **{"Lead Id": ["L1", "L1", "L1", "L2"], "visits": ["x", "1", "2", "3"]}
    )
    _, reasons = CONTRACT.read(rows, rows=np.array([100, 101, 102, 103]))
    assert reasons.tolist() == [
        "visits is not a number: 'x'",
        None,  # the first valid row keeps the id
        "duplicate Lead Id 'L1' (first seen at row 101)",
        None,
    ]


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        ([660737, 660728], ["660737", "660728"]),
        ([660737.0, np.nan], ["660737", pd.NA]),
        ([1.5, 2.0], ["1.5", "2"]),
        (["007", "7"], ["007", "7"]),  # text ids are never read as numbers
    ],
)
def test_ids_are_text_whatever_the_file_stored(ids: list[Any], text: list[Any]) -> None:
    assert id_text(pd.Series(ids)).tolist() == text
    contract = LeadContract("id", {"id": "category"})
    frame, reasons = contract.read(pd.DataFrame({"id": ids}))
    assert frame["id"].tolist() == text
    assert reasons.tolist() == [
        None if t is not pd.NA else "id is missing" for t in text
    ]


def test_numeric_and_text_copies_of_an_id_are_the_same_id() -> None:
    contract = LeadContract("id", {"id": "category"})
    _, reasons = contract.read(pd.DataFrame({"id": [660737.0, 660737.0]}))
    assert reasons.tolist() == [None, "duplicate id '660737' (first seen at row 0)"]


def test_missing_columns_are_listed_in_contract_order() -> None:
    assert CONTRACT.missing_columns(["champion", "other"]) == ["Lead Id", "visits"]


BOUND = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))
NAMES = st.text(min_size=1, max_size=12)


@st.composite
def contracts(draw: st.DrawFn) -> LeadContract:
    kinds = draw(st.dictionaries(NAMES, st.sampled_from(KINDS), min_size=1, max_size=6))
    columns = list(kinds)
    numbers = [c for c in columns if kinds[c] == "number"]
    return LeadContract(
        id_column=draw(st.sampled_from(columns)),
        kinds=kinds,
        required=tuple(draw(st.lists(st.sampled_from(columns), unique=True))),
        missing_values=tuple(draw(st.lists(st.text(max_size=8), max_size=3))),
        bounds={
            c: draw(st.tuples(BOUND, BOUND))
            for c in draw(st.lists(st.sampled_from(numbers), unique=True))
        }
        if numbers
        else {},
    )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(contracts())
def test_a_contract_survives_its_json_round_trip(contract: LeadContract) -> None:
    stored = json.loads(json.dumps(contract.as_dict()))
    assert LeadContract.from_dict(stored) == contract
    assert LeadContract.from_dict(contract.as_dict()).columns == contract.columns


def test_scoring_reads_a_row_as_training_typed_it() -> None:
    # One problem a row: which of two problems is named first may differ.
    frame = deals(amount=["12k", "-5", "7"], signed=["2024-01-01", "", "soon"])
    kinds: dict[str, Kind] = {
        "id": "category",
        "amount": "number",
        "signed": "date",
        "champion": "evidence",
    }
    bounds: dict[str, tuple[float | None, float | None]] = {"amount": (0.0, None)}
    training = typed(frame[list(kinds)], kinds, bounds)
    contract = LeadContract("id", kinds, missing_values=("Select",), bounds=bounds)
    scored, reasons = contract.read(frame)
    assert reasons.tolist() == training.reasons.tolist()
    assert all(reason is not None for reason in reasons)
    pd.testing.assert_frame_equal(scored, training.frame)


def test_a_column_with_bounds_is_a_number_column() -> None:
    # One odd value must reject its row, not make the column text (and the bounds
    # unreadable).
    frame = deals(visits=["3", ":", "-1"])
    table = typed(frame, bounds={"visits": (0.0, None)})
    assert table.kinds["visits"].kind == "number" and table.kinds["visits"].declared
    assert table.reasons.tolist() == [
        None,
        "visits is not a number: ':'",
        "visits is below 0 (-1)",
    ]
