"""`python -m services.intake`: run the intake service."""

from services.common.service import run
from services.intake.service import SPEC

run(SPEC)
