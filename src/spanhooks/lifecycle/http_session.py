"""A ``requests`` session for OTLP/HTTP export that survives ``os.fork()``.

Imported only when an OTLP/HTTP exporter is built, like the exporter itself (which imports
``requests`` too).
"""

from __future__ import annotations

import collections

import requests
import requests.adapters

from spanhooks.util.forksafe import renew_in_child

__all__ = ["ForkSafeSession"]


class ForkSafeSession(requests.Session):
    """A ``requests`` session whose connection pools a forked child gets fresh.

    The inherited pools share the parent's sockets, and their locks may be held by the parent's
    export thread, which does not exist in the child; the child's first export would wait on
    them until its exit deadline. Settings (headers, verify, cert, proxies) carry over.
    """

    def __init__(self) -> None:
        super().__init__()
        # requests imports netrc inside its first request. A fork while the parent's export
        # thread holds that module's import lock leaves the lock held in the child forever.
        import netrc  # noqa: F401

        self._inherited: list[object] = []
        renew_in_child(self)

    def after_fork_in_child(self) -> None:
        # The inherited adapters are kept, never closed: closing takes their pools' locks.
        self._inherited.append(self.adapters)
        self.adapters = collections.OrderedDict()
        self.mount("https://", requests.adapters.HTTPAdapter())
        self.mount("http://", requests.adapters.HTTPAdapter())
