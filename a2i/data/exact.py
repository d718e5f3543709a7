"""Maths whose results are the same bits on every CPU, for the embedded dataset's bytes (and so the pipeline's
hashes) to be too.

numpy's vectorised sin/exp/log and FFTs, BLAS dot products and even libm's scalar functions pick
instruction-set-specific code (SSE, AVX2, AVX-512, FMA) whose last bits differ, and one bit can move a sample
across an int16 step. So array maths here uses only + - * /, whose IEEE results are exact everywhere (sines come
from a table built by such a polynomial, read by integer phases), sums are of integers or added in a fixed order,
and scalar exp/log run in software decimals.
"""

from __future__ import annotations

import math
from decimal import Context, Decimal, localcontext

import numpy as np

PHASE_BITS = 32  # phases are uint32 fractions of a cycle: integer sums are exact and wrap-around is the modulo
TABLE_BITS = 16  # sine table of 65,536 entries read at the nearest one: <= 4.8e-5 rad, as fine as float32 phases
TWO_PI = 2 * math.pi


def exp(x: float) -> float:
    """e^x of a scalar in software decimals: the same double on every CPU, unlike libm's FMA/non-FMA variants."""
    with localcontext(Context(prec=40)):
        return float(Decimal(x).exp())


def ln(x: float) -> float:
    """ln x of a scalar in software decimals (see exp)."""
    with localcontext(Context(prec=40)):
        return float(Decimal(x).ln())


LN2 = ln(2.0)
# Odd Taylor coefficients (-1)^j / (2j+1)!: up to x^21 the error on [-pi/2, pi/2] is below 2e-18.
SIN_COEFFS = tuple((-1 if j % 2 else 1) / math.factorial(2 * j + 1) for j in range(11))


def sin_turns(turns: np.ndarray | float) -> np.ndarray:
    """sin(2 pi turns) from + - * / only, each exactly rounded, so the same on every CPU, unlike np.sin."""
    r = turns - np.rint(turns)  # [-1/2, 1/2]
    r = np.where(r > 0.25, 0.5 - r, np.where(r < -0.25, -0.5 - r, r))  # sin(pi - x) = sin x: [-1/4, 1/4]
    x = TWO_PI * r
    x2 = x * x
    acc = SIN_COEFFS[-1]
    for c in SIN_COEFFS[-2::-1]:
        acc = acc * x2 + c
    return acc * x


def cos_turns(turns: np.ndarray | float) -> np.ndarray:
    return sin_turns(turns + 0.25)


SINE_TABLE = sin_turns(np.arange(1 << TABLE_BITS) / (1 << TABLE_BITS))


def sine(phase: np.ndarray) -> np.ndarray:
    """sin of uint32 phases (units of 2^-32 cycle), read from the table at the nearest entry."""
    half_step = np.uint32(1 << (PHASE_BITS - TABLE_BITS - 1))
    return SINE_TABLE[(phase + half_step) >> (PHASE_BITS - TABLE_BITS)]


def phase_step(hz: np.ndarray | float, sample_rate: int) -> np.ndarray:
    """Per-sample uint32 phase increment of a frequency in [0, sample_rate)."""
    return np.rint(np.asarray(hz) * ((1 << PHASE_BITS) / sample_rate)).astype(np.uint32)


def exp_small(x: np.ndarray) -> np.ndarray:
    """e^x for |x| < 0.05 by its Taylor series to x^7 (error < 2e-15), + and * only."""
    acc = np.full_like(x, 1 / math.factorial(7))
    for j in range(6, -1, -1):
        acc = acc * x + 1 / math.factorial(j)
    return acc


def semitones(cents: float) -> float:
    """The frequency ratio 2^(cents / 1200), exactly rounded (software decimals)."""
    return exp(cents / 1200 * LN2)
