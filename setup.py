"""Build of fastloss's C core.

The C kernels (src_c/kernels.c) are compiled once per SIMD target with that
target's flags and a name suffix; src_c/dispatch.c picks one at run time.
OpenMP is probed by compiling, linking and running a tiny program.

Environment:
  FASTLOSS_OPENMP   auto (default: probe, build serially with a warning if it
                    fails), 1 (fail the build without OpenMP), 0 (serial).
  FASTLOSS_SIMD_TARGETS  comma list of extra targets to build (default: all
                    the compiler supports: avx2,avx512 on x86-64).
  FASTLOSS_SANITIZE  1: compile and link with -fsanitize=address,undefined.
"""
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = "src_c"
KERNEL_SOURCE = os.path.join(SRC, "kernels.c")

# Flags of each SIMD build of kernels.c, by compiler family.  No -ffast-math
# (it breaks the inf/NaN contract) and no -march=native (not portable).
# -fno-math-errno / -fno-trapping-math change no result: they only let the
# compiler if-convert and vectorise.
SIMD_TARGETS_UNIX = {
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma",
               "-mprefer-vector-width=512"],
}
SIMD_TARGETS_MSVC = {"avx2": ["/arch:AVX2"], "avx512": ["/arch:AVX512"]}

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n > 0 && n == omp_get_max_threads());
        return 0;
    }
    """
)


def _is_x86_64():
    return platform.machine().lower() in ("x86_64", "amd64", "x64")


class BuildExt(build_ext):
    """Adds OpenMP and the per-target kernel objects to the extension."""

    def _openmp_flags(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            return ["/openmp"], []
        if sys.platform == "darwin":
            # Apple clang: libomp from Homebrew (brew install libomp).
            prefix = os.environ.get("LIBOMP_PREFIX", "/opt/homebrew/opt/libomp")
            if not os.path.isdir(prefix):
                prefix = "/usr/local/opt/libomp"
            return (["-Xpreprocessor", "-fopenmp", "-I" + os.path.join(prefix, "include")],
                    ["-L" + os.path.join(prefix, "lib"), "-lomp"])
        return ["-fopenmp"], ["-fopenmp"]

    def _probe_openmp(self, cflags, ldflags):
        """Compile, link and run a tiny OpenMP program; return '' or the failure."""
        tmp = tempfile.mkdtemp(prefix="fastloss-omp-")
        try:
            src = os.path.join(tmp, "omp_probe.c")
            with open(src, "w") as f:
                f.write(OPENMP_PROBE)
            objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            exe = os.path.join(tmp, "omp_probe")
            self.compiler.link_executable(objs, exe, extra_postargs=ldflags)
            out = subprocess.run([exe + (".exe" if os.name == "nt" else "")],
                                 capture_output=True, text=True, timeout=60)
            if out.returncode != 0 or out.stdout.strip() != "1":
                return "the OpenMP test program ran but misbehaved: %r" % out.stdout
            return ""
        except Exception as exc:  # compile, link or run failed
            return "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[-1:] or exc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _simd_targets(self):
        if not _is_x86_64():
            return {}
        table = SIMD_TARGETS_MSVC if self.compiler.compiler_type == "msvc" else SIMD_TARGETS_UNIX
        wanted = os.environ.get("FASTLOSS_SIMD_TARGETS")
        if wanted is not None:
            names = [n.strip() for n in wanted.split(",") if n.strip()]
            unknown = [n for n in names if n not in table]
            if unknown:
                raise SystemExit("FASTLOSS_SIMD_TARGETS: unknown target(s) %s; known: %s"
                                 % (unknown, sorted(table)))
            return {n: table[n] for n in names}
        return dict(table)

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

        mode = os.environ.get("FASTLOSS_OPENMP", "auto").strip().lower()
        if mode not in ("auto", "1", "0"):
            raise SystemExit("FASTLOSS_OPENMP must be auto, 1 or 0, not %r" % mode)
        omp_c, omp_l = [], []
        if mode != "0":
            cflags, ldflags = self._openmp_flags()
            why = self._probe_openmp(cflags, ldflags)
            if not why:
                omp_c, omp_l = cflags, ldflags
            elif mode == "1":
                cc = getattr(self.compiler, "compiler_so", [ctype])[0]
                raise SystemExit("fastloss: FASTLOSS_OPENMP=1 but the %s compiler %r cannot "
                                 "build OpenMP code (%s)" % (ctype, cc, why))
            else:
                print("WARNING: fastloss: OpenMP is not available (%s); building a serial "
                      "extension." % why, file=sys.stderr)
        self.fastloss_openmp = bool(omp_c)

        for ext in self.extensions:
            ext.extra_compile_args = base + omp_c + list(ext.extra_compile_args or [])
            ext.extra_link_args = ldbase + omp_l + list(ext.extra_link_args or [])
            if ext.name != "fastloss._core":
                continue
            # One object of kernels.c per SIMD target, each with its own flags.
            objects = []
            macros = []
            for name, flags in [("baseline", [])] + sorted(self._simd_targets().items()):
                out_dir = os.path.join(self.build_temp, "simd_" + name)
                objects += self.compiler.compile(
                    [KERNEL_SOURCE], output_dir=out_dir,
                    macros=[("FL_TARGET", name)], include_dirs=[SRC],
                    extra_postargs=base + flags, depends=ext.depends)
                if name != "baseline":
                    macros.append(("FL_HAVE_" + name.upper(), "1"))
            ext.extra_objects = objects
            ext.define_macros = list(ext.define_macros or []) + macros
        super().build_extensions()


HEADERS = [os.path.join(SRC, h) for h in
           ("fastloss.h", "fl_internal.h", "fl_math.h", "softmax_ce.h", "sigmoid_ce.h",
            "hinge.h", "mse.h")]

extensions = [
    Extension(
        "fastloss._core",
        sources=["fastloss/_core.pyx", os.path.join(SRC, "dispatch.c")],
        include_dirs=[SRC, np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        depends=HEADERS + [KERNEL_SOURCE],
    )
]

setup(
    ext_modules=cythonize(extensions, language_level=3,
                          compiler_directives={"boundscheck": False, "wraparound": False,
                                               "cdivision": True, "initializedcheck": False}),
    cmdclass={"build_ext": BuildExt},
)
