"""Loading the framework an integration traces: imported only when ``instrument()`` runs, its
version checked, and one clear line naming the extra to install when it is missing or not one
the integration was written against."""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType

__all__ = ["install_hint", "load", "supported_range", "unsupported"]


def load(
    integration: str,
    distribution: str,
    module: str,
    supported: tuple[tuple[int, int], ...],
) -> tuple[ModuleType, str, bool]:
    """``module`` of ``distribution`` imported, its installed version, and whether that version
    is within ``supported`` (``(low, high)`` major.minor, high excluded).

    Raises ImportError, with the install hint, when the framework is not installed; the caller
    checks its own hook points and raises :func:`unsupported` when they are missing.
    """
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"spanhooks.integrations.{integration} needs {distribution} "
            f"{supported_range(supported)}: {install_hint(integration)}"
        ) from exc
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return found, version, _within(version, supported)


def unsupported(
    integration: str, distribution: str, version: str, supported: tuple[tuple[int, int], ...]
) -> RuntimeError:
    """The error for a framework whose version or hook points the integration does not know."""
    versions = supported_range(supported)
    return RuntimeError(
        f"spanhooks.integrations.{integration} supports {distribution} {versions}, "
        f"found {version}: {install_hint(integration)}"
    )


def install_hint(integration: str) -> str:
    """The command that installs ``integration``'s framework through spanhooks' extra."""
    return f"pip install 'spanhooks[{integration.replace('_', '-')}]'"


def supported_range(supported: tuple[tuple[int, int], ...]) -> str:
    """``(low, high)`` as the version range text: ``>=0.9,<0.10``."""
    (low_major, low_minor), (high_major, high_minor) = supported
    return f">={low_major}.{low_minor},<{high_major}.{high_minor}"


def _within(version: str, supported: tuple[tuple[int, int], ...]) -> bool:
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    low, high = supported
    return low <= major_minor < high
