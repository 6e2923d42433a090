"""Properties of template.yaml that must hold for every allowed choice of its parameters."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, errors = decode_str((REPO / "template.yaml").read_text())
    assert not errors
    return decoded  # type: ignore[no-any-return]


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def function(template: dict[str, Any]) -> dict[str, Any]:
    (only,) = resources(template, "AWS::Serverless::Function").values()
    return only["Properties"]  # type: ignore[no-any-return]


def sqs_event(template: dict[str, Any]) -> dict[str, Any]:
    (event,) = function(template)["Events"].values()
    assert event["Type"] == "SQS"
    return event["Properties"]  # type: ignore[no-any-return]


def bounds(template: dict[str, Any], value: Any) -> tuple[float, float]:
    """The least and greatest values `value` can take: a literal, or a Ref to a parameter."""
    if isinstance(value, int | float):
        return value, value
    parameter = template["Parameters"][value["Ref"]]
    if "AllowedValues" in parameter:
        allowed = [float(v) for v in parameter["AllowedValues"]]
        return min(allowed), max(allowed)
    return float(parameter["MinValue"]), float(parameter["MaxValue"])


def test_partial_batch_responses_are_on(template: dict[str, Any]) -> None:
    assert sqs_event(template)["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_visibility_timeout_covers_six_timeouts_and_the_window(template: dict[str, Any]) -> None:
    queue = template["Resources"]["LoginEventsQueue"]["Properties"]
    assert sqs_event(template)["Queue"] == {"Fn::GetAtt": ["LoginEventsQueue", "Arn"]}

    least_visibility, _ = bounds(template, queue["VisibilityTimeout"])
    _, longest_timeout = bounds(template, function(template)["Timeout"])
    _, longest_window = bounds(template, sqs_event(template)["MaximumBatchingWindowInSeconds"])

    assert least_visibility >= 6 * longest_timeout + longest_window


def test_batching_window_allows_every_batch_size(template: dict[str, Any]) -> None:
    # Lambda refuses a batch size over 10 with a batching window under one second.
    _, largest_batch = bounds(template, sqs_event(template)["BatchSize"])
    least_window, _ = bounds(template, sqs_event(template)["MaximumBatchingWindowInSeconds"])
    assert largest_batch <= 10 or least_window >= 1


def test_max_receive_count_is_never_below_five(template: dict[str, Any]) -> None:
    policy = template["Resources"]["LoginEventsQueue"]["Properties"]["RedrivePolicy"]
    assert policy["deadLetterTargetArn"] == {"Fn::GetAtt": ["LoginEventsDlq", "Arn"]}
    assert bounds(template, policy["maxReceiveCount"])[0] >= 5


def test_concurrency_is_capped(template: dict[str, Any]) -> None:
    limit = sqs_event(template)["ScalingConfig"]["MaximumConcurrency"]
    assert bounds(template, limit)[0] >= 2  # the least Lambda accepts


def test_dead_letter_queue_keeps_messages_14_days_and_allows_only_our_queue(
    template: dict[str, Any]
) -> None:
    dlq = template["Resources"]["LoginEventsDlq"]["Properties"]
    source_name = template["Resources"]["LoginEventsQueue"]["Properties"]["QueueName"]["Fn::Sub"]

    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    allow = dlq["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    (source_arn,) = allow["sourceQueueArns"]
    assert source_arn["Fn::Sub"].endswith(":" + source_name)


@pytest.mark.parametrize("use_kms", [True, False])
def test_every_queue_and_topic_is_encrypted(template: dict[str, Any], use_kms: bool) -> None:
    def pick(value: Any) -> Any:
        if isinstance(value, dict) and "Fn::If" in value:
            assert value["Fn::If"][0] == "UseQueueKmsKey"
            return value["Fn::If"][1 if use_kms else 2]
        return value

    no_value = {"Ref": "AWS::NoValue"}
    for queue in resources(template, "AWS::SQS::Queue").values():
        props = queue["Properties"]
        kms, managed = pick(props.get("KmsMasterKeyId", no_value)), pick(
            props.get("SqsManagedSseEnabled", no_value))
        assert (kms == {"Ref": "QueueKmsKeyArn"}) if use_kms else (managed is True)


def test_alarm_topic_key_lets_cloudwatch_publish(template: dict[str, Any]) -> None:
    (topic,) = resources(template, "AWS::SNS::Topic").values()
    key_name = topic["Properties"]["KmsMasterKeyId"]["Ref"]
    key = template["Resources"][key_name]["Properties"]

    assert key["EnableKeyRotation"] is True
    grants = [s for s in key["KeyPolicy"]["Statement"]
              if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert grants and set(grants[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_dlq_alarm_watches_visible_messages(template: dict[str, Any]) -> None:
    # A DLQ filled by redrive never counts in NumberOfMessagesSent: watch what is visible.
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["Dimensions"][0]["Value"]
              == {"Fn::GetAtt": ["LoginEventsDlq", "QueueName"]}]
    assert [a["MetricName"] for a in alarms] == ["ApproximateNumberOfMessagesVisible"]
    (alarm,) = alarms
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_alarms_cover_age_errors_and_throttles(template: dict[str, Any]) -> None:
    metrics = {a["Properties"]["MetricName"]
               for a in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert {"ApproximateAgeOfOldestMessage", "Errors", "Throttles"} <= metrics


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Effect" in node and "Action" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(role(template)["Policies"])
    return found


def role(template: dict[str, Any]) -> dict[str, Any]:
    # A Role of our own, so that SAM adds none (and no managed policy) for the SQS event.
    assert "Policies" not in function(template)
    name = function(template)["Role"]["Fn::GetAtt"][0]
    return template["Resources"][name]["Properties"]  # type: ignore[no-any-return]


def test_the_function_polls_only_its_queue(template: dict[str, Any]) -> None:
    sqs = [s for s in statements(template) if any(a.startswith("sqs:") for a in s["Action"])]
    assert len(sqs) == 1
    assert sqs[0]["Resource"] == {"Fn::GetAtt": ["LoginEventsQueue", "Arn"]}
    assert set(sqs[0]["Action"]) == {"sqs:ReceiveMessage", "sqs:DeleteMessage",
                                     "sqs:GetQueueAttributes"}


def test_no_wildcards_on_secrets_or_keys(template: dict[str, Any]) -> None:
    found = statements(template)
    assert found, "the function's policies should be explicit statements"
    for statement in found:
        if "Fn::If" in statement:
            continue  # walk() has collected the statement inside it
        actions = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]]
        assert all(not a.endswith("*") for a in actions)
        resources_ = statement["Resource"]
        resources_ = resources_ if isinstance(resources_, list) else [resources_]
        # EC2 scopes no network-interface action to a resource; nothing else may use "*".
        assert "*" not in resources_ or all(a.startswith("ec2:") for a in actions)
        if any(a.startswith("kms:") for a in actions):
            assert "kms:ViaService" in statement["Condition"]["StringEquals"]


def test_runtime_matches_the_build(template: dict[str, Any]) -> None:
    runtime = function(template)["Runtime"]
    makefile = (REPO / "Makefile").read_text()
    built_for = re.search(r"^LAMBDA_PYTHON := (\S+)$", makefile, re.M)
    assert built_for and runtime == f"python{built_for.group(1)}"
    assert function(template)["Handler"] == "handler.lambda_handler"


def test_outputs(template: dict[str, Any]) -> None:
    assert {"QueueUrl", "QueueArn", "DeadLetterQueueUrl", "FunctionName",
            "AlarmTopicArn"} <= set(template["Outputs"])


# --- the PII vault's key -----------------------------------------------------------------

def key_statements(template: dict[str, Any], has_recovery_principal: bool) -> list[Any]:
    """The vault key's policy statements with HasRecoveryPrincipal decided."""
    chosen = []
    for statement in template["Resources"]["VaultKey"]["Properties"]["KeyPolicy"]["Statement"]:
        if "Fn::If" in statement:
            condition, then, otherwise = statement["Fn::If"]
            assert condition == "HasRecoveryPrincipal"
            statement = then if has_recovery_principal else otherwise
            if statement == {"Ref": "AWS::NoValue"}:
                continue
        chosen.append(statement)
    return chosen


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


