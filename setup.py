"""Build of fastloss's C core.

The C kernels (src_c/kernels.c) are compiled once per SIMD target with that
target's flags and a name suffix; src_c/dispatch.c picks one at run time.
OpenMP flags are chosen per compiler (GCC, LLVM clang, Apple clang, MSVC) and
probed by compiling, linking and running a tiny program (as scikit-learn's
setuptools-era ``openmp_helpers.py`` did).  What was built with what is
written to ``fastloss/_build_info.py`` (generated, never committed) and shown
by ``fastloss.show_config()``.

Environment:
  FASTLOSS_OPENMP   auto (default: probe; without OpenMP build serially and
                    warn once), 1 (fail the build without OpenMP), 0 (serial).
  LIBOMP_PREFIX     Apple clang: where libomp is (include/omp.h, lib/libomp.*);
                    default: Homebrew's libomp, then $CONDA_PREFIX.
  FASTLOSS_SIMD_TARGETS  comma list of extra targets to build (default: all
                    the compiler supports: avx2,avx512 on x86-64).
  FASTLOSS_SANITIZE  1: compile and link with -fsanitize=address,undefined.
"""
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

SRC = "src_c"
KERNEL_SOURCE = os.path.join(SRC, "kernels.c")
BUILD_INFO = os.path.join("fastloss", "_build_info.py")

# Flags of each SIMD build of kernels.c, by compiler family.  No -ffast-math
# (it breaks the inf/NaN contract) and no -march=native (not portable).
# -fno-math-errno / -fno-trapping-math change no result: they only let the
# compiler if-convert and vectorise.
SIMD_TARGETS_UNIX = {
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma",
               "-mprefer-vector-width=512"],
}
SIMD_TARGETS_MSVC = {"avx2": ["/arch:AVX2"], "avx512": ["/arch:AVX512"]}

# Signed loop index, no collapse, no min/max reduction: MSVC's OpenMP 2.0 must
# accept the probe as it must accept src_c/.
OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        long i;
        #pragma omp parallel for reduction(+:n)
        for (i = 0; i < 1000; ++i) n += 1;
        printf("%d\\n", n == 1000 && omp_get_max_threads() >= 1);
        return 0;
    }
    """
)

# What each compiler family needs for OpenMP, for the messages.
OPENMP_RUNTIME = {"gcc": "libgomp", "clang": "libomp", "apple-clang": "libomp",
                  "msvc": "vcomp (the Visual C++ OpenMP runtime)", "unknown": "an OpenMP runtime"}
OPENMP_HINT = {
    "gcc": "install GCC with its libgomp",
    "clang": "install libomp (e.g. apt-get install libomp-dev) or build with CC=gcc",
    "apple-clang": "run `brew install libomp` or set LIBOMP_PREFIX to a libomp install",
    "msvc": "use the MSVC that comes with the Visual Studio C++ build tools",
    "unknown": "use GCC, clang with libomp, or MSVC",
}


def _is_x86_64():
    return platform.machine().lower() in ("x86_64", "amd64", "x64")


def _run_quiet(cmd):
    """stdout + stderr of cmd, '' when it cannot run."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (out.stdout or "") + (out.stderr or "")


class _CapturedOutput:
    """Redirect file descriptors 1 and 2 (the compiler's output) to a file."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved = []
        try:
            for fd in (1, 2):
                self._saved.append((fd, os.dup(fd)))
                os.dup2(self._file.fileno(), fd)
        except OSError:  # no real file descriptors (embedded interpreter): do not capture
            self._restore()
        self.text = ""
        return self

    def _restore(self):
        for fd, saved in self._saved:
            os.dup2(saved, fd)
            os.close(saved)
        self._saved = []

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        self._restore()
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        return False


def _first_error_line(text):
    """The compiler's most telling line of output, shortened."""
    # Drop the probe's temporary path ("/tmp/.../omp_probe.c:2:10: fatal error: ...").
    lines = [re.sub(r"^\S*omp_probe\.\w+[:(\d,)]*:?\s*", "", ln.strip())
             for ln in text.splitlines() if ln.strip()]
    for key in ("omp.h", "cannot find", "undefined reference", "not found", "error", "unknown",
                "unsupported"):
        for ln in lines:
            if key in ln.lower():
                return ln if len(ln) <= 160 else ln[:157] + "..."
    return ""


