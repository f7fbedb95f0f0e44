"""`python -m services.triage`: run the triage service."""

from services.common.service import run
from services.triage.service import SPEC

run(SPEC)
