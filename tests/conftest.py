"""Shared pytest configuration and fixtures for the fastloss test-suite."""

import pytest

import fastloss.reference

from .cases import public


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (huge arrays)")


def pytest_configure(config):
    # Registered in pyproject.toml as well; repeated so the suite also runs on its own.
    config.addinivalue_line(
        "markers", "slow: long tests (huge arrays), skipped unless --runslow is given")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: give --runslow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(params=["reference", "fastloss"])
def impl(request):
    """Both implementations, for tests of SPEC behaviour that the reference must honour too."""
    if request.param == "reference":
        return fastloss.reference
    return public()
