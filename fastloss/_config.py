"""show_config(): what this build of fastloss is and what it runs on.

Like NumPy's ``show_config`` and scikit-learn's ``show_versions``: versions,
the compiler and flags the extension was built with (recorded by setup.py in
the generated ``fastloss/_build_info.py``), the OpenMP runtime the extension
is linked to, threads, SIMD paths, and threadpoolctl's view of the thread
pools when threadpoolctl is installed.
"""
import ctypes
import ctypes.util
import os
import platform
import sys
from typing import Any, Dict, Literal, Optional, overload

import numpy as np

from . import _core
from ._version import __version__

try:
    from ._build_info import BUILD_INFO
except ImportError:  # built by something other than setup.py's build_ext
    BUILD_INFO = {}

# File-name stems of the OpenMP runtimes: GNU, LLVM, Intel, Microsoft.
_OPENMP_LIBS = ("libgomp", "libomp", "libiomp5", "libiomp5md", "vcomp", "libomp140")


def _openmp_library_name(path):
    """'libgomp' for '.../fastloss.libs/libgomp-a34b3233.so.1.0.0', None if not OpenMP."""
    base = os.path.basename(path).lower()
    for stem in sorted(_OPENMP_LIBS, key=len, reverse=True):
        if base.startswith(stem) and not base[len(stem):len(stem) + 1].isalpha():
            return stem
    return None


def _posix_symbol_file(library_path, symbol):
    """The file of the library that `symbol` resolves to as seen from `library_path`.

    dlsym on the extension's own handle searches the extension and the
    libraries it depends on (not everything loaded in the process, e.g. the
    libgomp that PyTorch brought), and dladdr names the file that holds it.
    """
    lib = ctypes.CDLL(library_path)
    try:
        address = ctypes.cast(getattr(lib, symbol), ctypes.c_void_p)
    except AttributeError:
        return None
    for name in (None, ctypes.util.find_library("dl")):
        try:
            dladdr = ctypes.CDLL(name).dladdr
            break
        except (OSError, AttributeError):
            continue
    else:
        return None
    # Dl_info is four pointers: dli_fname, dli_fbase, dli_sname, dli_saddr.
    info = (ctypes.c_void_p * 4)()
    dladdr.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    dladdr.restype = ctypes.c_int
    if not dladdr(address, info) or not info[0]:
        return None
    return os.path.realpath(os.fsdecode(ctypes.string_at(info[0])))


