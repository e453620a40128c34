"""A bounded schemathesis run over the runner's OpenAPI document, against a real runner.

Every operation gets a fixed, small number of generated requests (valid ones and, for bodies,
odd ones): none may answer 5xx, hang, or answer outside what the document says. The frame
channel (an HTTP upgrade) and image builds (they install packages) are left to their own tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from nbremote_runner.openapi import openapi_document
from nbremote_runner.server import ROUTES
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.config import SchemathesisConfig

from tests.conftest import RunningRunner, start_runner

EXAMPLES = 200  # per operation and mode: about a minute for the whole document on 2 cores
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    allow_header_conformance,
    unsupported_method,
]
# Valid requests and invalid ones (a 4xx naming the field is the answer to those), derandomized.
CONFIG = SchemathesisConfig.from_dict(
    {"generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True}}
)
schema = (
    schemathesis.openapi.from_dict(openapi_document(ROUTES), config=CONFIG)
    .exclude(path_regex=r"/channel$")  # an upgrade to the binary frame protocol
    .exclude(path_regex=r"/build$")  # builds run uv: covered by tests/integration/test_images
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRunner]:
    """A runner of this module's own: the fuzzer deletes what it finds."""
    running = start_runner(tmp_path_factory.mktemp("fuzzed"), "fuzz-token")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_the_runner_serves_the_document_its_routes_make(fuzzed: RunningRunner) -> None:
    served = requests.get(f"{fuzzed.url}/api/v1/openapi.json", timeout=10).json()
    assert served == openapi_document(ROUTES)
    assert "/api/v1/images/{ref}" in served["paths"]
    assert not any("session_id" in p for p in served["paths"] if "/images/" in p)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_operation_fails_on_generated_input(
    case: schemathesis.Case, fuzzed: RunningRunner, http: requests.Session
) -> None:
    headers = {"Authorization": f"Bearer {fuzzed.token}"}
    case.call_and_validate(
        base_url=fuzzed.url, session=http, headers=headers, checks=CHECKS, timeout=5
    )
