"""The OpenAPI document: valid, complete, and true enough that fuzzing it finds no 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from app.main import ROUTES
from tests.servers import ApiProcess


async def test_document_is_valid_and_lists_every_route(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    validate(document)
    listed = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = {
        (route.path, method)
        for route in ROUTES
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert listed == served


@pytest.fixture
def server(redis_url: str) -> Iterator[ApiProcess]:
    process = ApiProcess({"REDIS_URL": redis_url, "LOG_LEVEL": "warning"})
    process.start()
    yield process
    process.kill()


@pytest.mark.processes
@pytest.mark.parametrize("backend", ["redis-json"])
def test_fuzzing_finds_no_server_error(server: ApiProcess, backend: str, tmp_path: Path) -> None:
    """schemathesis sends schema-derived and schema-violating requests to every operation."""
    cli = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "20261125",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1"},
        cwd=tmp_path,  # its example cache stays out of the repository
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "passed" in result.stdout
