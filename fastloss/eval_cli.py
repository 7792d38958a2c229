"""``fastloss eval``: a loss and its metrics over .npy / .npz files, in bounded memory.

    fastloss eval logits.npy labels.npy                    # softmax CE, accuracy, top-5
    fastloss eval data.npz --loss sigmoid --json           # arrays 'pred'/'target' of one .npz
    fastloss eval s.npy y.npy --loss hinge --multiclass crammer_singer --memory 256M

The predictions and targets are memory-mapped (.npy files and the members of an uncompressed
.npz; members of a compressed .npz are streamed through zlib) and evaluated chunk by chunk of
rows (axis 0) with :class:`fastloss.Evaluator`, so a file larger than RAM is evaluated with
bounded memory: each chunk's pages are read ahead while the previous chunk is computed
(``posix_fadvise(WILLNEED)``), and each chunk is a memory map of just its own rows, unmapped
once it is done (its pages stay in the OS page cache, which the process's RSS does not count),
so the address space stays bounded too (a ``ulimit -v`` cap works).
``--memory`` sets the budget of the whole process (default 1 GiB); the chunk size follows.

Each chunk is one call of the kernels, whose OpenMP threads wait for one another at its end; on
a machine busy with other work, ``OMP_WAIT_POLICY=passive`` (set before Python starts) stops the
waiting threads from spinning and saves CPU time (about 25% of it with 2 threads on 2 busy
cores, in the measures of bench/eval_measure.py).

Exit status: 0 on success, 1 when the data is at fault (a missing or unreadable file, a shape
or dtype mismatch, a label out of range), 2 for a bad command line; the error is one line on
stderr naming the problem.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import mmap
import os
import re
import struct
import sys
import time
import zipfile
import zlib

import numpy as np

from .evaluate import LOSSES, Evaluator, resolve_loss

__all__ = ["main", "evaluate_files"]

PROG = "fastloss eval"
DEFAULT_MEMORY = 1 << 30
MAX_CHUNK_BYTES = 256 << 20         # larger chunks buy little: each is one kernel call
_PAGE = mmap.PAGESIZE

_PRED_KEYS = ("pred", "logits", "scores", "predictions", "y_pred", "x")
_TARGET_KEYS = ("target", "targets", "labels", "label", "y", "y_true")


# what reading a damaged file or zip member raises (zlib.error: a bad deflate stream;
# BadZipFile: a bad CRC or header)
_READ_ERRORS = (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, struct.error)


class DataError(Exception):
    """The data is at fault: exit status 1."""


class UsageError(Exception):
    """The command line is at fault: exit status 2."""


# ------------------------------------------------------------------ arrays on disk

class _Source:
    """One array of a .npy file or .npz member, read in chunks of rows (axis 0)."""

    def __init__(self, spec, role, default_keys=()):
        self.spec, self.role = spec, role
        self._file = self._stream = None
        self._mapped = False
        self._crc = None                   # a stored .npz member: (crc so far, next row, zip info)
        path, key = _split_spec(spec)
        if not os.path.exists(path):
            raise DataError("%s file %s does not exist" % (role, path))
        if os.path.isdir(path):
            raise DataError("%s file %s is a directory" % (role, path))
        self.path = path
        low = path.lower()
        try:
            if low.endswith(".npy"):
                if key is not None:
                    raise DataError("%s: a .npy file holds one array; only a .npz takes :KEY"
                                    % spec)
                self._open_npy(path)
            elif low.endswith(".npz"):
                self._open_npz(path, key, default_keys)
            else:
                raise DataError("%s file %s is not a .npy or .npz file" % (role, path))
        except _READ_ERRORS as e:
            self.close()
            raise DataError("%s file %s cannot be read: %s" % (role, spec, _one_line(e))) \
                from None
        except DataError:
            self.close()
            raise
        if self.fortran and len(self.shape) > 1:
            self.close()
            raise DataError("%s in %s is stored in Fortran order, which cannot be read by rows; "
                            "save it in C order (np.save(path, np.ascontiguousarray(a)))"
                            % (role, spec))
        self.n_rows = self.shape[0] if self.shape else 1
        self.row_bytes = self.dtype.itemsize * math.prod(self.shape[1:])
        self.nbytes = self.dtype.itemsize * math.prod(self.shape)
        self._pos = 0

    # -- opening

    def _open_npy(self, path):
        self._file = open(path, "rb")
        self._read_header(self._file)
        self._map(self._file.tell())

    def _open_npz(self, path, key, default_keys):
        with zipfile.ZipFile(path) as zf:
            names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            if key is None:
                if len(names) == 1:
                    key = names[0]
                else:
                    key = next((k for k in default_keys if k in names), None)
                    if key is None:
                        raise DataError(
                            "%s has arrays %s and none is named %s; say which holds the %s "
                            "with %s:KEY" % (path, ", ".join(names) or "(none)",
                                             " or ".join(default_keys[:3]), self.role, path))
            elif key not in names:
                raise DataError("%s has no array %r (it has %s)"
                                % (path, key, ", ".join(names) or "none"))
            info = zf.getinfo(key + ".npy")
        self.spec = "%s:%s" % (path, key)
        self._file = open(path, "rb")
        if info.compress_type == zipfile.ZIP_STORED:
            # The member's bytes lie in the file as they are: map them.
            self._file.seek(info.header_offset)
            head = self._file.read(30)
            if head[:4] != b"PK\x03\x04":
                raise DataError("%s is a damaged .npz (bad local header of %s)" % (path, key))
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            if info.compress_size != info.file_size:
                raise DataError("%s is a damaged .npz (%s is stored with %d bytes but holds "
                                "%d)" % (path, key, info.compress_size, info.file_size))
            self._file.seek(start)
            self._read_header(self._file)
            # the member's data ends where the zip says, not at the end of the file
            self._map(self._file.tell(), start + info.compress_size)
            # its CRC (which np.load checks) is taken over the rows as they are read, in order
            here = self._file.tell()
            self._file.seek(start)
            self._crc = (zlib.crc32(self._file.read(here - start)), 0, info, start)
        else:
            # Compressed (np.savez_compressed): stream it, chunk after chunk.
            self._zip = zipfile.ZipFile(self._file)
            self._stream = self._zip.open(info)
            self._read_header(self._stream)

    def _read_header(self, f):
        fmt = np.lib.format
        version = fmt.read_magic(f)
        if version == (1, 0):
            self.shape, self.fortran, self.dtype = fmt.read_array_header_1_0(f)
        else:       # 2.0, and 3.0 (a UTF-8 header: the same for the field names NumPy writes)
            self.shape, self.fortran, self.dtype = fmt.read_array_header_2_0(f)
        if self.dtype.hasobject:
            raise DataError("%s in %s holds Python objects (dtype %s); fastloss eval reads "
                            "numeric arrays" % (self.role, self.spec, self.dtype))

    def _map(self, offset, end=None):
        """Map the data from offset; `end` is where the bytes of this array end (a .npz
        member's end), the end of the file by default."""
        self._offset = offset
        self._mapped = False
        size = os.fstat(self._file.fileno()).st_size
        if end is not None:
            size = min(size, end)
        nbytes = self.dtype.itemsize * math.prod(self.shape)
        if size < offset + nbytes:
            raise DataError("%s file %s is truncated: %d bytes of data expected, %d found"
                            % (self.role, self.path, nbytes, max(0, size - offset)))
        self._mapped = True
        self._windows = {}                   # start row -> mmap of that chunk's bytes
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._file.fileno(), offset, nbytes, os.POSIX_FADV_SEQUENTIAL)

    def _span(self, start, stop):
        """Byte range [lo, hi) of rows [start, stop) in the file."""
        return (self._offset + start * self.row_bytes,
                self._offset + (stop if self.shape else 1) * self.row_bytes)

    # -- reading

    def rows(self, start, stop):
        """Rows [start, stop) as a read-only ndarray: a memory map of just those rows'
        bytes (released by :meth:`release`), or the next bytes of a compressed member."""
        shape = (stop - start,) + tuple(self.shape[1:]) if self.shape else ()
        if self._mapped:
            lo, hi = self._span(start, stop)
            if hi <= lo:
                self._check_crc(start, stop, b"")
                return np.empty(shape, self.dtype)
            base = lo - lo % mmap.ALLOCATIONGRANULARITY
            mm = _map_window(self._file.fileno(), hi - base, base)
            self._windows[start] = mm
            self._check_crc(start, stop, memoryview(mm)[lo - base:])
            return np.ndarray(shape, self.dtype, buffer=mm, offset=lo - base)
        if self._stream is not None:
            if start != self._pos:
                raise RuntimeError("compressed members are read in order")
            n = (stop - start) * self.row_bytes if self.shape else self.dtype.itemsize
            try:
                buf = self._stream.read(n)
                if len(buf) == n and stop >= self.n_rows:
                    # the last rows: read to the member's end, where zipfile checks the CRC
                    while self._stream.read(1 << 20):
                        pass
            except _READ_ERRORS as e:
                raise DataError("%s in %s is damaged: %s" % (self.role, self.spec, _one_line(e))) \
                    from None
            if len(buf) != n:
                raise DataError("%s in %s is truncated" % (self.role, self.spec))
            self._pos = stop
            return np.frombuffer(buf, self.dtype).reshape(shape)
        return np.empty(shape, self.dtype)

    def _check_crc(self, start, stop, data):
        """Add rows [start, stop) to the CRC of a stored .npz member; after its last row
        (and any bytes behind the array), compare with the zip's: a flipped byte is a data
        error, as np.load makes it, not a wrong number."""
        if self._crc is None:
            return
        crc, row, info, member_start = self._crc
        if start != row:                     # not read in order: no CRC (never in eval)
            self._crc = None
            return
        crc = zlib.crc32(data, crc)
        if stop >= self.n_rows:
            end = member_start + info.compress_size
            tail = end - (self._offset + self.nbytes)
            if tail > 0:
                self._file.seek(self._offset + self.nbytes)
                crc = zlib.crc32(self._file.read(tail), crc)
            self._crc = None
            if crc != info.CRC:
                raise DataError("%s in %s is damaged: its CRC does not match the zip's"
                                % (self.role, self.spec))
            return
        self._crc = (crc, stop, info, member_start)

    def prefetch(self, start, stop):
        """Ask the OS to read rows [start, stop) into its page cache, in the background."""
        if self._mapped and stop > start and hasattr(os, "posix_fadvise"):
            lo, hi = self._span(start, stop)
            os.posix_fadvise(self._file.fileno(), lo, hi - lo, os.POSIX_FADV_WILLNEED)

    def release(self, start, stop):
        """Unmap the rows read from ``start`` (their pages stay in the OS page cache, which
        the process's RSS does not count)."""
        mm = self._windows.pop(start, None) if self._mapped else None
        if mm is not None:
            try:
                mm.close()
            except BufferError:      # a view is still alive: the map goes with it
                pass

    def load(self):
        """The whole array in memory (for small arrays: class weights ...)."""
        return np.array(self.rows(0, self.n_rows)) if self.shape else np.array(self.rows(0, 1))

    def close(self):
        for obj in (self._stream, getattr(self, "_zip", None)):
            if obj is not None:
                obj.close()
        for start in list(getattr(self, "_windows", ())):
            self.release(start, None)
        if self._file is not None:
            self._file.close()


