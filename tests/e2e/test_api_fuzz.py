"""Every operation of the OpenAPI document, driven with generated input against the real
gateway: no answer is a server error, and every answer matches the document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.e2e.server import AUTH, GatewayProcess, start_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    proc = start_gateway(root / "data", root)
    try:
        yield proc
    finally:
        proc.terminate()


@pytest.fixture(scope="module")
def api_schema(gateway: GatewayProcess) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_url(gateway.url("/v1/openapi.json"))
    # The socket, the provider webhooks and the endless event stream are not request/answer
    # operations; they have tests of their own.
    return loaded.exclude(path_regex=r"^/(webchat|webhooks)/").exclude(path="/v1/events")


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.mark.timeout(300)
def test_every_operation(api_schema: schemathesis.BaseSchema, gateway: GatewayProcess) -> None:
    failures: list[str] = []
    tested = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        tested += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
        # whatever it was sent, the gateway is still up
        assert gateway.proc.poll() is None, gateway.stderr_text()
    assert tested >= 25
    assert not failures, "\n\n".join(failures)


def test_the_gateway_logged_no_unhandled_error(gateway: GatewayProcess) -> None:
    log = Path(gateway.stderr_path).read_text(errors="replace")
    assert "unhandled error" not in log
