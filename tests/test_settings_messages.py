"""Refusals name the file that set the value (or the file a required value is missing from), suggest
the close valid key or value, and show look-alike characters escaped (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ENVIRONMENTS, edit_yaml, refusal

from infra_templates.config import SettingsError, did_you_mean, load_settings


def _settings_refusal(settings_dir: Path) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(settings_dir)
    return caught.value.problems


def test_a_section_missing_from_dev_is_reported_against_dev(settings_dir: Path) -> None:
    path = settings_dir / "dev.yaml"
    path.write_text(path.read_text().replace("  capacity: {mode: serverless", "  capacity_: {mode: serverless"))
    problems = refusal(settings_dir, "dev").splitlines()
    assert f"{path}: database.capacity: is required and set neither in this file nor in defaults.yaml" in problems
    assert not any("defaults.yaml: database" in line for line in problems)


def test_a_registry_override_is_reported_against_its_file_with_field_and_value(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", registry__region="eu-central-1")
    problems = _settings_refusal(settings_dir)
    others = ", ".join(e for e in ENVIRONMENTS if e != "dev")
    assert problems == [
        f"{settings_dir / 'dev.yaml'}: registry.region = 'eu-central-1': differs from 'eu-west-1' in {others}; "
        "every environment shares one registry (set it in defaults.yaml only)"
    ]


@pytest.mark.parametrize(
    ("key", "suggested"),
    [("monitorng", "monitoring"), ("Tags", "tags"), ("acount_id", "account_id"), ("servics", "services")],
)
def test_an_unknown_key_close_to_a_valid_one_is_suggested(settings_dir: Path, key: str, suggested: str) -> None:
    path = settings_dir / "staging.yaml"
    path.write_text(path.read_text() + f"\n{key}: {{}}\n")
    assert f"staging.yaml: {key}: is not a known setting; did you mean '{suggested}'?" in refusal(settings_dir)


def test_an_unknown_key_far_from_any_gets_no_suggestion(settings_dir: Path) -> None:
    path = settings_dir / "staging.yaml"
    path.write_text(path.read_text() + "\nzzzz: 1\n")
    message = refusal(settings_dir)
    assert "staging.yaml: zzzz = 1: is not a known setting; valid keys here:" in message
    assert "did you mean" not in message


def test_a_value_close_to_a_choice_is_suggested(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", deployment__strategy="roling", edge__price_class="PriceClass_10")
    message = refusal(settings_dir)
    assert (
        "deployment.strategy = 'roling': input should be 'blue-green' or 'rolling'; did you mean 'rolling'?" in message
    )
    assert "edge.price_class = 'PriceClass_10': " in message and "did you mean 'PriceClass_100'?" in message


def test_a_cyrillic_letter_in_a_region_is_shown_escaped_and_the_real_one_suggested(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", region="eu-w\u0435st-1")
    message = refusal(settings_dir)
    assert "region = 'eu-w\\u0435st-1': is not an AWS region; did you mean 'eu-west-1'?" in message
    assert "\u0435" not in message


def test_invisible_characters_in_keys_and_values_are_escaped(settings_dir: Path) -> None:
    path = settings_dir / "staging.yaml"
    path.write_text(path.read_text() + "\nmonitoring\u200b: {}\n")
    edit_yaml(settings_dir / "staging.yaml", project="shop\u00a0")
    message = refusal(settings_dir)
    assert "monitoring\\u200b: is not a known setting; did you mean 'monitoring'?" in message
    assert "project = 'shop\\xa0'" in message
    assert message.isascii()


def test_did_you_mean_is_empty_when_nothing_is_close() -> None:
    assert did_you_mean("qqqq", ["rolling", "blue-green"]) == ""
    assert did_you_mean("ROLLING", ["rolling", "blue-green"]) == "; did you mean 'rolling'?"
