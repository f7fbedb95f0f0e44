"""The committed OpenAPI documents (schemas/openapi/): fresh, one per service, and valid."""

from __future__ import annotations

import json

import pytest
import schemathesis

from services.common.settings import SERVICES, ServiceName
from services.openapi import document_path, main, stale_files


def test_committed_documents_are_fresh() -> None:
    assert stale_files() == [], "regenerate with: python -m services.openapi"


def test_the_command_line_check_agrees() -> None:
    assert main(["--check"]) == 0


@pytest.mark.parametrize("service", SERVICES)
def test_each_document_is_valid_openapi(service: ServiceName) -> None:
    document = json.loads(document_path(service).read_text("utf-8"))
    assert document["info"]["title"] == f"Veilig Haarlem — {service}"
    operations = [op.ok() for op in schemathesis.openapi.from_dict(document).get_all_operations()]
    assert operations and all(op.path.startswith("/") for op in operations)
