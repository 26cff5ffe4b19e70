"""Chaotic systems used by the papers' speech ciphers (numba-jitted fixed-step RK4).

Two continuous-time systems are integrated with the classical 4th-order Runge-Kutta scheme at a
*fixed* step ``h``.  Everything is plain IEEE-754 double arithmetic compiled by numba without
``fastmath`` (so no reassociation / FMA contraction is allowed), therefore a trajectory is a pure,
bit-reproducible function of (initial state, parameters, h, transient, stride, n) on any x86-64 /
aarch64 machine.

Sampling convention (shared by both integrators)::

    state_0 = initial state (the key)
    discard ``transient`` RK4 steps            (lets a key difference grow; removes start-up bias)
    then record the state, advance ``stride`` steps, record, ...  until ``n`` rows are recorded

so row ``i`` of the result is the state after ``transient + i * stride`` steps.

(a) 4D quadratic autonomous hyperchaotic system, paper A eq. (4)::

    x1' = a (x2 - x1)
    x2' = b x1 - x2 + e x4 - x1 x3
    x3' = -c x3 + x1 x2 + x1**2
    x4' = -d x2

    a=10, b=28, c=8/3, d=1, e=16 (paper A §3.3: Lyapunov exponents 0.416, 0.1348, -0.0014, -14.22;
    their sum equals the divergence -(a + 1 + c), which confirms the reading of the equations).

    Defaults: h = 0.01, transient = 5000 steps (50 time units), stride = 1.  With these values the
    orbit from K=(1,1,1,1) stays within |x| < 17, |y| < 25, |z| < 60, |w| < 6, a 1e-12 change of x0
    has grown to ~1e-5 at the end of the transient (largest Lyapunov exponent 0.416) and the RK4
    step is well inside the stability region (h * 14.2 = 0.14).

(b) Rossler system, paper B eq. (8)::

    x' = -y - z
    y' = x + a y
    z' = z (x - c) + b

    a = b = 0.2, c = 5.7.  Defaults: h = 0.01, transient = 20000 steps (200 time units; the largest
    Lyapunov exponent is only ~0.07, so a long transient is needed for key sensitivity), stride = 1.

Both functions return ``(n, dims)`` float64 arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "HYPERCHAOTIC_DEFAULTS",
    "ROSSLER_DEFAULTS",
    "hyperchaotic_trajectory",
    "rossler_trajectory",
]

#: default parameters / integration settings of the 4D hyperchaotic system (paper A §3.3)
HYPERCHAOTIC_DEFAULTS = dict(a=10.0, b=28.0, c=8.0 / 3.0, d=1.0, e=16.0, h=0.01, transient=5000, stride=1)
#: default parameters / integration settings of the Rossler system (paper B §III-D)
ROSSLER_DEFAULTS = dict(a=0.2, b=0.2, c=5.7, h=0.01, transient=20000, stride=1)


@njit(cache=True, fastmath=False)
def _hc_rhs(x1, x2, x3, x4, a, b, c, d, e):
    return (
        a * (x2 - x1),
        b * x1 - x2 + e * x4 - x1 * x3,
        -c * x3 + x1 * x2 + x1 * x1,
        -d * x2,
    )


@njit(cache=True, fastmath=False)
def _hc_integrate(x1, x2, x3, x4, n, h, a, b, c, d, e, transient, stride):
    out = np.empty((n, 4), dtype=np.float64)
    h2 = 0.5 * h
    h6 = h / 6.0
    total = transient + (n - 1) * stride + 1 if n > 0 else 0
    row = 0
    for step in range(total):
        if step >= transient and (step - transient) % stride == 0:
            out[row, 0] = x1
            out[row, 1] = x2
            out[row, 2] = x3
            out[row, 3] = x4
            row += 1
            if row == n:
                break
        k1 = _hc_rhs(x1, x2, x3, x4, a, b, c, d, e)
        k2 = _hc_rhs(x1 + h2 * k1[0], x2 + h2 * k1[1], x3 + h2 * k1[2], x4 + h2 * k1[3], a, b, c, d, e)
        k3 = _hc_rhs(x1 + h2 * k2[0], x2 + h2 * k2[1], x3 + h2 * k2[2], x4 + h2 * k2[3], a, b, c, d, e)
        k4 = _hc_rhs(x1 + h * k3[0], x2 + h * k3[1], x3 + h * k3[2], x4 + h * k3[3], a, b, c, d, e)
        x1 = x1 + h6 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0])
        x2 = x2 + h6 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1])
        x3 = x3 + h6 * (k1[2] + 2.0 * k2[2] + 2.0 * k3[2] + k4[2])
        x4 = x4 + h6 * (k1[3] + 2.0 * k2[3] + 2.0 * k3[3] + k4[3])
    return out


@njit(cache=True, fastmath=False)
def _ro_rhs(x, y, z, a, b, c):
    return (-y - z, x + a * y, z * (x - c) + b)


@njit(cache=True, fastmath=False)
def _ro_integrate(x, y, z, n, h, a, b, c, transient, stride):
    out = np.empty((n, 3), dtype=np.float64)
    h2 = 0.5 * h
    h6 = h / 6.0
    total = transient + (n - 1) * stride + 1 if n > 0 else 0
    row = 0
    for step in range(total):
        if step >= transient and (step - transient) % stride == 0:
            out[row, 0] = x
            out[row, 1] = y
            out[row, 2] = z
            row += 1
            if row == n:
                break
        k1 = _ro_rhs(x, y, z, a, b, c)
        k2 = _ro_rhs(x + h2 * k1[0], y + h2 * k1[1], z + h2 * k1[2], a, b, c)
        k3 = _ro_rhs(x + h2 * k2[0], y + h2 * k2[1], z + h2 * k2[2], a, b, c)
        k4 = _ro_rhs(x + h * k3[0], y + h * k3[1], z + h * k3[2], a, b, c)
        x = x + h6 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0])
        y = y + h6 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1])
        z = z + h6 * (k1[2] + 2.0 * k2[2] + 2.0 * k3[2] + k4[2])
    return out


def _check(n: int, h: float, transient: int, stride: int) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not (h > 0 and np.isfinite(h)):
        raise ValueError(f"step h must be a positive finite number, got {h}")
    if transient < 0 or stride < 1:
        raise ValueError(f"need transient >= 0 and stride >= 1, got {transient}, {stride}")


def _finite(out: np.ndarray, name: str) -> np.ndarray:
    if out.size and not np.isfinite(out).all():
        raise ValueError(f"{name} trajectory diverged (non-finite values): check the key / parameters / h")
    return out


def hyperchaotic_trajectory(
    initial,
    n: int,
    *,
    a: float = 10.0,
    b: float = 28.0,
    c: float = 8.0 / 3.0,
    d: float = 1.0,
    e: float = 16.0,
    h: float = 0.01,
    transient: int = 5000,
    stride: int = 1,
) -> np.ndarray:
    """``n`` samples ``(x1, x2, x3, x4)`` of the 4D hyperchaotic system (paper A eq. 4), shape ``(n, 4)``."""
    x0, y0, z0, w0 = (float(v) for v in initial)
    n, transient, stride = int(n), int(transient), int(stride)
    _check(n, h, transient, stride)
    out = _hc_integrate(x0, y0, z0, w0, n, float(h), float(a), float(b), float(c), float(d), float(e),
                        transient, stride)
    return _finite(out, "hyperchaotic")


def rossler_trajectory(
    initial,
    n: int,
    *,
    a: float = 0.2,
    b: float = 0.2,
    c: float = 5.7,
    h: float = 0.01,
    transient: int = 20000,
    stride: int = 1,
) -> np.ndarray:
    """``n`` samples ``(x, y, z)`` of the Rossler system (paper B eq. 8), shape ``(n, 3)``."""
    x0, y0, z0 = (float(v) for v in initial)
    n, transient, stride = int(n), int(transient), int(stride)
    _check(n, h, transient, stride)
    out = _ro_integrate(x0, y0, z0, n, float(h), float(a), float(b), float(c), transient, stride)
    return _finite(out, "rossler")
