#!/usr/bin/python3
"""Polynomial coefficients for the float32 vector exp / tanh / erf in
ops/simd_*.c (near-minimax Chebyshev fits, then rounded to float32).

Run with Debian's python3 (needs mpmath):  /usr/bin/python3 tools/gen_simd_poly.py
It prints the C initialisers pasted into the SIMD files. Only needed to
regenerate them; the build and tests never run Python. The resulting kernels'
errors against libm are measured in doc/performance.md.
"""
import struct

import mpmath as mp

mp.mp.dps = 60


def small(f, series):
    # evaluate f away from 0 and its series near 0 (the closed forms cancel)
    return lambda x: series(x) if abs(x) < mp.mpf(10) ** -12 else f(x)


def fit(name, f, a, b, deg, note):
    c, err = mp.chebyfit(f, [a, b], deg + 1, error=True)
    # highest degree first (Horner order), rounded to float32
    vals = ", ".join("%.9gf" % struct.unpack("f", struct.pack("f", float(x)))[0] for x in c)
    print("/* %s: %s on [%s, %s], degree %d, fit error %.2g */" % (name, note, mp.nstr(a, 6),
                                                                 mp.nstr(b, 6), deg, float(err)))
    print("static const float %s[%d] = { %s };" % (name, deg + 1, vals))


ln2 = mp.log(2)
# exp(r) = 1 + r + r^2 g(r), |r| <= ln2/2 after Cody-Waite reduction
fit("exp_c", small(lambda r: (mp.exp(r) - 1 - r) / r ** 2, lambda r: mp.mpf(1) / 2 + r / 6),
    -ln2 / 2, ln2 / 2, 5, "g(r) = (exp(r) - 1 - r) / r^2")
# tanh(u) = u + u^3 h(u^2) for |u| < 0.625 (above: 1 - 2 / (exp(2|u|) + 1))
fit("tanh_c", small(lambda s: (mp.tanh(mp.sqrt(s)) - mp.sqrt(s)) / (s * mp.sqrt(s)),
                    lambda s: -mp.mpf(1) / 3 + 2 * s / 15),
    0, mp.mpf("0.625") ** 2, 4, "h(s) = (tanh(sqrt s) - sqrt s) / s^1.5")
# erf(z) = z + z T(z^2) for |z| < 1 (the leading z is added last, in one fma)
fit("erf_small_c", small(lambda s: mp.erf(mp.sqrt(s)) / mp.sqrt(s) - 1,
                         lambda s: 2 / mp.sqrt(mp.pi) * (1 - s / 3) - 1),
    0, 1, 6, "T(s) = erf(sqrt s) / sqrt s - 1")
# erf(z) = 1 - exp(Q(z)) for 1 <= z <= 4 (erff(z) rounds to 1 above 3.92)
fit("erf_large_c", lambda z: mp.log(mp.erfc(z)), 1, 4, 9, "Q(z) = log(erfc(z))")
