"""Property-based fuzzing of the real server from its own OpenAPI document (schemathesis).

Bounded and derandomised: about 1,200 generated requests in all, the same ones on every run. Every
response must be no 5xx and must match the documented status codes, content types and schemas.
"""

from __future__ import annotations

import collections

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MINIMUM_REQUESTS = 1000
SENT: collections.Counter = collections.Counter()

FUZZ = settings(deadline=None, derandomize=True, database=None, max_examples=60,
                suppress_health_check=list(HealthCheck))
# Static maps take about a second each to draw: a smaller budget, at low resolution.
FUZZ_EXPORTS = settings(FUZZ, max_examples=12)


@pytest.fixture(scope="session")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server}/api")


schema = schemathesis.pytest.from_fixture("api_schema")


def call_and_check(case, server):
    response = case.call(base_url=server, timeout=120)
    SENT[case.operation.label] += 1
    case.validate_response(response, checks=CHECKS)


@schema.exclude(path_regex=r"^/export\.").parametrize()
@FUZZ
def test_api_conforms_to_its_document(case, server):
    call_and_check(case, server)


@schema.include(path_regex=r"^/export\.").parametrize()
@FUZZ_EXPORTS
def test_exports_conform_to_their_document(case, server):
    if case.query is not None and "dpi" not in case.query:
        case.query["dpi"] = "50"
    call_and_check(case, server)


def test_fuzzing_sent_enough_requests():
    """Runs after the fuzz tests above (same module, in order): the budget was really spent."""
    assert sum(SENT.values()) >= MINIMUM_REQUESTS, dict(SENT)
    assert len(SENT) >= 10, dict(SENT)
