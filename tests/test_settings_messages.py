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
    # a key no "did you mean" ties to capacity (capacity_ is one line: _without_knock_on)
    path.write_text(path.read_text().replace("  capacity: {mode: serverless", "  sizing: {mode: serverless"))
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


@pytest.mark.parametrize(
    ("key", "suggested"),
    [
        ("services__web__desired_cont", "desired_count"),  # a field of a service: under a name the user chose
        ("services__api__autoscaling__mn", "min"),  # a model inside a service
        ("services__api__health_check__pth", "path"),
    ],
)
def test_an_unknown_key_under_a_service_gets_the_service_s_keys(settings_dir: Path, key: str, suggested: str) -> None:
    """``services`` maps names the user chose to services: the walk to the model that refused a key
    steps over the name (it once stopped there, and a typo in a service had no suggestion)."""
    edit_yaml(settings_dir / "staging.yaml", **{key: 1})
    shown = key.replace("__", ".")
    message = refusal(settings_dir)
    expected = f"staging.yaml: {shown} = 1: is not a known setting; did you mean '{suggested}'?; valid keys here:"
    assert expected in message


def test_a_misspelt_service_name_is_suggested_not_only_its_missing_settings(settings_dir: Path) -> None:
    """A service an environment's file names that defaults.yaml does not (``wbe`` for ``web``) lacks
    the settings defaults.yaml gives the real one: the fix is its name, which the refusal suggests."""
    path = settings_dir / "dev.yaml"
    text = path.read_text()
    assert "\n  web:" in text
    path.write_text(text.replace("\n  web:", "\n  wbe:", 1))
    message = refusal(settings_dir, "dev")
    assert (
        "dev.yaml: services.wbe.cpu: is required and set neither in this file nor in defaults.yaml "
        "(services.wbe is in this file only; did you mean 'web'?)"
    ) in message
    path.write_text(text.replace("\n  web:", "\n  zzzzzz:", 1))  # far from any: no suggestion
    assert "in this file only" not in refusal(settings_dir, "dev")


def test_a_wrong_type_under_a_service_gets_the_field_s_description(settings_dir: Path) -> None:
    from infra_templates.config import Service  # noqa: PLC0415

    edit_yaml(settings_dir / "staging.yaml", services__web__memory="lots")
    described = Service.model_fields["memory"].description
    assert described
    shown = described.rstrip(".")  # the description as a hint in parentheses, without its full stop
    assert f"services.web.memory = 'lots': input should be a valid integer ({shown})" in refusal(settings_dir)


@pytest.mark.parametrize("name", ["defaults", "project", "delivery"])
def test_a_reserved_name_given_to_env_says_what_it_names(settings_dir: Path, name: str) -> None:
    """``--env defaults`` read defaults.yaml as an environment: nine 'is required' lines and the advice
    to rename the file, which would break every environment. One line now says what the name is."""
    from infra_templates.settings.common import RESERVED_ENVIRONMENT_NAMES  # noqa: PLC0415
    from infra_templates.settings.project import RESERVED_MEANINGS  # noqa: PLC0415

    assert set(RESERVED_MEANINGS) == set(RESERVED_ENVIRONMENT_NAMES)
    with pytest.raises(SettingsError) as caught:
        load_settings(settings_dir, [name])
    assert caught.value.problems == [
        f"--env {name}: {RESERVED_MEANINGS[name]}, not an environment; environments here: {', '.join(ENVIRONMENTS)}"
    ]


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


def test_an_instance_class_typo_is_refused_at_settings_time_with_the_nearest_classes(settings_dir: Path) -> None:
    """Checked against AWS's catalogue as cfn-lint ships it (catalog.database_instance_classes):
    here, naming the file and field, not minutes later by the lint on generated JSON (issue 19)."""
    path = settings_dir / "prod.yaml"
    path.write_text(path.read_text().replace("instance_class: db.r7g.large", "instance_class: db.t4g.medum"))
    message = refusal(settings_dir, "prod")
    assert f"{path}: database.capacity.instance_class = 'db.t4g.medum': is not an instance class AWS offers" in message
    assert "(did you mean db.t4g.medium or " in message


