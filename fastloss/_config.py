"""show_config(): what this build of fastloss is and what it runs on."""
import os
import platform
import sys

import numpy as np

from . import _core
from ._version import __version__


def _config_dict():
    built = _core.simd_built()
    info = {
        "fastloss": {"version": __version__, "path": os.path.dirname(__file__)},
        "python": {"version": sys.version.split()[0], "implementation":
                   platform.python_implementation(), "executable": sys.executable},
        "numpy": {"version": np.__version__},
        "compiler": {"python_built_with": platform.python_compiler()},
        "platform": {"system": platform.system(), "machine": platform.machine(),
                     "platform": platform.platform()},
        "openmp": {"enabled": _core.openmp_enabled(), "threads": _core.default_threads()},
        "simd": {"built": built, "supported": _core.simd_supported(),
                 "in_use": _core.simd_in_use(),
                 "FASTLOSS_SIMD": os.environ.get("FASTLOSS_SIMD")},
    }
    try:
        import threadpoolctl
    except ImportError:
        pass
    else:
        info["threadpools"] = threadpoolctl.threadpool_info()
    return info


def show_config(mode="stdout"):
    """Print (or return with ``mode="dicts"``) fastloss's build and runtime config.

    Reports the versions of fastloss, Python and NumPy, the platform, whether
    OpenMP is compiled in and the default thread count, and the SIMD paths
    built, supported by this CPU and in use (``FASTLOSS_SIMD`` forces one).
    """
    info = _config_dict()
    if mode == "dicts":
        return info
    if mode != "stdout":
        raise ValueError("mode must be 'stdout' or 'dicts', not %r" % (mode,))
    for section, values in info.items():
        print("%s:" % section)
        if isinstance(values, dict):
            for k, v in values.items():
                print("  %-18s %s" % (k, v))
        else:
            for pool in values:
                print("  - %s" % pool)
    return None
