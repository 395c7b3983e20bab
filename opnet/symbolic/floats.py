"""Floats as three tokens (PROSE §2): sign, 3-digit mantissa, power of ten.

``value = sign * DDD * 10**k`` for the tokens ``[+|-] NDDD Ek`` with ``k`` in -10..10, i.e.
the value written with 3 significant digits as ``D.DD x 10**e`` and ``k = e - 2``::

    10.0  -> + N100 E-1      -0.17 -> - N170 E-3      28.31 -> + N283 E-1
    0.0   -> + N000 E-2      (as the reference writes ``"%.2e" % 0.0``)

Representable magnitudes: 1.00e-8 (``N100 E-10``) to 9.99e12 (``N999 E10``). The reference
flushes smaller values to ``N000 E0`` and writes an out-of-vocabulary ``E11`` for larger
ones; here both raise :class:`SymbolicError`.

:func:`round3` rounds exactly like the reference's ``"%.2e"`` formatting and returns the
float nearest to the 3-digit decimal, so ``decode_float(encode_float(x)) == round3(x)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from opnet.symbolic.tree import SymbolicError

PRECISION = 2
"""Digits after the point in ``D.DD x 10**e`` (the reference's ``float_precision``)."""
MAX_EXPONENT = 10
"""Exponent tokens run from ``E-10`` to ``E10`` (the reference's ``max_exponent``)."""

SIGN_TOKENS = ("+", "-")
MANTISSA_TOKENS = tuple(f"N{i:03d}" for i in range(1000))
EXPONENT_TOKENS = tuple(f"E{k}" for k in range(-MAX_EXPONENT, MAX_EXPONENT + 1))

_EXACT_POW10 = 22  # 10.0**k is exact for |k| <= 22


def _round3_strings(x: np.ndarray) -> np.ndarray:
    return np.array([float(f"{v:.{PRECISION}e}") for v in x.ravel()], dtype=np.float64)


def round3(x: ArrayLike) -> np.ndarray | float:
    """``x`` rounded to 3 significant digits (vectorised; 0, inf and nan unchanged).

    Matches ``float("%.2e" % x)`` bit for bit: the result is the float nearest to the
    rounded decimal (``round3(28.31) == 28.3``). A Python/NumPy scalar gives a float.
    """
    arr = np.asarray(x, dtype=np.float64)
    out = arr.copy()
    mask = np.isfinite(arr) & (arr != 0)
    if mask.any():
        with np.errstate(all="ignore"):  # extreme magnitudes take the exact path
            out[mask] = _round3_fast(arr[mask])
    if out.ndim == 0:
        return float(out)
    return out


def _scale(ax: np.ndarray, k: np.ndarray) -> np.ndarray:
    """ax / 10**k with an exact power of ten (|k| <= 22): one correctly rounded operation."""
    p = 10.0 ** np.abs(k)
    return np.where(k >= 0, ax / p, ax * p)


def _round3_fast(x: np.ndarray) -> np.ndarray:
    """round3 of finite non-zero values: integer mantissa m = rint(|x| / 10**k) in
    [100, 999], then m * 10**k in one rounding; near-ties and magnitudes beyond 1e+-18
    are formatted as decimal strings instead."""
    ax = np.abs(x)
    e = np.floor(np.log10(ax)).astype(np.int64)
    ok = np.abs(e) < _EXACT_POW10 - 1 - PRECISION
    e = np.where(ok, e, 0)
    for _ in range(2):  # fix an exponent that log10 rounding put one off
        m = np.rint(_scale(ax, e - PRECISION))
        e = e + (m >= 10 ** (PRECISION + 1)) - (m < 10**PRECISION)
    k = e - PRECISION
    scaled = _scale(ax, k)
    m = np.rint(scaled)
    frac = scaled - np.floor(scaled)
    ok &= (np.abs(frac - 0.5) > 1e-6) & (m >= 10**PRECISION) & (m < 10 ** (PRECISION + 1))
    rounded = _scale(m, -k)
    if not ok.all():
        rounded[~ok] = _round3_strings(ax[~ok])
    return np.copysign(rounded, x)


@lru_cache(maxsize=65536)
def _encode(x: float) -> tuple[str, str, str]:
    if not np.isfinite(x):
        raise SymbolicError(f"cannot encode the non-finite float {x!r}")
    sign = "+" if x >= 0 else "-"
    mantissa, exponent = f"{abs(x):.{PRECISION}e}".split("e")
    digits = mantissa.replace(".", "")
    k = int(exponent) - PRECISION
    if x == 0:
        return sign, "N" + digits, f"E{k}"
    if not -MAX_EXPONENT <= k <= MAX_EXPONENT:
        raise SymbolicError(
            f"float {x!r} needs exponent E{k}; the float tokens cover E-{MAX_EXPONENT}.."
            f"E{MAX_EXPONENT}, i.e. magnitudes 1e-08 to 9.99e+12")
    return sign, "N" + digits, f"E{k}"


def encode_float(x: float) -> list[str]:
    """Three tokens ``[sign, NDDD, Ek]`` for ``x`` rounded to 3 significant digits.

    Raises :class:`SymbolicError` for non-finite values and magnitudes outside
    [1e-8, 9.99e12] (after rounding).
    """
    return list(_encode(float(x)))


def _parse_exponent(token: str, where: str) -> int:
    if not (token.startswith("E") and token[1:].lstrip("-").isdigit()):
        raise SymbolicError(f"{where}: expected an exponent token 'E-{MAX_EXPONENT}'.."
                            f"'E{MAX_EXPONENT}', got {token!r}")
    k = int(token[1:])
    if not -MAX_EXPONENT <= k <= MAX_EXPONENT:
        raise SymbolicError(f"{where}: exponent {token!r} out of range "
                            f"E-{MAX_EXPONENT}..E{MAX_EXPONENT}")
    return k


def decode_float(tokens: list[str] | tuple[str, ...], where: str = "float") -> float:
    """The value of ``[sign, NDDD, Ek]``: the float nearest to ``sign * DDD * 10**k``.

    ``where`` prefixes error messages (the parser passes the token position).
    """
    if len(tokens) != 3:
        raise SymbolicError(f"{where}: a float is 3 tokens (sign, mantissa, exponent), "
                            f"got {len(tokens)}: {list(tokens)}")
    sign, mant, expo = tokens
    if sign not in SIGN_TOKENS:
        raise SymbolicError(f"{where}: expected a sign '+' or '-', got {sign!r}")
    if not (len(mant) == 4 and mant[0] == "N" and mant[1:].isdigit()):
        raise SymbolicError(f"{where}: expected a mantissa token 'N000'..'N999' after "
                            f"sign {sign!r}, got {mant!r}")
    k = _parse_exponent(expo, where)
    m = int(mant[1:])
    value = float(m * 10**k) if k >= 0 else m / 10.0 ** (-k)
    return -value if sign == "-" else value
