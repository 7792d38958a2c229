"""How fastloss is packaged and describes itself: version, show_config, installed files.

These run against whatever ``import fastloss`` finds: the editable install of a checkout, or
(.ci/run, cibuildwheel) an installed sdist or wheel with the tests copied elsewhere. The build
tests at the end need the source tree and the build requirements and skip without them.
"""

import importlib.metadata
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastloss
from fastloss import _core

SECTIONS = ("fastloss", "python", "numpy", "compiler", "platform", "openmp", "simd",
            "threadpools")


def test_version_is_the_installed_distributions():
    assert fastloss.__version__ == importlib.metadata.version("fastloss")


def test_show_config_dicts_has_every_section():
    info = fastloss.show_config(mode="dicts")
    assert tuple(info) == SECTIONS
    assert info["fastloss"]["version"] == fastloss.__version__
    assert info["python"]["version"] == sys.version.split()[0]
    assert info["numpy"]["version"] == __import__("numpy").__version__
    assert info["simd"]["in_use"] in info["simd"]["built"]
    assert set(info["simd"]["supported"]) <= set(info["simd"]["built"])
    assert info["openmp"]["enabled"] is _core.openmp_enabled()
    assert info["openmp"]["threads"] == _core.default_threads() >= 1
    json.dumps(info)   # plain data, as the benchmark stores it


def test_show_config_names_the_build_compiler():
    """setup.py records the compiler in fastloss/_build_info.py (generated, not in git)."""
    from fastloss._config import BUILD_INFO

    assert BUILD_INFO, "fastloss/_build_info.py is missing: not built by setup.py's build_ext"
    compiler = fastloss.show_config(mode="dicts")["compiler"]
    assert compiler["c_compiler"] == BUILD_INFO["compiler"]["version"]
    assert compiler["family"] in ("gcc", "clang", "apple-clang", "msvc", "unknown")
    assert BUILD_INFO["openmp"]["built"] is _core.openmp_enabled()


def test_show_config_names_the_openmp_runtime():
    omp = fastloss.show_config(mode="dicts")["openmp"]
    if not omp["enabled"]:
        assert omp["runtime"] is None
        assert omp["why_not"], "a serial build says why it has no OpenMP"
        return
    if sys.platform.startswith("linux"):
        # dlsym on the extension's handle + dladdr: the library it is linked to, also when a
        # wheel bundles it under a mangled name (fastloss.libs/libgomp-<hash>.so.1.0.0).
        assert omp["runtime"] in ("libgomp", "libomp", "libiomp5"), omp
        assert os.path.isfile(omp["runtime_path"]), omp
    else:
        assert omp["runtime"] is not None


def test_show_config_prints_every_section(capsys):
    assert fastloss.show_config() is None
    out = capsys.readouterr().out
    for section in SECTIONS:
        assert "\n%s:\n" % section in "\n" + out
    assert fastloss.__version__ in out


def test_show_config_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode must be 'stdout' or 'dicts', not 'json'"):
        fastloss.show_config(mode="json")


def test_python_m_fastloss_prints_show_config():
    out = subprocess.run([sys.executable, "-m", "fastloss"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "openmp:" in out.stdout and "simd:" in out.stdout
    assert fastloss.__version__ in out.stdout


def test_typing_files_and_c_declarations_are_installed():
    """PEP 561 marker, the compiled module's stubs and the Cython declarations ship."""
    pkg = Path(fastloss.__file__).parent
    for name in ("py.typed", "_core.pyi", "capi.pxd"):
        assert (pkg / name).is_file(), name


def test_the_public_c_headers_are_found():
    """fastloss/include/ in an install (setup.py's build_py), src_c/ in a checkout."""
    include = Path(fastloss.get_include())
    for name in ("fastloss.h", "fastloss_api.h"):
        assert (include / name).is_file(), name
    if (Path(fastloss.__file__).parent / "include").is_dir():
        assert not (include / "fl_internal.h").exists()   # only the public API is installed


# ----------------------------------------------------------------- the build (source tree only)

ROOT = Path(__file__).resolve().parent.parent


def _build_tools_or_skip():
    if not (ROOT / "setup.py").is_file() or not (ROOT / "src_c").is_dir():
        pytest.skip("needs the source tree (this run tests an installed copy)")
    if os.name != "posix":
        pytest.skip("the fake compiler is a shell script")
    for module in ("Cython", "setuptools", "numpy"):
        try:
            __import__(module)
        except ImportError:
            pytest.skip("needs the build requirements (%s)" % module)
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("needs setuptools >= 77 (pyproject.toml's build requirement)")


def _compiler_without_openmp(tmp_path):
    """A C compiler that refuses -fopenmp, as Apple clang does without -Xpreprocessor."""
    real = os.environ.get("CC", "cc").split()[0]
    script = tmp_path / "cc-no-openmp"
    script.write_text(textwrap.dedent("""\
        #!/bin/sh
        for a in "$@"; do
          if [ "$a" = "-fopenmp" ]; then
            echo "cc-no-openmp: error: unsupported option '-fopenmp'" >&2
            exit 1
          fi
        done
        exec %s "$@"
        """ % real))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_build_fails_in_one_line_when_openmp_is_required_but_missing(tmp_path):
    _build_tools_or_skip()
    env = dict(os.environ, CC=_compiler_without_openmp(tmp_path), FASTLOSS_OPENMP="1")
    out = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "-b", str(tmp_path / "lib"),
         "-t", str(tmp_path / "tmp")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode != 0
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if "FASTLOSS_OPENMP=1" in ln]
    assert len(lines) == 1, out.stdout + out.stderr
    line = lines[0]
    assert re.match(r"error: fastloss: FASTLOSS_OPENMP=1 but the [\w-]+ compiler ", line), line
    assert "cc-no-openmp" in line                     # the compiler, by its path
    assert "did not compile with -fopenmp" in line    # what was missing
    assert "unsupported option '-fopenmp'" in line    # the compiler's own words
    assert not (tmp_path / "lib").exists()            # nothing was built
