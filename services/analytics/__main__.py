"""`python -m services.analytics`: run the analytics service."""

from services.analytics.service import SPEC
from services.common.service import run

run(SPEC)
