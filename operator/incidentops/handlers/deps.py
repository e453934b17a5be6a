"""What every handler needs, built once per process and passed in explicitly.

Where it sits: ``runtime.py`` builds it; ``registry.py`` closes its handlers
over it. It holds only collaborators (settings, the API client, the clock),
never incident state: that lives in each object's status.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from incidentops import kube
from incidentops.settings import Settings


def utcnow() -> datetime.datetime:
    # Full precision: a clock cut to whole seconds wakes the scheduler up to a
    # second after each deadline and hides that lateness from its own metric.
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    api: kube.ApiClient
    clock: Callable[[], datetime.datetime] = field(default=utcnow)
