"""Tools for testing backends: the reference model and the conformance suite.

* :class:`ReferenceBackend` (:mod:`.model`): the executable specification.
* :mod:`.suite`: base test classes to subclass, :class:`BackendConformance`
  and its parts, with :func:`conformance_skip` to opt out of one rule.
* :mod:`.stateful`: :func:`make_state_machine`, random hook sequences
  compared with the model.
* :mod:`.strategies`: Hypothesis strategies for valid inputs.
* :mod:`.cases`: fixed edge cases of presence and datetimes, for a
  backend's own tests of its encoding and indexes.
* :mod:`.compare`: how answers are compared with the model's.
* :mod:`.profiles`: the ``ci`` and ``thorough`` Hypothesis profiles and
  :func:`conformance_settings`.
* :mod:`.pytest_plugin`: ``pytest --fallthrough-url URL`` runs the whole
  suite against a store.

Everything but :class:`ReferenceBackend` needs pytest and hypothesis (the
``conformance`` extra), and is imported on first use: the pytest plugin imports
this package in every test run, which must not pay for, or need, hypothesis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .model import ReferenceBackend

if TYPE_CHECKING:
    from . import cases, compare, strategies
    from .compare import SCORE_TOLERANCE, assert_same, assert_same_outcome, assert_search_agrees
    from .drivers import HookDriver, Outcome
    from .profiles import conformance_settings
    from .stateful import BackendStateMachine, make_differential_state_machine, make_state_machine
    from .suite import (
        BackendConformance,
        ClaimsConformance,
        DocumentsConformance,
        ExtremesConformance,
        HostileInputConformance,
        PagingConformance,
        RecordsConformance,
        RepairConformance,
        SearchConformance,
        conformance_skip,
    )
    from .twin import Twin

_LAZY = {
    "SCORE_TOLERANCE": "compare",
    "assert_same": "compare",
    "assert_same_outcome": "compare",
    "assert_search_agrees": "compare",
    "HookDriver": "drivers",
    "Outcome": "drivers",
    "conformance_settings": "profiles",
    "BackendStateMachine": "stateful",
    "make_differential_state_machine": "stateful",
    "make_state_machine": "stateful",
    "BackendConformance": "suite",
    "ClaimsConformance": "suite",
    "DocumentsConformance": "suite",
    "ExtremesConformance": "suite",
    "HostileInputConformance": "suite",
    "PagingConformance": "suite",
    "RecordsConformance": "suite",
    "RepairConformance": "suite",
    "SearchConformance": "suite",
    "conformance_skip": "suite",
    "Twin": "twin",
}

_SUBMODULES = frozenset({"cases", "compare", "strategies"})
"""Modules the docs name as ``fallthrough.testing.<name>``: imported on first use too, as the names above."""


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = [
    "SCORE_TOLERANCE",
    "BackendConformance",
    "ClaimsConformance",
    "BackendStateMachine",
    "DocumentsConformance",
    "ExtremesConformance",
    "HookDriver",
    "HostileInputConformance",
    "Outcome",
    "PagingConformance",
    "RecordsConformance",
    "ReferenceBackend",
    "RepairConformance",
    "SearchConformance",
    "Twin",
    "assert_same",
    "assert_same_outcome",
    "assert_search_agrees",
    "cases",
    "compare",
    "conformance_settings",
    "conformance_skip",
    "make_differential_state_machine",
    "make_state_machine",
    "strategies",
]
