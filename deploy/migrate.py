"""Apply every service's database migrations, and nothing else; then exit.

The services apply their own migrations when they start (services/common/service.py), so this
is not needed for correctness. A deployment runs it first (the Kubernetes Job
deploy/k8s/base/migrations-job.yaml, the Compose service `migrate`) so that a migration that
fails stops the rollout before any new pod takes traffic, and so that replicas do not queue on
the migration lock at start. Each schema is migrated exactly as its service would: its own
``search_path``, the same advisory lock, the same checksums; staff schema with the services
that have staff APIs, and the ``ops`` schema of the operator CLI (DLQ replay audit).

    python deploy/migrate.py            # all four services
    python deploy/migrate.py notify     # one
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Step:
    schema: str  # the schema migrated
    migrations: Path
    search_path: str  # the connection's first schema, as in the service that applies it


def plan(names: list[str] | None = None) -> list[Step]:
    """The migrations each service applies at start, in order; then the operator CLI's."""
    from services.common import dlq, staff
    from services.common.settings import SERVICES

    steps: list[Step] = []
    for name in names or list(SERVICES):
        if name not in SERVICES:
            raise SystemExit(f"unknown service {name!r} (one of {', '.join(SERVICES)})")
        spec = importlib.import_module(f"services.{name}.service").SPEC
        steps.append(Step(spec.name, spec.migrations, spec.name))
        if spec.staff:
            steps.append(Step(staff.SCHEMA, staff.MIGRATIONS, spec.name))
    if not names:
        steps.append(Step(dlq.SCHEMA, dlq.MIGRATIONS, dlq.SCHEMA))
    return steps


async def apply(steps: list[Step]) -> None:
    import asyncpg

    from services.common.migrations import load_migrations, migrate
    from services.common.settings import get_settings

    dsn = get_settings().database_url.get_secret_value()
    for step in steps:
        conn = await asyncpg.connect(
            dsn, timeout=30, server_settings={"search_path": f"{step.search_path},public"}
        )
        try:
            applied = await migrate(conn, step.schema, load_migrations(step.migrations))
        finally:
            await conn.close()
        done = f"applied {applied}" if applied else "up to date"
        print(f"{step.schema} (search_path {step.search_path}): {done}", flush=True)


def main(argv: list[str]) -> None:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return
    asyncio.run(apply(plan(argv or None)))


if __name__ == "__main__":
    main(sys.argv[1:])
