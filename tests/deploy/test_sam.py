"""What can be proven offline about deploying: linters, the security scan, `sam build`, and
the built artifact answering every sample event from a fresh Lambda-version interpreter."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2.extensions
import pytest

from login_ingest.vault import new_local_key
from tests.conftest import TEST_MASKING_KEY
from tests.integration.test_events import EVENTS, EXPECTED_FAILURES

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".local" / "tools"
AWS_ENV = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}


def tool(venv: str, name: str) -> str:
    path = TOOLS / venv / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make test` installs it (target `tools`)")
    return str(path)


def run(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=AWS_ENV, capture_output=True, text=True,
                          timeout=600, check=False)


def test_cfn_lint_finds_nothing() -> None:
    result = run(str(Path(sys.executable).parent / "cfn-lint"), "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_sam_validate_with_lint() -> None:
    result = run(tool("sam", "sam"), "validate", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_checkov_fails_nothing_and_every_skip_says_why() -> None:
    result = run(tool("checkov", "checkov"), "--file", "template.yaml", "--framework",
                 "cloudformation", "--skip-download", "--output", "json")
    report = json.loads(result.stdout)
    failed = report["results"]["failed_checks"]
    assert [(c["check_id"], c["resource"]) for c in failed] == []
    assert report["summary"]["passed"] > 0
    assert report["summary"]["skipped"] == len(report["results"]["skipped_checks"])
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"].get("suppress_comment", "")) > 20, skipped["check_id"]


def lambda_python() -> str:
    """An interpreter of the Lambda runtime's version, to import the artifact as Lambda would."""
    version = "3.12"
    candidates = [shutil.which(f"python{version}"),
                  *sorted(glob.glob(os.path.expanduser(
                      f"~/.pyenv/versions/{version}*/bin/python{version}")))]
    for candidate in candidates:
        if candidate and run(candidate, "-c", "pass").returncode == 0:
            return candidate
    message = f"no python{version} found to import the built function with"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message + " (install Python 3.12 to run this check)")


# Runs inside the artifact: no repo on the path, only the built function and the stdlib.
INVOKE_EVERY_EVENT = """
import json, sys, uuid
artifact, events = sys.argv[1], sys.argv[2:]
sys.path.insert(0, artifact)
import handler

class Context:
    function_name = "login-ingest"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:login-ingest"
    aws_request_id = str(uuid.uuid4())

answers = {}
for path in events:
    with open(path) as event:
        answers[path] = handler.lambda_handler(json.load(event), Context())
print(json.dumps({"answers": answers, "handler": handler.__file__}))
"""


@pytest.mark.parametrize("with_vault", [False, True], ids=["no-vault", "vault"])
def test_built_artifact_answers_every_event(tmp_path: Path, database_url: str,
                                            vault_db: psycopg2.extensions.cursor,
                                            with_vault: bool) -> None:
    build = run(tool("sam", "sam"), "build", "--build-dir", str(tmp_path / "build"))
    assert build.returncode == 0, build.stdout + build.stderr
    artifact = tmp_path / "build" / "IngestFunction"
    assert (artifact / "handler.py").exists() and (artifact / "psycopg2").is_dir()
    assert (artifact / "cryptography").is_dir()  # the vault's AES-GCM, as a Linux wheel
    assert not (artifact / "login_ingest" / "local").exists(), "local tooling is not shipped"
    assert not list(artifact.rglob("*.pyc")), "bytecode of this machine's Python is not shipped"
    assert not (artifact / "bin").exists()

    events = [str(EVENTS / name) for name in sorted(EXPECTED_FAILURES)]
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": database_url,
           "MASKING_KEY": TEST_MASKING_KEY, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    if with_vault:  # cryptography's compiled module must load in the Lambda-version Python
        env["VAULT_LOCAL_KEY"] = new_local_key()
    result = subprocess.run([lambda_python(), "-I", "-c", INVOKE_EVERY_EVENT, str(artifact),
                             *events], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])

    assert output["handler"] == str(artifact / "handler.py")
    for path, answer in output["answers"].items():
        failed = [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]
        assert failed == EXPECTED_FAILURES[Path(path).name], path
    vault_db.execute("SELECT count(*) FROM user_logins")
    assert vault_db.fetchone() == (5,)  # 3 valid + 2 from the mixed batch; redelivery adds none
    vault_db.execute("SELECT count(*) > 0 FROM pii_vault")
    assert vault_db.fetchone() == (with_vault,)


def container_runtime_works() -> bool:
    docker = shutil.which("docker")
    return bool(docker) and run(str(docker), "info").returncode == 0


@pytest.mark.skipif(not container_runtime_works(),
                    reason="`sam local invoke` needs a running Docker engine; none here. "
                           "test_built_artifact_answers_every_event stands in for it.")
def test_sam_local_invoke(tmp_path: Path) -> None:  # pragma: no cover - needs Docker
    # The function in a container cannot reach the test's 127.0.0.1 Postgres, so this
    # checks the malformed batch, whose answer needs no database.
    build = run(tool("sam", "sam"), "build", "--build-dir", str(tmp_path / "build"))
    assert build.returncode == 0, build.stderr
    result = run(tool("sam", "sam"), "local", "invoke", "IngestFunction",
                 "--template", str(tmp_path / "build" / "template.yaml"),
                 "--event", "events/malformed-batch.json", "--env-vars", "events/env.json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == EXPECTED_FAILURES[
        "malformed-batch.json"]
