"""A test double of Nomad's HTTP API (``NomadDouble``) that runs allocations as local processes.

Tests only; stdlib only. No Nomad binary or cluster is involved: the double
serves Nomad's documented HTTP API shapes and runs tasks itself. See
:mod:`tests.nomad_double.double` for what is simplified and
:mod:`tests.nomad_double.faults` for fault injection.
"""

from .double import HTTPError, NomadDouble, RecordedRequest
from .faults import Faults, Rule

__all__ = ["Faults", "HTTPError", "NomadDouble", "RecordedRequest", "Rule"]