def test_an_instance_class_aws_does_not_offer_for_the_engine_is_refused(settings_dir: Path) -> None:
    path = settings_dir / "prod.yaml"
    path.write_text(path.read_text().replace("instance_class: db.r7g.large", "instance_class: db.m1.small"))
    assert "database.capacity.instance_class = 'db.m1.small': is not an instance class AWS offers" in refusal(
        settings_dir, "prod"
    )


@pytest.mark.parametrize(("changes", "expected"), [
    ({"services__api__cpu": 1000}, "services.api.cpu = 1000: is not a Fargate CPU size (did you mean 512 or 1024?)"),
    ({"services__api__memory": 3000},
     "services.api.memory = 3000: is not a size Fargate accepts with cpu 512 (did you mean 2048 or 3072?)"),
])  # fmt: skip
def test_a_fargate_size_typo_names_the_nearest_sizes(settings_dir: Path, changes: dict, expected: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", **changes)
    assert expected in refusal(settings_dir)


# --- a value an environment inherits: both files named (the new-user trial) -----------------------


def test_an_inherited_value_refused_in_one_environment_names_that_environment_and_defaults(settings_dir: Path) -> None:
    # web's "/*" is defaults.yaml's; staging alone gives api the same route: the fix may be either file's.
    edit_yaml(settings_dir / "staging.yaml", services__api__routing={"paths": ["/*"]})
    problems = [p for p in _settings_refusal(settings_dir) if "routes the same requests" in p]
    assert problems == [
        f"{settings_dir / 'staging.yaml'}: services.web.routing.paths[0] = '/*' (inherited from "
        f"{settings_dir / 'defaults.yaml'}): routes the same requests as services.api; give each service its own "
        "paths or hosts"
    ]


def test_a_value_set_in_the_environment_file_names_only_that_file(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", network__flow_logs__traffic_type="SOME")
    problems = _settings_refusal(settings_dir)
    assert [p for p in problems if "traffic_type" in p] == [
        f"{settings_dir / 'dev.yaml'}: network.flow_logs.traffic_type = 'SOME': "
        + next(p for p in problems if "traffic_type" in p).split("'SOME': ", 1)[1]
    ]
    assert not any("inherited" in p for p in problems)


def test_an_inherited_value_refused_in_every_environment_is_said_once_of_defaults(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", network__flow_logs__traffic_type="SOME")
    problems = [p for p in _settings_refusal(settings_dir) if "traffic_type" in p]
    assert len(problems) == 1
    assert problems[0].startswith(f"{settings_dir / 'defaults.yaml'}: network.flow_logs.traffic_type = 'SOME': ")
    assert problems[0].endswith(f"(every environment: {', '.join(ENVIRONMENTS)})")


def test_a_section_left_empty_or_given_a_list_is_told_in_settings_words_not_a_class_name(settings_dir: Path) -> None:
    """A key whose lines were all removed or commented out reads as null: pydantic said 'input should be
    a valid dictionary or instance of Edge', a class the user never wrote; the refusal names the keys."""
    path = settings_dir / "dev.yaml"
    text = path.read_text()
    assert "\nedge:\n" in text
    path.write_text(text.replace("\nedge:\n", "\nedge:\nxedge:\n", 1))  # edge: null, its lines under xedge
    problems = refusal(settings_dir, "dev").splitlines()
    assert (
        f"{path}: edge: is empty: it takes a mapping of settings (aliases, assets_path, certificate_arn, "
        "default_root_object, noncurrent_asset_days, origin_domain, price_class); remove the key to keep the defaults"
    ) in problems
    assert not any("instance of" in line for line in problems)
    edit_yaml(path, network=[1])
    problems = refusal(settings_dir, "dev").splitlines()
    assert any(
        line.startswith(f"{path}: network: is not a mapping of settings (availability_zones, ") for line in problems
    )


# --- from a new user's trial: the first line says what is wrong, not what follows from it ---------


def test_a_settings_folder_that_is_not_there_is_said_so(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path / "nowhere")
    assert caught.value.problems == [
        f"--settings {tmp_path / 'nowhere'}: no such folder (the folder of defaults.yaml and <env>.yaml files)"
    ]
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path / "a-file")
    assert caught.value.problems == [
        f"--settings {tmp_path / 'a-file'}: is not a folder (the folder of defaults.yaml and <env>.yaml files)"
    ]


def test_a_file_name_given_to_env_suggests_the_environment(settings_dir: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(settings_dir, ["dev.yaml"])
    assert "--env 'dev.yaml': is not an environment name" in caught.value.problems[0]
    assert "; did you mean 'dev'?;" in caught.value.problems[0]


def test_an_empty_file_and_a_missing_defaults_file_come_first(settings_dir: Path) -> None:
    (settings_dir / "staging.yaml").write_text("# nothing yet\n")
    problems = refusal(settings_dir).splitlines()
    assert problems[0].endswith("staging.yaml: is empty: it must set at least what follows")
    # the settings it lacks in one line, not one line each
    assert (
        len(problems) == 2
        and "settings are required and set neither in this file nor in defaults.yaml: " in (problems[1])
    )
    assert "account_id" in problems[1] and "region" in problems[1]
    (settings_dir / "defaults.yaml").unlink()
    problems = refusal(settings_dir, "dev").splitlines()
    assert problems[0].endswith(
        "defaults.yaml: is not there: it holds the settings every environment shares (start "
        "from a copy of the shipped environments/defaults.yaml)"
    )


def test_a_misspelt_key_is_said_once_not_again_as_the_missing_value_it_causes(settings_dir: Path) -> None:
    """``regoin`` (at the top) and ``imgae`` (in a sidecar) are each one line with "did you mean";
    the required setting they leave unset is not a second line (fixing the key sets it). A required
    setting missing beside a key that names something else is still said."""
    path = settings_dir / "staging.yaml"
    text = path.read_text()
    assert "\nregion:" in text
    path.write_text(text.replace("\nregion:", "\nregoin:", 1))
    problems = refusal(settings_dir).splitlines()
    assert len(problems) == 1 and "regoin = 'eu-west-1': is not a known setting; did you mean 'region'?" in problems[0]
    path.write_text(text.replace("\nregion:", "\nzzz_unrelated:", 1))
    problems = refusal(settings_dir).splitlines()
    assert len(problems) == 2 and any("region: is required and set neither" in line for line in problems)
    path.write_text(text)
    sidecar = {"name": "otel", "imgae": "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.1", "memory": 64}
    edit_yaml(settings_dir / "staging.yaml", services__web__sidecars=[sidecar])
    problems = refusal(settings_dir).splitlines()
    assert len(problems) == 1 and "services.web.sidecars[0].imgae" in problems[0], problems
    assert "did you mean 'image'?" in problems[0]
    # a misspelt section: the settings under it are not each "required" too
    path.write_text(text.replace("\nnetwork:", "\nnetwrok:", 1))
    problems = refusal(settings_dir).splitlines()
    assert len(problems) == 1 and "netwrok: is not a known setting; did you mean 'network'?" in problems[0], problems


def test_the_valid_keys_are_those_a_file_may_set(settings_dir: Path) -> None:
    """The keys the generator sets (name, standby, addons) are refused in a file: not offered as valid;
    a model's own ``name`` (the database's) is a setting like any other."""
    edit_yaml(settings_dir / "staging.yaml", colour="blue", database__nmae="shop")
    message = refusal(settings_dir)
    top = next(line for line in message.splitlines() if "colour" in line)
    assert "valid keys here:" in top and not {"addons", "standby", "name"} & set(top.split(": ")[-1].split(", "))
    database = next(line for line in message.splitlines() if "database.nmae" in line)
    assert "did you mean 'name'?" in database and ", name," in database


def test_an_unquoted_account_id_with_a_leading_zero_is_shown_as_typed(settings_dir: Path) -> None:
    """PyYAML reads 011111111111 as octal (1227133513): the refusal says what was typed."""
    path = settings_dir / "staging.yaml"
    text = path.read_text()
    assert 'account_id: "222222222222"' in text
    path.write_text(text.replace('account_id: "222222222222"', "account_id: 011111111111"))
    message = refusal(settings_dir)
    assert "account_id = 1227133513: must be a string: quote it in YAML" in message
    assert "; if you typed 011111111111, YAML read it as the octal number 1227133513" in message
    edit_yaml(settings_dir / "staging.yaml", account_id=123456789012)  # a decimal number: no such guess
    message = refusal(settings_dir)
    assert "account_id = 123456789012: must be a string" in message and "octal" not in message


def test_env_names_that_are_no_environment_get_the_right_hint(settings_dir: Path) -> None:
    for given, hint in (
        ("dev,prod", "; give each environment its own --env (--env dev --env prod)"),
        ("prdo", "; did you mean 'prod'?"),
    ):
        with pytest.raises(SettingsError) as caught:
            load_settings(settings_dir, [given])
        assert hint in caught.value.problems[0], given


def test_a_yml_twin_of_an_environment_file_is_not_advised_to_overwrite_it(settings_dir: Path) -> None:
    (settings_dir / "dev.yml").write_text("region: eu-west-1\n")
    (settings_dir / "qa.yml").write_text("region: eu-west-1\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(settings_dir)
    problems = "\n".join(caught.value.problems)
    assert "dev.yml: is not read: environment files end in .yaml; dev.yaml is there too: remove one of the two" in (
        problems
    )
    assert "qa.yml: is not read: environment files end in .yaml; rename it to qa.yaml" in problems


def test_a_new_service_beside_the_one_it_resembles_gets_no_suggestion(settings_dir: Path) -> None:
    """web2 in a file that also names web is a new service lacking its settings, not a misspelt web."""
    edit_yaml(settings_dir / "dev.yaml", services__web2={"desired_count": 1})
    message = refusal(settings_dir, "dev")
    assert "services.web2.cpu: is required" in message and "in this file only" not in message


def test_a_host_name_or_address_in_capitals_is_told_to_be_lower_case(settings_dir: Path) -> None:
    """From a new user's trial: 'QA.shop.example.com' was only "not a host name". An e-mail address's
    local part keeps its case; only its domain is lowered."""
    edit_yaml(
        settings_dir / "staging.yaml",
        edge__aliases=["Staging.Shop.example.com"],
        monitoring__ses_email__sender="Alarms@Shop.Example.com",
    )
    message = refusal(settings_dir)
    assert "is not a host name such as 'www.example.com'; write it in lower case: 'staging.shop.example.com'" in message
    assert "write it in lower case: 'Alarms@shop.example.com'" in message
    edit_yaml(settings_dir / "staging.yaml", edge__aliases=["not a host"])
    assert "lower case" not in refusal(settings_dir).split("edge.aliases[0]")[1].splitlines()[0]


def test_a_secret_named_without_its_suffix_gets_the_commands_that_give_the_complete_name(settings_dir: Path) -> None:
    """From a new user's trial: a new environment has no DEPLOY.md yet (its settings are refused), so
    the refusal itself names the two commands; a value typed instead of a reference is told the
    reference's complete form, not one the next run refuses."""
    edit_yaml(settings_dir / "staging.yaml", services__api__secrets={"PAY": "secretsmanager:shop/api/pay#key"})
    message = refusal(settings_dir)
    assert "services.api.secrets.PAY = 'secretsmanager:shop/api/pay#key': names the secret without the 6" in message
    assert "'aws secretsmanager describe-secret --secret-id shop/api/pay --query ARN' gives it" in message
    assert "once 'aws secretsmanager create-secret --name shop/api/pay' has made it" in message
    edit_yaml(settings_dir / "staging.yaml", services__api__secrets={"PAY": "hunter2hunter2"})
    message = refusal(settings_dir)
    assert "looks like a value, not a reference: give 'secretsmanager:NAME-SUFFIX'" in message
    assert "hunter2" not in message
