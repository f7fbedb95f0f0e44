"""`python -m services.notify`: run the notify service."""

from services.common.service import run
from services.notify.service import SPEC

run(SPEC)