FUNCTION_ROLE = {"AWS": {"Fn::GetAtt": ["IngestFunctionRole", "Arn"]}}
CONTEXT = {"kms:EncryptionContext:purpose": "login-ingest-pii-vault"}


@pytest.mark.parametrize("has_recovery_principal", [True, False])
def test_the_function_role_can_make_vault_data_keys_but_never_open_them(
        template: dict[str, Any], has_recovery_principal: bool) -> None:
    found = key_statements(template, has_recovery_principal)
    assert all(s["Effect"] == "Allow" for s in found)

    to_function = [s for s in found if s["Principal"] == FUNCTION_ROLE]
    assert [as_list(s["Action"]) for s in to_function] == [["kms:GenerateDataKey"]]
    assert to_function[0]["Condition"]["StringEquals"] == CONTEXT

    # Nobody but the recovery principal may decrypt, encrypt or re-encrypt; no "kms:*".
    for statement in found:
        actions = as_list(statement["Action"])
        assert "kms:*" not in actions
        if statement["Principal"] != {"AWS": {"Ref": "RecoveryPrincipalArn"}}:
            assert not any(a.startswith(("kms:Decrypt", "kms:ReEncrypt", "kms:Encrypt",
                                         "kms:CreateGrant")) for a in actions), statement

    # The function's own IAM policies give it no Decrypt on this key either.
    for statement in [*statements(template), *template["Resources"][
            "IngestFunctionVaultPolicy"]["Properties"]["PolicyDocument"]["Statement"]]:
        if "kms:Decrypt" in as_list(statement["Action"]):
            assert statement["Resource"] != {"Fn::GetAtt": ["VaultKey", "Arn"]}
            assert "kms:ViaService" in statement["Condition"]["StringEquals"]


