"""Fixtures shared by the test directories: the deliberately broken loopback peer."""

from __future__ import annotations

from typing import TYPE_CHECKING

# httpx imports httpcore only when its first client is made. Made first inside a pytester run, httpcore would
# be dropped from sys.modules with everything else that run imported, and the next import is a second copy
# whose exceptions httpx no longer maps (an httpcore.ConnectError escapes where httpx.ConnectError is caught).
import httpcore  # noqa: F401
import pytest
from peers.broken_server import BrokenPeer

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def broken_peer() -> Iterator[BrokenPeer]:
    """A loopback HTTP peer that fails on demand (see tests/peers/broken_server.py); never a source of figures."""
    peer = BrokenPeer().start()
    yield peer
    peer.stop()