class BuildExt(build_ext):
    """Adds OpenMP and the per-target kernel objects to the extension."""

    # ------------------------------------------------------------ compiler

    def _compiler_info(self):
        """{"family", "executable", "version"} of the C compiler in use."""
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            if not getattr(self.compiler, "initialized", True):
                self.compiler.initialize()
            exe = getattr(self.compiler, "cc", "cl.exe")
            banner = _run_quiet([exe])  # cl prints its version banner to stderr
            version = next((ln.strip() for ln in banner.splitlines() if "Version" in ln), "MSVC")
            return {"family": "msvc", "executable": exe, "version": version}
        cmd = list(getattr(self.compiler, "compiler_so", None) or ["cc"])
        while len(cmd) > 1 and os.path.basename(cmd[0]) in ("ccache", "sccache"):
            cmd = cmd[1:]
        exe = shutil.which(cmd[0]) or cmd[0]
        text = _run_quiet([exe, "--version"])
        version = text.strip().splitlines()[0].strip() if text.strip() else exe
        low = text.lower()
        if "apple clang" in low or ("clang" in low and "apple" in low):
            family = "apple-clang"
        elif "clang" in low:
            family = "clang"
        elif "free software foundation" in low or "gcc" in low:
            family = "gcc"
        else:
            family = "unknown"
        return {"family": family, "executable": exe, "version": version}

    # ------------------------------------------------------------ OpenMP

    @staticmethod
    def _libomp_prefix():
        """Apple clang: the first of LIBOMP_PREFIX, Homebrew's libomp, $CONDA_PREFIX with omp.h."""
        candidates = [os.environ.get("LIBOMP_PREFIX")]
        brew = shutil.which("brew")
        if brew:
            candidates += _run_quiet([brew, "--prefix", "libomp"]).strip().splitlines()[-1:]
        candidates += ["/opt/homebrew/opt/libomp", "/usr/local/opt/libomp",
                       os.environ.get("CONDA_PREFIX")]
        for prefix in candidates:
            if prefix and os.path.isfile(os.path.join(prefix, "include", "omp.h")):
                return prefix
        return os.environ.get("LIBOMP_PREFIX") or "/opt/homebrew/opt/libomp"

    def _openmp_flags(self, family):
        """(compile flags, link flags) that turn OpenMP on for this compiler family."""
        if family == "msvc":
            return ["/openmp"], []   # OpenMP 2.0; links vcomp140.dll by itself
        if family == "apple-clang":
            # Apple clang has the OpenMP front end but no runtime and no -fopenmp driver flag.
            prefix = self._libomp_prefix()
            return (["-Xpreprocessor", "-fopenmp", "-I" + os.path.join(prefix, "include")],
                    ["-L" + os.path.join(prefix, "lib"), "-lomp"])
        return ["-fopenmp"], ["-fopenmp"]   # GCC (libgomp), LLVM clang (libomp), icx

    def _probe_openmp(self, family, cflags, ldflags):
        """Compile, link and run a tiny OpenMP program; return '' or what was missing."""
        tmp = tempfile.mkdtemp(prefix="fastloss-omp-")
        runtime = OPENMP_RUNTIME[family]
        stage = "compile"
        cap = _CapturedOutput()
        try:
            src = os.path.join(tmp, "omp_probe.c")
            with open(src, "w") as f:
                f.write(OPENMP_PROBE)
            with cap:
                objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                stage = "link"
                exe = os.path.join(tmp, "omp_probe")
                self.compiler.link_executable(objs, exe, extra_postargs=ldflags)
            stage = "run"
            exe_path = exe + (".exe" if os.name == "nt" else "")
            out = subprocess.run([exe_path], capture_output=True, text=True, timeout=60)
            if out.returncode != 0 or out.stdout.strip() != "1":
                detail = _first_error_line(out.stderr) or "exit code %d" % out.returncode
                return ("an OpenMP test program built but did not run (%s); is %s on the "
                        "library path?" % (detail, runtime))
            return ""
        except Exception as exc:  # compile or link failed, or the program could not start
            output = cap.text + "\n" + str(exc)
            detail = _first_error_line(output)
            detail = " (%s)" % detail if detail else ""
            if stage == "compile":
                if re.search(r"omp\.h.*(not found|no such file|cannot open)", output, re.I):
                    return "the OpenMP header omp.h was not found with %s%s" % (
                        " ".join(cflags), detail)
                return "a small OpenMP program did not compile with %s%s" % (
                    " ".join(cflags), detail)
            if stage == "link":
                return "the OpenMP runtime %s could not be linked with %s%s" % (
                    runtime, " ".join(ldflags) or "the default libraries", detail)
            return "an OpenMP test program could not be run%s" % detail
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _configure_openmp(self, compiler):
        """(compile flags, link flags, build record) under FASTLOSS_OPENMP."""
        mode = os.environ.get("FASTLOSS_OPENMP", "auto").strip().lower()
        if mode not in ("auto", "1", "0"):
            raise SystemExit("error: fastloss: FASTLOSS_OPENMP must be auto, 1 or 0, not %r"
                             % mode)
        record = {"mode": mode, "built": False, "compile_flags": [], "link_flags": [],
                  "why_not": ""}
        if mode == "0":
            record["why_not"] = "FASTLOSS_OPENMP=0"
            return [], [], record
        family = compiler["family"]
        cflags, ldflags = self._openmp_flags(family)
        why = self._probe_openmp(family, cflags, ldflags)
        name = "%s compiler %s (%s)" % (family, compiler["executable"], compiler["version"])
        if why:
            record["why_not"] = why
            if mode == "1":
                raise SystemExit("error: fastloss: FASTLOSS_OPENMP=1 but the %s cannot build "
                                 "OpenMP code: %s; %s, or set FASTLOSS_OPENMP=0 to build "
                                 "serially." % (name, why, OPENMP_HINT[family]))
            print("WARNING: fastloss: building WITHOUT OpenMP (serial kernels): the %s cannot "
                  "build OpenMP code: %s; %s, or set FASTLOSS_OPENMP=0 to silence this."
                  % (name, why, OPENMP_HINT[family]), file=sys.stderr)
            return [], [], record
        record.update(built=True, compile_flags=cflags, link_flags=ldflags)
        return cflags, ldflags, record

    # ------------------------------------------------------------ SIMD

    def _simd_targets(self):
        if not _is_x86_64():
            return {}
        table = SIMD_TARGETS_MSVC if self.compiler.compiler_type == "msvc" else SIMD_TARGETS_UNIX
        wanted = os.environ.get("FASTLOSS_SIMD_TARGETS")
        if wanted is not None:
            names = [n.strip() for n in wanted.split(",") if n.strip()]
            unknown = [n for n in names if n not in table]
            if unknown:
                raise SystemExit("error: fastloss: FASTLOSS_SIMD_TARGETS: unknown target(s) "
                                 "%s; known: %s" % (unknown, sorted(table)))
            return {n: table[n] for n in names}
        return dict(table)

    # ------------------------------------------------------------ record

    def run(self):
        # setuptools' build_ext.run() clears self.inplace while it builds (and
        # copies the results into the source tree afterwards): remember it.
        self._fastloss_inplace = bool(self.inplace)
        super().run()

    def _write_build_info(self, info):
        """Write fastloss/_build_info.py where the built extension will be imported from.

        The build tree always (wheels are packed from it); the source tree too
        for in-place and editable builds, and only then (a `pip wheel .` in a
        checkout must not rewrite the record of its editable install)."""
        text = ('"""What this build of fastloss was built with: written by setup.py, not in git."""\n'
                "BUILD_INFO = %r\n" % (info,))
        targets = [os.path.join(self.build_lib, BUILD_INFO)]
        if getattr(self, "_fastloss_inplace", False):
            build_py = self.get_finalized_command("build_py")
            targets.append(os.path.join(build_py.get_package_dir("fastloss"), "_build_info.py"))
        for path in targets:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w") as f:
                f.write(text)

    # ------------------------------------------------------------ build

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            base = ["/O2"]
        else:
            base = ["-O3", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math",
                    "-Wall", "-Wno-unused-function"]
        ldbase = []
        if os.environ.get("FASTLOSS_SANITIZE") == "1" and ctype != "msvc":
            san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                   "-fno-sanitize-recover=undefined", "-O1", "-g"]
            base += san
            ldbase += ["-fsanitize=address,undefined"]

        compiler = self._compiler_info()
        omp_c, omp_l, omp_record = self._configure_openmp(compiler)
        self.fastloss_openmp = omp_record["built"]
        simd = [("baseline", [])] + sorted(self._simd_targets().items())

        # One object of kernels.c per SIMD target, each with its own flags.  They
        # compile in worker threads (each a compiler process) while the extension's
        # own sources compile here; the link waits for them.
        pool = ThreadPoolExecutor(max_workers=max(1, min(len(simd), os.cpu_count() or 1)))
        pending = []
        for ext in self.extensions:
            ext.extra_compile_args = base + omp_c + list(ext.extra_compile_args or [])
            ext.extra_link_args = ldbase + omp_l + list(ext.extra_link_args or [])
            if ext.name != "fastloss._core":
                continue
            objects = []
            macros = []
            for name, flags in simd:
                out_dir = os.path.join(self.build_temp, "simd_" + name)
                objects += self.compiler.object_filenames([KERNEL_SOURCE], output_dir=out_dir)
                pending.append(pool.submit(
                    self.compiler.compile, [KERNEL_SOURCE], output_dir=out_dir,
                    macros=[("FL_TARGET", name)], include_dirs=[SRC],
                    extra_postargs=base + flags, depends=ext.depends))
                if name != "baseline":
                    macros.append(("FL_HAVE_" + name.upper(), "1"))
            ext.extra_objects = objects
            ext.define_macros = list(ext.define_macros or []) + macros
        link = self.compiler.link_shared_object

        def link_after_kernels(*args, **kwargs):
            for f in pending:
                f.result()          # a kernel compile error is raised here
            return link(*args, **kwargs)

        self.compiler.link_shared_object = link_after_kernels

        import Cython
        import setuptools
        self._write_build_info({
            "compiler": compiler,
            "compiler_type": ctype,
            "openmp": omp_record,
            "simd_targets": [name for name, _ in simd],
            "sanitize": os.environ.get("FASTLOSS_SANITIZE") == "1",
            "build_python": sys.version.split()[0],
            "build_platform": platform.platform(),
            "build_numpy": np.__version__,
            "numpy_target_api": NUMPY_TARGET_API,
            "build_cython": Cython.__version__,
            "build_setuptools": setuptools.__version__,
        })
        try:
            super().build_extensions()
            for f in pending:
                f.result()
        finally:
            self.compiler.link_shared_object = link
            pool.shutdown(wait=True)