def _windows_openmp_files():
    """Paths of the loaded DLLs that are OpenMP runtimes (delvewheel renames them)."""
    from ctypes import wintypes

    psapi = ctypes.WinDLL("psapi")
    kernel32 = ctypes.WinDLL("kernel32")
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    psapi.EnumProcessModules.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.HMODULE),
                                         wintypes.DWORD, ctypes.POINTER(wintypes.DWORD)]
    psapi.EnumProcessModules.restype = wintypes.BOOL
    kernel32.GetModuleFileNameW.argtypes = [wintypes.HMODULE, wintypes.LPWSTR, wintypes.DWORD]
    kernel32.GetModuleFileNameW.restype = wintypes.DWORD
    modules = (wintypes.HMODULE * 1024)()
    needed = wintypes.DWORD()
    if not psapi.EnumProcessModules(kernel32.GetCurrentProcess(), modules,
                                    ctypes.sizeof(modules), ctypes.byref(needed)):
        return []
    found = []
    buf = ctypes.create_unicode_buffer(32768)
    count = min(len(modules), needed.value // ctypes.sizeof(wintypes.HMODULE))
    for module in modules[:count]:
        if module and kernel32.GetModuleFileNameW(module, buf, len(buf)):
            if _openmp_library_name(buf.value):
                found.append(buf.value)
    return found


def _openmp_runtime():
    """{"library", "path"} of the OpenMP runtime the extension is linked to."""
    if not _core.openmp_enabled():
        return {"library": None, "path": None}
    path = None
    try:
        if os.name == "nt":
            files = _windows_openmp_files()
            path = files[0] if files else None
        else:
            path = _posix_symbol_file(_core.__file__, "omp_get_max_threads")
    except (OSError, AttributeError, ValueError):
        path = None
    return {"library": _openmp_library_name(path) if path else "unknown", "path": path}


def _threadpools():
    try:
        import threadpoolctl  # type: ignore[import-untyped]
    except ImportError:
        return None
    return threadpoolctl.threadpool_info()


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _config_dict():
    built = _core.simd_built()
    build = BUILD_INFO or {}
    compiler = build.get("compiler", {})
    omp_build = build.get("openmp", {})
    runtime = _openmp_runtime()
    pools = _threadpools()
    if pools is not None and runtime["path"]:
        for pool in pools:   # threadpoolctl knows the runtime's version and thread count
            if os.path.realpath(pool.get("filepath", "")) == runtime["path"]:
                runtime["version"] = pool.get("version")
                runtime["threadpoolctl_num_threads"] = pool.get("num_threads")
    info = {
        "fastloss": {"version": __version__, "path": os.path.dirname(os.path.abspath(__file__))},
        "python": {"version": sys.version.split()[0], "implementation":
                   platform.python_implementation(), "executable": sys.executable},
        "numpy": {"version": np.__version__, "built_against": build.get("build_numpy"),
                  "c_api_target": build.get("numpy_target_api")},
        "compiler": {
            "c_compiler": compiler.get("version", "unknown (no build record)"),
            "family": compiler.get("family"),
            "executable": compiler.get("executable"),
            "cython": build.get("build_cython"),
            "python_built_with": platform.python_compiler(),
        },
        "platform": {"system": platform.system(), "machine": platform.machine(),
                     "platform": platform.platform(), "cpus_usable": _cpu_count()},
        "openmp": {
            "enabled": _core.openmp_enabled(),
            "build_mode": ("FASTLOSS_OPENMP=%s" % omp_build["mode"]) if "mode" in omp_build
                          else None,
            "compile_flags": " ".join(omp_build.get("compile_flags", [])),
            "link_flags": " ".join(omp_build.get("link_flags", [])),
            "why_not": omp_build.get("why_not") or None,
            "runtime": runtime["library"],
            "runtime_path": runtime["path"],
            "runtime_version": runtime.get("version"),
            "threads": _core.default_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "simd": {"built": built, "supported": _core.simd_supported(),
                 "in_use": _core.simd_in_use(),
                 "FASTLOSS_SIMD": os.environ.get("FASTLOSS_SIMD")},
        "threadpools": pools if pools is not None else "threadpoolctl is not installed",
    }
    return info


@overload
def show_config(mode: Literal["stdout"] = ...) -> None: ...
@overload
def show_config(mode: Literal["dicts"]) -> Dict[str, Any]: ...


def show_config(mode: str = "stdout") -> Optional[Dict[str, Any]]:
    """Print (or return with ``mode="dicts"``) fastloss's build and runtime config.

    Reports the versions of fastloss, Python and NumPy, the C compiler the
    extension was built with, the platform, whether OpenMP is compiled in and
    which runtime library it is linked to, the default thread count, the SIMD
    paths built, supported by this CPU and in use (``FASTLOSS_SIMD`` forces
    one), and threadpoolctl's view of the loaded thread pools when
    threadpoolctl is installed.  ``python -m fastloss`` prints the same.

    Parameters
    ----------
    mode : {"stdout", "dicts"}, optional
        ``"stdout"`` prints the report; ``"dicts"`` returns it as a dict of
        sections (``"fastloss"``, ``"python"``, ``"numpy"``, ``"compiler"``,
        ``"platform"``, ``"openmp"``, ``"simd"``, ``"threadpools"``).

    Returns
    -------
    dict or None
        The report for ``mode="dicts"``, else None.

    Examples
    --------
    >>> import fastloss
    >>> info = fastloss.show_config(mode="dicts")
    >>> info["fastloss"]["version"] == fastloss.__version__
    True
    >>> info["simd"]["in_use"] in info["simd"]["built"]
    True
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError("mode must be 'stdout' or 'dicts', not %r" % (mode,))
    info = _config_dict()
    if mode == "dicts":
        return info
    for section, values in info.items():
        print("%s:" % section)
        if isinstance(values, dict):
            for k, v in values.items():
                if isinstance(v, list):
                    v = ", ".join(map(str, v))
                print("  %-18s %s" % (k, "-" if v is None or v == "" else v))
        elif isinstance(values, list):
            for pool in values:
                print("  - " + ", ".join("%s=%s" % kv for kv in pool.items()))
        else:
            print("  %s" % values)
    return None