def _map_window(fd, length, offset):
    """A read-only map of length bytes at offset; on Linux populated at once (MAP_POPULATE:
    the page-table work is done here, in the reading thread, not by page faults in the
    kernels' threads)."""
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if populate and hasattr(mmap, "MAP_SHARED"):
        return mmap.mmap(fd, length, flags=mmap.MAP_SHARED | populate, prot=mmap.PROT_READ,
                         offset=offset)
    return mmap.mmap(fd, length, offset=offset, access=mmap.ACCESS_READ)


def _split_spec(spec):
    m = re.match(r"^(.*\.npz):([^/\\]+)$", spec, flags=re.IGNORECASE)
    return (m.group(1), m.group(2)) if m else (spec, None)


def _one_line(e):
    return " ".join(str(e).split()) or type(e).__name__


# ------------------------------------------------------------------ sizes

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 10**6,
          "mib": 1 << 20, "g": 1 << 30, "gb": 10**9, "gib": 1 << 30, "t": 1 << 40,
          "tb": 10**12, "tib": 1 << 40}


def parse_size(text):
    """'512M', '1GiB', '1.5g', '1000000' -> bytes (K/M/G alone are binary: 1G = 1 GiB)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError("not a size: %r (try 512M or 1GiB)" % (text,))
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value <= 0:
        raise argparse.ArgumentTypeError("the size must be positive, not %r" % (text,))
    return value


def _peak_rss_bytes():
    """Peak resident set size of this process so far (None where unknown)."""
    try:
        with open("/proc/self/status") as f:        # VmHWM: this process's own, also after a
            for line in f:                           # fork from a big parent (ru_maxrss is not)
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except Exception:                                # pragma: no cover
        return None


def _rss_bytes():
    """Current resident set size of this process (0 where unknown)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        try:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak if sys.platform == "darwin" else peak * 1024
        except Exception:                                     # pragma: no cover
            return 0


