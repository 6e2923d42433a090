"""The local run's command line: limits as in SQS and Lambda, one-line errors, no secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from login_ingest.local.inputs import InputError, read_bodies
from login_ingest.local.run import main, parse_args, where


@pytest.mark.parametrize("arguments", [
    ["--batch-size", "0"],
    ["--batch-size", "10001"],
    ["--batch-size", "many"],
    ["--max-receive-count", "0"],
    ["--visibility-timeout", "-1"],
    ["--batching-window", "-0.5"],
    ["--count", "-5"],
    ["--batch-size", "11", "--batching-window", "0.5"],
    ["--batching-window", "3", "--visibility-timeout", "3"],
])
def test_out_of_range_arguments_are_refused(arguments: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(arguments)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_defaults_respect_the_aws_rules() -> None:
    args = parse_args([])
    assert args.batch_size > 10 and args.batching_window >= 1
    assert args.visibility_timeout > args.batching_window


@pytest.mark.parametrize("content", [b"", None])
def test_unreadable_input_is_a_one_line_error(tmp_path: Path, content: bytes | None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.json"
    if content is not None:
        path.write_bytes(b"\x1f\x8b\x08truncated gzip")
    assert main(["--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_bad_masking_key_stops_the_run_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MASKING_KEY", "short")
    path = tmp_path / "in.jsonl"
    path.write_text('{"user_id": "u"}\n')

    assert main(["--input", str(path)]) == 2

    captured = capsys.readouterr()
    assert "MaskingKeyError: masking key must be at least 32 bytes" in captured.err
    assert "SQS endpoint" not in captured.err


def test_a_broken_array_is_refused_not_sent_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"user_id": "a1"},\n  {"user_id": "a2", bad},\n  {"user_id": "a3"}\n]\n')
    with pytest.raises(InputError, match="not valid JSON"):
        read_bodies(path)


def test_json_lines_may_start_with_an_array_line(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_text('["not", "a login"]\n{"user_id": "u"}\n')
    assert read_bodies(path) == ['["not", "a login"]', '{"user_id": "u"}']


@pytest.mark.parametrize("url", [
    "postgresql://app:hunter2@db.internal:6432/logins",
    "host=db.internal port=6432 dbname=logins user=app password=hunter2",
])
def test_database_location_is_shown_without_password(url: str) -> None:
    assert where(url) == "db.internal:6432/logins"


@pytest.mark.parametrize("argv", [["unmask", "k1:x"], ["retokenize", "--batch-size", "0"], []])
def test_recovery_refuses_bad_arguments_before_connecting(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from login_ingest.recovery import main

    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    assert "usage: python -m login_ingest.recovery" in capsys.readouterr().err
