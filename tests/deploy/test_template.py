"""Properties of template.yaml that must hold for every allowed choice of its parameters."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from login_ingest.metrics import BatchOutcome, publish

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
        # EC2 scopes no network-interface action to a resource, nor X-Ray its writes;
        # nothing else may use "*".
        assert "*" not in resources_ or all(a.startswith(("ec2:", "xray:Put")) for a in actions)
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
            "AlarmTopicArn", "DashboardUrl", "VaultKeyArn"} <= set(template["Outputs"])


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


# --- tracing, metrics and the dashboard --------------------------------------------------
def test_tracing_switch_turns_everything_together(template: dict[str, Any]) -> None:
    props = function(template)
    variables = props["Environment"]["Variables"]
    assert template["Conditions"]["TracingOn"] == {"Fn::Equals": [{"Ref": "TracingEnabled"},
                                                                  "true"]}
    assert props["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    assert variables["POWERTOOLS_TRACE_DISABLED"] == {"Fn::If": ["TracingOn", "false", "true"]}
    (grant,) = [s for s in role(template)["Policies"][0]["PolicyDocument"]["Statement"]
                if "Fn::If" in s and s["Fn::If"][0] == "TracingOn"]
    allowed, otherwise = grant["Fn::If"][1:]
    assert set(allowed["Action"]) == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert otherwise == {"Ref": "AWS::NoValue"}


def test_metrics_namespace_and_service_reach_the_function(template: dict[str, Any]) -> None:
    variables = function(template)["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "login-ingest"


def published_metric_names() -> set[str]:
    """Every metric name the function publishes, read from its own EMF output."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        publish(BatchOutcome(received=3, stored=1, duplicates=1,
                             failed_by_reason={"not_json": 1}, write_ms=1.0))
    names = set()
    for line in output.getvalue().splitlines():
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
            names |= {metric["Name"] for metric in directive["Metrics"]}
    return names


def substituted(template: dict[str, Any], text: str) -> str:
    """`text` with every ${...} of its Fn::Sub replaced as CloudFormation would, roughly:
    parameters by their defaults (numbers stay numbers), attributes by a made-up name."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in template["Parameters"]:
            return str(template["Parameters"][name]["Default"])
        resource, _, attribute = name.partition(".")
        if resource.startswith("AWS::"):
            return "us-east-1" if resource == "AWS::Region" else "x"
        assert resource in template["Resources"], name
        return f"{resource}-{attribute or 'ref'}"
    return re.sub(r"\$\{([^}!]+)\}", value, text)


@pytest.fixture(scope="module")
def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    (board,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = board["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(substituted(template, body))  # type: ignore[no-any-return]


def widget(dashboard: dict[str, Any], title_start: str) -> dict[str, Any]:
    (found,) = [w["properties"] for w in dashboard["widgets"]
                if w["properties"]["title"].startswith(title_start)]
    return found  # type: ignore[no-any-return]


def metric_lines(properties: dict[str, Any]) -> list[list[Any]]:
    """The widget's metric lines with CloudWatch's "." and "..." shorthands expanded."""
    lines: list[list[Any]] = []
    for line in properties["metrics"]:
        fields = [f for f in line if not isinstance(f, dict)]
        if fields[:1] == ["..."]:
            fields = lines[-1][:len(lines[-1]) - len(fields) + 1] + fields[1:]
        else:
            fields = [lines[-1][i] if f == "." else f for i, f in enumerate(fields)]
        lines.append(fields)
    return lines


def test_dashboard_shows_what_the_runbook_needs(dashboard: dict[str, Any]) -> None:
    own = {"LoginIngest"}
    throughput = metric_lines(widget(dashboard, "Throughput"))
    assert {(ns, name) for ns, name, *_ in throughput} == {
        ("LoginIngest", n) for n in
        ("RecordsReceived", "RecordsStored", "DuplicatesSkipped", "RecordsFailed")}
    assert all(line[2:] == ["service", "login-ingest"] for line in throughput)

    (search,) = widget(dashboard, "Failures by reason")["metrics"]
    expression = search[0]["expression"]
    assert expression.startswith("SEARCH('{LoginIngest,reason,service} ")
    assert 'MetricName="RecordsFailed"' in expression and 'service="login-ingest"' in expression

    assert metric_lines(widget(dashboard, "Dead-letter queue depth")) == [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
         "LoginEventsDlq-QueueName"]]
    assert metric_lines(widget(dashboard, "Oldest message age")) == [
        ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "LoginEventsQueue-QueueName"],
        ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "LoginEventsDlq-QueueName"]]
    lambda_metrics = {line[1] for title in ("Duration", "Errors", "Concurrent")
                      for line in metric_lines(widget(dashboard, title))
                      if line[0] == "AWS/Lambda"}
    assert lambda_metrics == {"Duration", "Errors", "Throttles", "ConcurrentExecutions"}
    for title in ("Duration", "Errors", "Concurrent"):
        for line in metric_lines(widget(dashboard, title)):
            assert line[2:] == (["FunctionName", "IngestFunction-ref"] if line[0] == "AWS/Lambda"
                                else ["service", "login-ingest"])
            assert line[0] in own | {"AWS/Lambda"}


def test_dashboard_names_only_metrics_the_function_publishes(
    dashboard: dict[str, Any]
) -> None:
    shown = {line[1] for w in dashboard["widgets"] if w["type"] == "metric"
             for line in metric_lines(w["properties"])
             if line and not isinstance(line[0], dict) and line[0] == "LoginIngest"}
    assert shown and shown <= published_metric_names()


def test_dashboard_lists_every_alarm(template: dict[str, Any], dashboard: dict[str, Any]) -> None:
    (alarms,) = [w["properties"]["alarms"] for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert sorted(alarms) == sorted(f"{name}-Arn" for name in
                                    resources(template, "AWS::CloudWatch::Alarm"))


def test_runbook_covers_every_alarm(template: dict[str, Any]) -> None:
    readme = (REPO / "README.md").read_text()
    runbook = readme[readme.index("## Runbook"):]
    for name in resources(template, "AWS::CloudWatch::Alarm"):
        assert f"### {name}" in runbook, name