def plan_chunk_rows(row_bytes, copy_bytes, n_rows, memory, baseline):
    """Rows per chunk: two chunks of mapped rows (the one computed and the one read ahead)
    plus the conversions of one chunk fit in ``memory - baseline``; at most 256 MiB mapped."""
    per_row = 2 * row_bytes + copy_bytes
    free = memory - baseline
    if per_row == 0:
        return max(1, n_rows)
    if free < per_row:
        raise UsageError("--memory %s leaves no room for one row (%s) beside the %s this "
                         "process already uses" % (_fmt_bytes(memory), _fmt_bytes(per_row),
                                                   _fmt_bytes(baseline)))
    rows = free // per_row
    if row_bytes:
        rows = min(rows, max(1, MAX_CHUNK_BYTES // row_bytes))
    return int(max(1, min(rows, max(n_rows, 1))))


def _fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0


# ------------------------------------------------------------------ the command line

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _parser():
    p = _Parser(
        prog=PROG,
        description="Evaluate a loss (and accuracy / top-k accuracy for class losses) over "
                    ".npy / .npz files of predictions and targets, memory-mapped and "
                    "processed in chunks of rows so that files larger than RAM work.",
        epilog="FILE is path.npy, path.npz (the array named pred/logits/scores for "
               "predictions, target/labels/y for targets, or the only one) or path.npz:KEY. "
               "Exit status: 0 ok, 1 bad data (missing file, shape, dtype, label), "
               "2 bad options.")
    p.add_argument("pred", metavar="PRED", help="predictions (logits / scores): FILE")
    p.add_argument("target", metavar="TARGET", nargs="?",
                   help="targets: FILE (default: the same .npz as PRED)")
    p.add_argument("-l", "--loss", default="softmax_cross_entropy",
                   help="softmax_cross_entropy (default; alias softmax, ce), "
                        "sigmoid_cross_entropy (sigmoid, bce), hinge, mse")
    p.add_argument("--reduction", default="mean",
                   choices=("mean", "sum", "batchmean", "fullmean"),
                   help="mean (default; torch's, Caffe's VALID), sum (Caffe's NONE), batchmean "
                        "(the sum / rows along axis 0: Caffe's BATCH_SIZE), fullmean (the sum / "
                        "every output location, ignored ones included: Caffe's FULL)")
    p.add_argument("-k", "--top-k", type=int, default=5,
                   help="k of the top-k accuracy of class losses (default 5; 0: no accuracy)")
    g = p.add_argument_group("loss options (as the Python functions name them)")
    g.add_argument("--weight", metavar="FILE",
                   help="class weights (softmax, hinge) or an elementwise weight (sigmoid, mse: "
                        "broadcast, or of pred's shape, then read in chunks with it)")
    g.add_argument("--sample-weight", metavar="FILE",
                   help="one weight per row (softmax, hinge), read in chunks")
    g.add_argument("--pos-weight", metavar="FILE", help="sigmoid: weight of positives")
    g.add_argument("--ignore-index", type=int,
                   help="softmax: label to ignore (default -100); sigmoid: target value whose "
                        "elements are ignored (Caffe's ignore_label, e.g. -1 or 255; default none)")
    g.add_argument("--label-smoothing", type=float, help="softmax: in [0, 1]")
    g.add_argument("--axis", type=int, help="softmax, hinge: the class axis (default -1)")
    g.add_argument("--margin", type=float, help="hinge (default 1)")
    g.add_argument("--squared", action="store_true", default=None, help="hinge: squared")
    g.add_argument("--multiclass", choices=("ovr", "weston_watkins", "crammer_singer"),
                   help="hinge (default ovr)")
    for opt, text in _EXTRA_FLAGS.items():
        g.add_argument("--" + opt.replace("_", "-"), type=float, metavar="X", help=text)
    r = p.add_argument_group("running")
    r.add_argument("--memory", type=parse_size, default=DEFAULT_MEMORY, metavar="SIZE",
                   help="memory budget of the process, e.g. 512M, 1GiB (default 1GiB); "
                        "sets the chunk size")
    r.add_argument("--chunk-rows", type=int, metavar="N",
                   help="rows per chunk (default: from --memory, at most 256 MiB of pred "
                        "and targets)")
    r.add_argument("--threads", type=int, metavar="N", help="threads of each kernel call")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    bar = r.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None,
                     help="show a progress bar with rows/s (tqdm; default: when stderr is a "
                          "terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    return p


# option flag -> (Evaluator option, losses it applies to)
_LOSS_FLAGS = {
    "ignore_index": ("--ignore-index", ("softmax_cross_entropy", "sigmoid_cross_entropy")),
    "label_smoothing": ("--label-smoothing", ("softmax_cross_entropy",)),
    "axis": ("--axis", ("softmax_cross_entropy", "hinge")),
    "margin": ("--margin", ("hinge",)),
    "squared": ("--squared", ("hinge",)),
    "multiclass": ("--multiclass", ("hinge",)),
    "pos_weight": ("--pos-weight", ("sigmoid_cross_entropy",)),
    "sample_weight": ("--sample-weight", ("softmax_cross_entropy", "hinge")),
}


# options beyond PyTorch's: valid for the losses whose kernels have them (LOSSES[...].extra)
_EXTRA_FLAGS = {
    "z_loss": "softmax: z-loss coefficient",
    "softcap": "softmax: logit soft-capping",
    "focal_gamma": "focal loss gamma",
    "focal_alpha": "sigmoid: focal loss alpha",
    "poly1_epsilon": "poly-1 epsilon",
}


def _check_args(a):
    try:
        a.loss = resolve_loss(a.loss)
    except ValueError as e:
        raise UsageError("--loss: " + str(e)) from None
    for opt, (flag, losses) in _LOSS_FLAGS.items():
        if getattr(a, opt) is not None and a.loss not in losses:
            raise UsageError("%s applies to %s, not to --loss %s"
                             % (flag, " and ".join(losses), a.loss))
    for opt in _EXTRA_FLAGS:
        if getattr(a, opt) is not None and opt not in LOSSES[a.loss].extra:
            have = [name for name, sp in LOSSES.items() if opt in sp.extra]
            raise UsageError("--%s applies to %s, not to --loss %s"
                             % (opt.replace("_", "-"), " and ".join(have) or "no loss of this "
                                "build", a.loss))
    if a.top_k < 0:
        raise UsageError("--top-k must be >= 0 (0: no accuracy), not %d" % a.top_k)
    if a.chunk_rows is not None and a.chunk_rows < 1:
        raise UsageError("--chunk-rows must be >= 1, not %d" % a.chunk_rows)
    if a.threads is not None and a.threads < 1:
        raise UsageError("--threads must be >= 1, not %d" % a.threads)
    if a.label_smoothing is not None and not 0.0 <= a.label_smoothing <= 1.0:
        raise UsageError("--label-smoothing must be in [0, 1], not %r" % a.label_smoothing)
    if a.target is None and not _split_spec(a.pred)[0].lower().endswith(".npz"):
        raise UsageError("give TARGET, or a .npz PRED that holds both arrays")
    # every option's domain (--z-loss -1, --softcap inf, ...), before any file is read
    scalars = {opt: getattr(a, opt) for opt in ("ignore_index", "label_smoothing", "axis",
                                                "margin", "squared", "multiclass",
                                                *_EXTRA_FLAGS)
               if getattr(a, opt) is not None}
    try:
        Evaluator(a.loss, reduction=a.reduction, top_k=a.top_k or None, n_threads=a.threads,
                  **scalars)
    except ValueError as e:
        raise UsageError(_flag_message(str(e))) from None


def _flag_message(msg):
    """An option's error as the command line names it: --softcap, not softcap."""
    return re.sub(r"^([a-z][a-z0-9]*(?:_[a-z0-9]+)*) must",
                  lambda m: "--%s must" % m.group(1).replace("_", "-"), msg)


def _check_shapes(loss, opts, pred, target):
    """Full-size shape checks before anything is read (the kernels check each chunk too)."""
    ps, ts = tuple(pred.shape), tuple(target.shape)
    what = "pred %s has shape %s but target %s has shape %s" % (pred.spec, ps, target.spec, ts)
    if not pred.dtype.kind == "f" or pred.dtype.itemsize not in (4, 8):
        raise DataError("pred %s has dtype %s; fastloss accepts float32 or float64"
                        % (pred.spec, pred.dtype))
    if target.dtype.kind not in "biuf":
        raise DataError("target %s has dtype %s; expected numbers" % (target.spec, target.dtype))
    if len(ps) >= 1 and len(ts) >= 1 and ps[0] != ts[0]:
        raise DataError("%s: %d rows against %d" % (what, ps[0], ts[0]))
    if LOSSES[loss].classes and not (loss == "hinge" and len(ps) <= 1):
        if len(ps) < 2:
            raise DataError("pred %s has shape %s; %s needs rows on axis 0 and a class axis"
                            % (pred.spec, ps, loss))
        ax = opts.get("axis", -1)
        if not -len(ps) <= ax < len(ps) or ax % len(ps) == 0:
            raise DataError("--axis %d is not a class axis of pred %s with shape %s (axis 0 "
                            "holds the rows)" % (ax, pred.spec, ps))
        row_shape = ps[:ax % len(ps)] + ps[ax % len(ps) + 1:]
        if ts not in (ps, row_shape):
            raise DataError("%s; expected labels of shape %s or targets of shape %s"
                            % (what, row_shape, ps))
        if loss == "softmax_cross_entropy":
            if target.dtype.kind in "iu" and ts != row_shape:
                raise DataError("%s; integer labels need shape %s" % (what, row_shape))
            if target.dtype.kind == "f" and ts != ps:
                raise DataError("%s; probability targets need pred's shape" % what)
            if target.dtype.kind == "b":
                raise DataError("target %s has dtype bool; softmax cross-entropy takes integer "
                                "labels or floating probabilities" % target.spec)
        return row_shape
    if ts != ps:
        raise DataError("%s; they must be equal" % what)
    return ps


def _copy_bytes(loss, pred, target):
    """Bytes per row the kernels' conversions may allocate (labels to int64, targets to
    pred's dtype, hinge's +-1 targets and hit counting)."""
    per_elem = max(8, pred.dtype.itemsize)
    t_elems = math.prod(target.shape[1:])
    p_elems = math.prod(pred.shape[1:])
    extra = per_elem * t_elems
    if loss == "hinge":
        extra += 2 * per_elem * t_elems + p_elems       # np.unique / 2t-1, the hit mask
    return extra


def evaluate_files(args, progress=None):
    """Run the evaluation of parsed arguments; returns (EvalResult, info dict)."""
    loss = args.loss
    spec = LOSSES[loss]
    opts = {}
    for opt in ("ignore_index", "label_smoothing", "axis", "margin", "squared", "multiclass",
                *_EXTRA_FLAGS):
        if getattr(args, opt) is not None:
            opts[opt] = getattr(args, opt)
    sources = []
    try:
        pred = _Source(args.pred, "pred", _PRED_KEYS)
        sources.append(pred)
        target_spec = args.target
        if target_spec is None:
            target_spec = _split_spec(args.pred)[0]
        target = _Source(target_spec, "target", _TARGET_KEYS)
        sources.append(target)
        if pred.spec == target.spec:
            raise DataError("pred and target are the same array (%s)%s" % (
                pred.spec, "; name the target with %s:KEY" % pred.path
                if pred.path.lower().endswith(".npz") else ""))
        row_shape = _check_shapes(loss, opts, pred, target)
        chunked = {}                                 # update() keyword -> _Source
        if args.sample_weight is not None:
            sw = _Source(args.sample_weight, "sample_weight")
            sources.append(sw)
            if tuple(sw.shape) != tuple(row_shape):
                raise DataError("sample_weight %s has shape %s but must have the row shape %s"
                                % (sw.spec, tuple(sw.shape), tuple(row_shape)))
            chunked["sample_weight"] = sw
        if args.weight is not None:
            w = _Source(args.weight, "weight")
            sources.append(w)
            if (not spec.classes and len(w.shape) == len(pred.shape) and len(w.shape) >= 1
                    and w.shape[0] == pred.shape[0] and pred.shape[0] != 1):
                chunked["weight"] = w                # varies along the rows: read in chunks
            elif w.nbytes > (64 << 20):
                raise DataError("weight %s has shape %s, which is not read in chunks with pred "
                                "of shape %s; give it pred's shape or a broadcastable one"
                                % (w.spec, tuple(w.shape), tuple(pred.shape)))
            else:
                opts["weight"] = w.load()
                if spec.classes and len(pred.shape) >= 2:
                    n_classes = pred.shape[opts.get("axis", -1)]
                    if tuple(w.shape) != (n_classes,):
                        raise DataError("weight %s has shape %s but must have one value per "
                                        "class, shape (%d,)" % (w.spec, tuple(w.shape),
                                                                n_classes))
        if args.pos_weight is not None:
            pw = _Source(args.pos_weight, "pos_weight")
            sources.append(pw)
            opts["pos_weight"] = pw.load()
        for s in list(chunked.values()) + [target]:
            if s.dtype.kind not in "biuf":
                raise DataError("%s %s has dtype %s; expected numbers"
                                % (s.role, s.spec, s.dtype))
        try:
            ev = Evaluator(loss, reduction=args.reduction, top_k=args.top_k or None,
                           n_threads=args.threads, **opts)
        except ValueError as e:
            raise UsageError(str(e)) from None

        n = pred.n_rows
        if args.chunk_rows is not None:
            chunk = args.chunk_rows
        else:
            row_bytes = sum(s.row_bytes for s in [pred, target, *chunked.values()])
            copies = _copy_bytes(loss, pred, target) + 8 * sum(
                math.prod(s.shape[1:]) for s in chunked.values())
            chunk = plan_chunk_rows(row_bytes, copies, n, args.memory, _rss_bytes())

        bar = progress(n) if progress is not None else None
        t0, cpu0 = time.perf_counter(), time.process_time()
        streams = [pred, target, *chunked.values()]
        bounds = [(i, min(n, i + chunk)) for i in range(0, n, chunk)] or [(0, 0)]

        def load(k):
            """Map (and populate) chunk k of every stream; ask the OS for chunk k + 1."""
            start, stop = bounds[k]
            if k + 1 < len(bounds):
                for s in streams:
                    s.prefetch(*bounds[k + 1])
            return [s.rows(start, stop) for s in streams]

        def release(k):
            for s in streams:
                s.release(*bounds[k])

        # One thread maps chunk k + 1 while the kernels compute chunk k, and unmaps chunk k
        # afterwards (the GIL is free during all three), so that reading the file overlaps
        # the computation and the kernels' threads wait as little as possible between chunks.
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fastloss-eval") \
                as pool:
            ahead = pool.submit(load, 0)
            for k, (start, stop) in enumerate(bounds):
                arrays = ahead.result()
                if k + 1 < len(bounds):
                    ahead = pool.submit(load, k + 1)
                kw = dict(zip(chunked, arrays[2:]))
                try:
                    ev.update(arrays[0], arrays[1], **kw)
                except (ValueError, TypeError) as e:
                    raise DataError(_chunk_error(e, start, stop, n)) from None
                finally:
                    del arrays, kw
                    pool.submit(release, k)
                if bar is not None:
                    bar.update(stop - start)
        n_chunks = len(bounds)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if bar is not None:
            bar.close()
        info = {"pred": pred.spec, "target": target.spec, "rows": n, "chunk_rows": chunk,
                "chunks": n_chunks, "seconds": seconds, "cpu_seconds": cpu,
                "rows_per_second": n / seconds if seconds > 0 else None,
                "bytes_per_second": pred.nbytes / seconds if seconds > 0 else None,
                "peak_rss_bytes": _peak_rss_bytes()}
        return ev.result(), info
    finally:
        for s in sources:
            s.close()


def _chunk_error(e, start, stop, n):
    """The message of an error in rows [start, stop), with positions in the files."""
    msg = _one_line(e)
    if start and re.search(r"at position \(\d+", msg):          # a label: file position
        return re.sub(r"at position \((\d+)",
                      lambda m: "at position (%d" % (int(m.group(1)) + start), msg)
    if start or stop < n:
        msg += " (in rows %d to %d of the files)" % (start, stop - 1)
    return msg


def _progress_factory(enabled):
    if enabled is False:
        return None
    if enabled is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        if enabled:
            print("%s: note: --progress needs tqdm (pip install tqdm); going on without it"
                  % PROG, file=sys.stderr)
        return None

    def make(total):
        return tqdm(total=total, unit="row", unit_scale=True, desc="eval", file=sys.stderr,
                    dynamic_ncols=True, smoothing=0.1)
    return make


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def format_text(res, info):
    lines = ["%s (%s) of %s against %s" % (res.loss_name, res.reduction, info["pred"],
                                           info["target"]),
             "  loss            %.10g" % res.loss]
    if res.accuracy is not None:
        lines.append("  accuracy        %.6f" % res.accuracy)
        lines.append("  %-15s %.6f" % ("top-%d accuracy" % res.top_k, res.top_k_accuracy))
    what = "rows" if LOSSES[res.loss_name].classes else "elements"
    lines.append("  %-15s %d" % (what, res.n_rows)
                 + ("  (%d ignored)" % res.n_ignored if res.n_ignored else ""))
    rate = info["rows_per_second"]
    lines.append("  time            %.3f s, %s rows/s, %s/s, %d chunk(s) of %d rows"
                 % (info["seconds"], "%.4g" % rate if rate else "-",
                    _fmt_bytes(info["bytes_per_second"] or 0), info["chunks"],
                    info["chunk_rows"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    """``fastloss eval [options] PRED [TARGET]``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
        _check_args(args)
        res, info = evaluate_files(args, _progress_factory(args.progress))
    except UsageError as e:
        print("%s: error: %s (see %s --help)" % (PROG, _one_line(e), PROG), file=sys.stderr)
        return 2
    except DataError as e:
        print("%s: error: %s" % (PROG, _one_line(e)), file=sys.stderr)
        return 1
    except MemoryError:
        print("%s: error: out of memory; lower --memory or --chunk-rows" % PROG,
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("%s: interrupted" % PROG, file=sys.stderr)
        return 130
    if args.json:
        out = {k: _json_value(v) for k, v in {**res.as_dict(), **info}.items()}
        print(json.dumps(out, indent=2))
    else:
        print(format_text(res, info))
    return 0


if __name__ == "__main__":                         # pragma: no cover
    sys.exit(main())
