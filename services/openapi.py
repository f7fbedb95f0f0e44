"""Each service's HTTP contract: one OpenAPI document per service, committed.

    python -m services.openapi          # write schemas/openapi/<service>.json
    python -m services.openapi --check  # exit 1 if a committed document is stale

Partners generate clients from these files, and the running services serve their documentation
only in local development, so the committed files are the published contract; a test keeps
them fresh (tests/unit/test_openapi_documents.py), as it does the AsyncAPI document. The
documents are FastAPI's, rendered like the event schemas (sorted keys: tests compare bytes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from schemas.generate import ROOT, render_json
from services.common.service import ServiceSpec, create_app
from services.common.settings import SERVICES, ServiceName, Settings

OPENAPI_DIR = ROOT / "openapi"


def service_spec(service: ServiceName) -> ServiceSpec:
    """The service's spec (imported on demand: each module builds its whole service)."""
    if service == "intake":
        from services.intake.service import SPEC
    elif service == "triage":
        from services.triage.service import SPEC
    elif service == "notify":
        from services.notify.service import SPEC
    else:
        from services.analytics.service import SPEC
    return SPEC


def openapi_document(service: ServiceName) -> dict[str, Any]:
    """The OpenAPI document of ``service``, as its app generates it."""
    return create_app(service_spec(service), Settings()).openapi()


def document_path(service: ServiceName) -> Path:
    return OPENAPI_DIR / f"{service}.json"


def generated_files() -> dict[Path, str]:
    return {document_path(s): render_json(openapi_document(s)) for s in SERVICES}


def stale_files() -> list[str]:
    """Committed documents that differ from what the services generate."""
    return sorted(
        str(path.relative_to(ROOT.parent))
        for path, text in generated_files().items()
        if not path.exists() or path.read_text("utf-8") != text
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.openapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale documents")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path} (regenerate: python -m services.openapi)", file=sys.stderr)
        return 1 if stale else 0
    OPENAPI_DIR.mkdir(exist_ok=True)
    files = generated_files()
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} documents under {OPENAPI_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
