"""Call-center console (R4): one blueprint, one module per capability."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("callcenter", __name__)

from . import calls, console, fax, messages, recordings  # noqa: E402, F401  (routes register on import)