HEADERS = sorted(glob.glob(os.path.join(SRC, "*.h")))
# The public C API, installed as fastloss/include/ for fastloss.get_include():
# other extensions compile against it and call the kernels through the capsule
# table of fastloss._core (fastloss_api.h).  The rest of src_c/ is internal.
PUBLIC_HEADERS = ["fastloss.h", "fastloss_api.h"]


class BuildPy(build_py):
    """Also copies the public C headers into the package (fastloss/include/)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return   # an editable install finds them in src_c/ (see get_include)
        dest = os.path.join(self.build_lib, "fastloss", "include")
        self.mkpath(dest)
        for name in PUBLIC_HEADERS:
            self.copy_file(os.path.join(SRC, name), os.path.join(dest, name))

    def get_outputs(self, include_bytecode=True):
        dest = os.path.join(self.build_lib, "fastloss", "include")
        return (super().get_outputs(include_bytecode)
                + [os.path.join(dest, name) for name in PUBLIC_HEADERS])

# The oldest NumPy C API the extension uses.  Built against NumPy 2.x headers,
# the extension then imports on every NumPy >= 1.23 (NumPy's C-API backward
# compatibility): the runtime floor in pyproject.toml's dependencies follows it.
NUMPY_TARGET_API = "1.23"

extensions = [
    Extension(
        "fastloss._core",
        sources=["fastloss/_core.pyx", os.path.join(SRC, "dispatch.c")],
        include_dirs=[SRC, np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"),
                       ("NPY_TARGET_VERSION",
                        "NPY_%s_API_VERSION" % NUMPY_TARGET_API.replace(".", "_"))],
        depends=HEADERS + [KERNEL_SOURCE],
    )
]

setup(
    ext_modules=cythonize(extensions, language_level=3,
                          # autotestdict off: no `__test__` doctest dict in the module
                          # (fastloss/_core.pyi describes everything it exports).
                          compiler_directives={"boundscheck": False, "wraparound": False,
                                               "cdivision": True, "initializedcheck": False,
                                               "autotestdict": False}),
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy},
)
