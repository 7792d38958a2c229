"""bfloat16 <-> float32 conversions of every SIMD path, bit for bit (NumPy only).

bfloat16 -> float32 is the pattern shifted into the top 16 bits; float32 -> bfloat16 rounds
to nearest even and makes NaN quiet (bit 0x40 set, sign and top payload bits kept).  The
expected bits here are computed from those rules with NumPy integer arithmetic, and every
path (and every tail length of its vector loop) must give them.
"""
import numpy as np
import pytest

from fastloss import _core


def _expected_bf16(f):
    x = f.view(np.uint32).astype(np.uint64)
    r = ((x + 0x7FFF + ((x >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (x & 0x7FFFFFFF) > 0x7F800000
    q = ((x >> 16) | 0x40).astype(np.uint16)
    return np.where(nan, q, r)


def _edge_floats():
    rng = np.random.default_rng(7)
    allbf = np.arange(65536, dtype=np.uint32)
    above = allbf << 16                                    # every bfloat16 value
    parts = [
        above, above | 0x8000, (above | 0x8000) + 1,       # ties and just above
        (above | 0x8000) - 1, above | 0x7FFF, above | 1,   # just below a tie, near values
        (above | 0xFFFF),                                  # the carry into the exponent
        np.array([0x7F800000, 0xFF800000, 0, 0x80000000,   # inf, signed zeros
                  0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x7F7F7FFF,   # overflow to inf or not
                  1, 0x80000001, 0x00008000, 0x00018000, 0x007FFFFF, 0x807FFFFF,  # subnormals
                  0x7F800001, 0xFF800001, 0x7FC00000, 0x7FBFFFFF, 0xFFFFFFFF, 0x7F80FFFF],
                 dtype=np.uint32),
        0x7F800001 + rng.integers(0, 0x7FFFFF, 50000, dtype=np.uint32),   # NaN payloads
        0xFF800001 + rng.integers(0, 0x7FFFFF, 50000, dtype=np.uint32),
        rng.integers(0, 2**32, 200000, dtype=np.uint64).astype(np.uint32),
    ]
    return np.concatenate(parts).astype(np.uint32).view(np.float32)


@pytest.fixture
def each_path():
    before = _core.simd_in_use()
    yield _core.simd_supported()
    _core.set_simd(before)


def test_bf16_to_f32_every_pattern_every_path(each_path):
    allbits = np.arange(65536, dtype=np.uint16)
    expected = (allbits.astype(np.uint32) << 16)
    for p in each_path:
        _core.set_simd(p)
        d = np.empty(65536, np.float32)
        _core.half_to_f32(1, allbits, d)
        assert np.array_equal(d.view(np.uint32), expected), p
        for n in range(1, 40):          # tails of the vector loops, from an odd offset
            part = np.empty(n, np.float32)
            _core.half_to_f32(1, allbits[1001:1001 + n], part)
            assert np.array_equal(part.view(np.uint32), expected[1001:1001 + n]), (p, n)


def test_f32_to_bf16_rounds_to_nearest_even_every_path(each_path):
    f = _edge_floats()
    expected = _expected_bf16(f)
    # the rule itself, on hand-picked values
    spot = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0x7F7F8000, 0x7F800001, 0xFFFFFFFF,
                     0x00008000, 0x00018000], np.uint32).view(np.float32)
    assert _expected_bf16(spot).tolist() == [0x3F80, 0x3F82, 0x3F81, 0x7F80, 0x7FC0, 0xFFFF,
                                             0x0000, 0x0002]
    for p in each_path:
        _core.set_simd(p)
        h = np.empty(f.size, np.uint16)
        _core.f32_to_half(1, f, h)
        bad = np.flatnonzero(h != expected)
        assert bad.size == 0, (p, [(hex(int(f.view(np.uint32)[i])), hex(int(h[i])),
                                    hex(int(expected[i]))) for i in bad[:5]])
        for n in range(1, 40):
            for start in (0, 65536 * 2 + 3):     # plain values, and ties
                part = np.empty(n, np.uint16)
                _core.f32_to_half(1, np.ascontiguousarray(f[start:start + n]), part)
                assert np.array_equal(part, expected[start:start + n]), (p, n, start)
