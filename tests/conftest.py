"""Shared pytest setup: integration tests need root and the tools they drive."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# test doubles (fake kernels, dataplanes) live here, never in the shipped package
sys.path.insert(0, str(Path(__file__).resolve().parent / "doubles"))


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
