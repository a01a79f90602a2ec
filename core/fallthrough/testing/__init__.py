"""Tools for testing backends: the reference model and the conformance suite.

Importing this package needs hypothesis and pytest (the ``test`` extra).
"""

from __future__ import annotations

from .model import ReferenceBackend

__all__ = ["ReferenceBackend"]
