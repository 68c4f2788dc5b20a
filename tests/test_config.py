"""params.yaml: the shipped file is valid, and every bad setting names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lead_ml.config import ConfigError, Params, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_params_match_the_defaults() -> None:
    assert load_params(ROOT / "params.yaml") == Params()


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"train": {"learning_rate": -1}}, "train.learning_rate"),
        ({"train": {"num_leaves": "many"}}, "train.num_leaves"),
        ({"split": {"test_fraction": 0.9}}, "split.test_fraction"),
        ({"bant": {"letters": {"budgett": "x == 1"}}}, "bant"),
        ({"bant": {"threshold": 5}}, "bant"),
        ({"bands": {"A": 0.5, "B": 0.3, "C": 0.3}}, "bands"),
        ({"evaluate": {"capacity": 0}}, "evaluate.capacity"),
        ({"trian": {}}, "trian"),
    ],
)
def test_bad_settings_name_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_params(raw, "params.yaml")
    message = str(caught.value)
    assert message.startswith("params.yaml:")
    assert f"  {key}" in message


def test_missing_and_broken_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(scalar)


def test_params_are_frozen() -> None:
    params = Params()
    with pytest.raises(ValueError):
        params.train.learning_rate = 1.0  # type: ignore[misc]
