"""``omnigw simulate``: a report, a JSON line and an exit status."""

from __future__ import annotations

import json

import pytest

from gateway.cli import main


def test_cli_prints_a_report_and_a_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["simulate", "multi-skill", "--arrivals", "1500", "--seed", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert status == 0
    assert summary["scenario"] == "multi-skill"
    assert set(summary["variants"]) == {"baseline", "+stickiness", "+escalation", "+both"}
    assert any("first response = wait until assigned" in line for line in out)


def test_cli_erlang_c_exit_status_follows_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["simulate", "erlang-c", "--agents", "1", "--load", "0.5", "--arrivals", "20000"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["p_wait"]["theory"] == pytest.approx(0.5)
    assert status == (0 if summary["pass"] else 1)
    assert main(["simulate", "erlang-c", "--load", "1.5"]) == 2
