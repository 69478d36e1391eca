"""A ``requests`` session for OTLP/HTTP export that survives ``os.fork()``.

Imported only when an OTLP/HTTP exporter is built, like the exporter itself (which imports
``requests`` too).
"""

from __future__ import annotations

import collections
import os
import weakref

import requests
import requests.adapters

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
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def after_in_child() -> None:
                session = ref()
                if session is not None:
                    session._renew_pools()

            os.register_at_fork(after_in_child=after_in_child)

    def _renew_pools(self) -> None:
        # The inherited adapters are kept, never closed: closing takes their pools' locks.
        self._inherited.append(self.adapters)
        self.adapters = collections.OrderedDict()
        self.mount("https://", requests.adapters.HTTPAdapter())
        self.mount("http://", requests.adapters.HTTPAdapter())
