"""pytest-benchmark suite of fastloss, generated from fastloss.bench.CASES.

    pytest bench/ --benchmark-only              time every case (the --quick sizes)
    pytest bench/ --benchmark-only --bench-size=full    ... at the full sizes of `fastloss bench`
    pytest bench/ --benchmark-disable           smoke: run each once on a small size and
                                                check it against fastloss.reference (CI)

`python -m fastloss bench` is the main benchmark (interleaved, with ratios); this suite is for
pytest-benchmark's history and comparison tools (--benchmark-autosave, --benchmark-compare).
"""

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--bench-size", choices=("check", "quick", "full"), default=None,
        help="data size of the bench/ cases (default: check with --benchmark-disable, "
             "else quick)")


@pytest.fixture(scope="session")
def bench_size(request):
    size = request.config.getoption("--bench-size")
    if size is None:
        disabled = request.config.getoption("benchmark_disable", default=False)
        size = "check" if disabled else "quick"
    return size
