"""The run's state in pytest's stash: one key per value, defined once (config-wide and per test item)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # names in the keys' string annotations
    from collections.abc import Callable  # noqa: F401

    from pytest_quantgate.artifacts import ArtifactWriter  # noqa: F401
    from pytest_quantgate.config import RunConfig  # noqa: F401
    from pytest_quantgate.controller import Controller  # noqa: F401
    from pytest_quantgate.keys import LevelInfo  # noqa: F401
    from pytest_quantgate.llm import Llm  # noqa: F401
    from pytest_quantgate.measures import Measure  # noqa: F401
    from pytest_quantgate.servers import Servers  # noqa: F401

CONFIG_KEY = pytest.StashKey["RunConfig"]()
SERVERS_KEY = pytest.StashKey["Servers"]()
CONTROLLER_KEY = pytest.StashKey["Controller"]()
LEVEL_KEY = pytest.StashKey["LevelInfo"]()
LLM_KEY = pytest.StashKey["Llm"]()
STARTED_KEY = pytest.StashKey[float]()
ARTIFACTS_KEY = pytest.StashKey["ArtifactWriter"]()
MEASURE_KEY = pytest.StashKey["Measure"]()
RESTORE_SIGINT_KEY = pytest.StashKey["Callable[[], None] | None"]()