def test_only_the_recovery_principal_may_decrypt(template: dict[str, Any]) -> None:
    with_principal = key_statements(template, True)
    decrypting = [s for s in with_principal if "kms:Decrypt" in as_list(s["Action"])]
    assert len(decrypting) == 1
    assert decrypting[0]["Principal"] == {"AWS": {"Ref": "RecoveryPrincipalArn"}}
    assert set(as_list(decrypting[0]["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert decrypting[0]["Condition"]["StringEquals"] == CONTEXT
    assert not any("kms:Decrypt" in as_list(s["Action"]) for s in key_statements(template, False))
    conditions = template["Conditions"]["HasRecoveryPrincipal"]["Fn::And"]
    assert {"Condition": "VaultOn"} in conditions


def test_the_vault_key_rotates_is_kept_and_reaches_the_function(template: dict[str, Any]) -> None:
    key = template["Resources"]["VaultKey"]
    assert key["Condition"] == "VaultOn"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    assert function(template)["Environment"]["Variables"]["VAULT_KMS_KEY_ID"] == {
        "Fn::If": ["VaultOn", {"Fn::GetAtt": ["VaultKey", "Arn"]}, ""]}
    assert template["Parameters"]["EnableVault"]["Default"] == "false"

    policy = template["Resources"]["IngestFunctionVaultPolicy"]
    assert policy["Condition"] == "VaultOn"
    assert policy["Properties"]["RoleName"] == {"Ref": "IngestFunctionRole"}
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "kms:GenerateDataKey"
    assert statement["Resource"] == {"Fn::GetAtt": ["VaultKey", "Arn"]}
    assert statement["Condition"]["StringEquals"] == CONTEXT


def test_the_vault_context_matches_the_code(template: dict[str, Any]) -> None:
    from login_ingest.vault import KMS_ENCRYPTION_CONTEXT

    assert {f"kms:EncryptionContext:{k}": v for k, v in KMS_ENCRYPTION_CONTEXT.items()} == CONTEXT
