"""Predicted customer value and churn risk: the BG/NBD model for how many purchases a
customer will make and whether they are still "alive", and the Gamma-Gamma model for what
their purchases will be worth.

- **BG/NBD** (Fader, Hardie & Lee 2005a, "Counting Your Customers the Easy Way: An
  Alternative to the Pareto/NBD Model", Marketing Science 24(2)): while alive, a customer
  buys as a Poisson process with rate lambda; after each repeat purchase they drop out for
  good with probability p; lambda ~ Gamma(r, alpha) and p ~ Beta(a, b) across customers.
  It needs three numbers per customer (``rfm_summary``): x, t_x and T.
- **Gamma-Gamma** (Fader, Hardie & Lee 2005b, "RFM and CLV: Using Iso-Value Curves for
  Customer Base Analysis", JMR 42(4); Fader & Hardie 2013, "The Gamma-Gamma Model of
  Monetary Value"): a customer's purchase values are Gamma(p, nu) around their own mean,
  nu ~ Gamma(q, v) across customers, independent of how often they buy. Fitted on the
  customers with a repeat purchase, from their mean repeat value.

Both are fitted by maximum likelihood (scipy's L-BFGS-B on the logs of the parameters, so
they stay positive). Time is in **days**, and a purchase is a **purchase day**: a
customer's orders on one calendar day count as one purchase, their amounts summed (as the
``lifetimes`` package counts them), so that a split order is not read as a repeat.

On Online Retail the plain ML fit of the BG/NBD lands on a boundary (a -> 0, b large: no
dropout, P(alive) ~ 1 for everyone). ``customer_value`` and ``validate`` therefore add a
small L2 penalty on the BG/NBD's log-parameters, chosen by ``choose_penalizer`` on an inner
time split of the data they are given (never on a later holdout); the Gamma-Gamma model
stays plain ML (see ``choose_penalizer`` for why).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

from assistant.core.errors import InputError
from assistant.insights.purchases import day_after_last, parse_day, purchases

DAY = pd.Timedelta(days=1)
#: a fit needs at least this many customers with a repeat purchase
MIN_REPEAT_CUSTOMERS = 20
#: the optimizer searches log-parameters in [-LOG_BOUND, LOG_BOUND] (e^18 ~ 6.6e7)
LOG_BOUND = 18.0
UNIT = "purchase days (a customer's orders on one calendar day count as one purchase)"
#: the penalizers ``choose_penalizer`` tries by default (0: plain maximum likelihood)
PENALIZER_GRID = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)


# --- inputs -------------------------------------------------------------------------------


def rfm_summary(buys: pd.DataFrame, *, end: str | pd.Timestamp) -> pd.DataFrame:
    """The models' inputs, one row per customer of ``buys`` (``purchases(...)``), indexed by
    customer; only purchases before ``end`` count. In days:

    - ``x``: repeat purchases, the customer's distinct purchase days after the first one;
    - ``t_x``: recency, days from the first purchase day to the last;
    - ``T``: age, days from the first purchase day to ``end`` (the observation's end,
      exclusive: a customer first seen the day before ``end`` has T = 1);
    - ``monetary``: the mean value of the repeat purchase days (the first day's spend is
      left out, as the Gamma-Gamma model is fitted on repeat purchases); 0 with no repeat.

    E.g. orders on days 0, 10 and 30 with ``end`` on day 40: x = 2, t_x = 30, T = 40."""
    end = parse_day(end, "end")
    rows = buys.loc[buys["timestamp"] < end, ["customer", "timestamp", "amount"]]
    days = (rows.assign(day=rows["timestamp"].dt.normalize())
            .groupby(["customer", "day"], sort=True, observed=True)["amount"].sum()
            .reset_index())
    g = days.groupby("customer", sort=True, observed=True)
    first = g["day"].min()
    x = g["day"].size() - 1
    first_spend = g["amount"].first()  # days are sorted within a customer
    repeat_spend = g["amount"].sum() - first_spend
    out = pd.DataFrame({
        "x": x.astype(np.int64),
        "t_x": (g["day"].max() - first) / DAY,
        "T": (end - first) / DAY,
        "monetary": (repeat_spend / x.where(x > 0)).fillna(0.0),
    })
    out.index = out.index.astype(str)
    out.index.name = "customer"
    return out


def _check_summary(summary: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in summary.columns]
    if missing:
        raise InputError(f"The customer summary lacks the column(s) {', '.join(missing)}.",
                         "Make it with rfm_summary(purchases(orders), end=...).")


def _repeaters(summary: pd.DataFrame, what: str) -> int:
    n = int((summary["x"] > 0).sum())
    if n < MIN_REPEAT_CUSTOMERS:
        raise InputError(
            f"Only {n} customer(s) bought more than once: too few to fit the {what} "
            f"(it needs at least {MIN_REPEAT_CUSTOMERS}).",
            "Use a longer stretch of orders (an earlier start or a later end date).")
    return n


def _check_horizon(horizon_days: float) -> None:
    if not horizon_days >= 1:  # also refuses NaN
        raise InputError(f"The horizon of {horizon_days} day(s) is too short.",
                         "Pass horizon_days of 1 or more, e.g. 90.")


def _check_penalizer(penalizer: float) -> float:
    try:
        value = float(penalizer)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"The penalizer {penalizer!r} is not a number of 0 or more.",
                         "Pass e.g. 0.01, 0 for plain maximum likelihood, or None to choose "
                         "it from the data.")
    return value


# --- fitting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fit:
    params: np.ndarray
    log_likelihood: float
    converged: bool


def _fit_logs(neg_log_lik: Callable[[np.ndarray], float], start: np.ndarray, n: int,
              penalizer: float) -> _Fit:
    """Minimize ``neg_log_lik(params)`` (summed over the ``n`` customers) over
    log-parameters, from ``start``. The objective is the mean over customers (a scale the
    optimizer's tolerances suit) plus ``penalizer * sum(log(params) ** 2)``, an L2 pull of
    the log-parameters towards 0 (parameters towards 1) that keeps a flat likelihood from
    running off to the bounds; the default 0 is plain maximum likelihood."""
    def objective(theta: np.ndarray) -> float:
        value = neg_log_lik(np.exp(theta)) / n + penalizer * float(theta @ theta)
        return value if math.isfinite(value) else 1e300

    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    theta0 = np.log(start)
    res = minimize(objective, theta0, method="L-BFGS-B", bounds=bounds)
    if not res.success:  # e.g. an abnormal line search: polish without gradients
        res = minimize(objective, res.x, method="Nelder-Mead", bounds=bounds,
                       options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-10})
    params = np.exp(res.x)
    return _Fit(params, -float(neg_log_lik(params)), bool(res.success))


# --- BG/NBD -------------------------------------------------------------------------------


def bgnbd_log_likelihood(r: float, alpha: float, a: float, b: float, x: np.ndarray,
                         t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Each customer's log-likelihood, eq. 6 of FHL 2005a:

    L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x)),

    with the common factor taken out and the two terms added in log space
    (``logaddexp``), so that neither overflows for frequent customers."""
    common = gammaln(r + x) - gammaln(r) + r * math.log(alpha) - betaln(a, b)
    survived = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    x1 = np.maximum(x, 1)  # the second term only exists for x > 0
    dropped = np.where(x > 0, betaln(a + 1, b + x1 - 1) - (r + x) * np.log(alpha + t_x),
                       -np.inf)
    return common + np.logaddexp(survived, dropped)


@dataclass(frozen=True)
class BGNBD:
    """A fitted BG/NBD model (time in the summary's unit, days from ``rfm_summary``):
    purchase rates lambda ~ Gamma(shape r, rate alpha), dropout probabilities
    p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int
    converged: bool
    penalizer: float = 0.0

    def expected_purchases(self, t: float, summary: pd.DataFrame) -> pd.Series:
        """Each customer's expected number of purchases in the next ``t`` days, given their
        history, E[Y(t) | x, t_x, T], eq. 10 of FHL 2005a:

        (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)
                               * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
        / [1 + [x > 0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)].

        The hypergeometric term is evaluated after Euler's transformation,
        2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z), which turns the bracket into
        1 - ((alpha+T)/(alpha+T+t))^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z): the same value
        (to ~1e-12 in our checks), but with small upper parameters whatever x. The printed
        form multiplies a power that underflows by a 2F1 that overflows as x grows (0 x inf
        = NaN from x ~ 3,000 at the paper's CDNOW estimates). The denominator is
        1 / P(alive) (``p_alive``). At a = 1 exactly the formula is 0/0 (its limit is
        finite): a is then moved by 1e-6."""
        _check_summary(summary, ("x", "t_x", "T"))
        x, _, T = _xtT(summary)
        a = self.a if abs(self.a - 1.0) > 1e-6 else 1.0 + 1e-6
        z = t / (self.alpha + T + t)
        bracket = 1.0 - (1.0 - z) ** (a - 1.0) * hyp2f1(
            a + self.b - 1.0 - self.r, a - 1.0, a + self.b + x - 1.0, z)
        expected = (a + self.b + x - 1.0) / (a - 1.0) * bracket * self._alive(summary)
        return pd.Series(np.maximum(expected, 0.0), index=summary.index,
                         name="expected_purchases")

    def p_alive(self, summary: pd.DataFrame) -> pd.Series:
        """Each customer's probability of still being active at T (Fader, Hardie & Lee
        2008, "Computing P(alive) Using the BG/NBD Model"):
        1 / [1 + [x > 0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)].
        1 for a customer with no repeat purchase (in the model one can only drop out right
        after a purchase); for fixed x and T it falls as the last purchase t_x gets older."""
        _check_summary(summary, ("x", "t_x", "T"))
        return pd.Series(self._alive(summary), index=summary.index, name="p_alive")

    def _alive(self, summary: pd.DataFrame) -> np.ndarray:
        x, t_x, T = _xtT(summary)
        x1 = np.maximum(x, 1)
        log_odds = (math.log(self.a) - np.log(self.b + x1 - 1)
                    + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)))
        return np.where(x > 0, expit(-log_odds), 1.0)

    @property
    def mean_dropout(self) -> float:
        """The mean chance of dropping out after a purchase, a / (a + b). Near 0 (a -> 0
        with b large) the data show no dropout beyond what the spread of purchase rates
        explains: the fit is then an NBD model and ``p_alive`` is near 1 for everyone."""
        return self.a / (self.a + self.b)

    def as_dict(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b,
                "mean_dropout": self.mean_dropout, "log_likelihood": self.log_likelihood,
                "customers": self.customers,
                "converged": self.converged, "penalizer": self.penalizer,
                "time_unit": "days"}


def _xtT(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (summary["x"].to_numpy(dtype=np.float64), summary["t_x"].to_numpy(dtype=np.float64),
            summary["T"].to_numpy(dtype=np.float64))


def fit_bgnbd(summary: pd.DataFrame, *, penalizer: float = 0.0) -> BGNBD:
    """The BG/NBD model of ``summary`` (``rfm_summary``) by maximum likelihood (eq. 6 of
    FHL 2005a summed over customers). ``penalizer``: see ``_fit_logs`` (0: none). Needs
    ``MIN_REPEAT_CUSTOMERS`` customers with a repeat purchase."""
    _check_summary(summary, ("x", "t_x", "T"))
    _repeaters(summary, "purchase model")
    x, t_x, T = _xtT(summary)
    if (t_x > T).any() or (t_x < 0).any() or (x < 0).any():
        raise InputError("The customer summary has a last purchase after its end date "
                         "or a negative count.",
                         "Make it with rfm_summary(purchases(orders), end=...).")

    def nll(params: np.ndarray) -> float:
        r, alpha, a, b = params
        return -float(bgnbd_log_likelihood(r, alpha, a, b, x, t_x, T).sum())

    # start: one purchase per mean age for the rate, a dropout chance of 1/3
    start = np.array([1.0, max(float(T.mean()), 1.0), 1.0, 2.0])
    fit = _fit_logs(nll, start, len(x), penalizer)
    r, alpha, a, b = (float(v) for v in fit.params)
    return BGNBD(r, alpha, a, b, fit.log_likelihood, len(x), fit.converged, penalizer)


# --- Gamma-Gamma --------------------------------------------------------------------------


def gamma_gamma_log_likelihood(p: float, q: float, v: float, x: np.ndarray,
                               m: np.ndarray) -> np.ndarray:
    """Each customer's log-density of their mean purchase value m over x purchases
    (FHL 2005b; Fader & Hardie 2013):

    f(m | p, q, v, x) = G(px+q)/(G(px) G(q)) * v^q m^(px-1) x^(px) / (v + m x)^(px+q)."""
    px = p * x
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * math.log(v)
            + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * np.log(v + m * x))


@dataclass(frozen=True)
class GammaGamma:
    """A fitted Gamma-Gamma spend model: purchase values ~ Gamma(shape p, rate nu) per
    customer, nu ~ Gamma(shape q, rate v) across customers. ``sample_mean``: the mean of
    the fitted customers' repeat values, the population mean used when q <= 1 (where the
    model's own, p v / (q - 1), does not exist)."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int
    converged: bool
    sample_mean: float
    penalizer: float = 0.0

    @property
    def population_mean(self) -> float:
        """The expected value of a purchase of a customer one knows nothing about,
        p v / (q - 1) (``sample_mean`` if q <= 1)."""
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else self.sample_mean

    def expected_value(self, summary: pd.DataFrame) -> pd.Series:
        """Each customer's expected purchase value given their history,
        E[Z | p, q, v, m, x] = p (v + m x) / (p x + q - 1), a weighted average of the
        population mean and their own mean m that trusts m more as x grows. Customers with
        no repeat purchase (or a repeat mean <= 0, which the model cannot hold) get
        ``population_mean``."""
        _check_summary(summary, ("x", "monetary"))
        x = summary["x"].to_numpy(dtype=np.float64)
        m = summary["monetary"].to_numpy(dtype=np.float64)
        known = (x > 0) & (m > 0)
        denom = np.where(known, self.p * x + self.q - 1.0, 1.0)
        value = np.where(known & (denom > 0),
                         self.p * (self.v + m * x) / np.where(denom > 0, denom, 1.0),
                         self.population_mean)
        return pd.Series(value, index=summary.index, name="expected_order_value")

    def as_dict(self) -> dict[str, Any]:
        return {"p": self.p, "q": self.q, "v": self.v,
                "population_mean": self.population_mean,
                "log_likelihood": self.log_likelihood, "customers": self.customers,
                "converged": self.converged, "penalizer": self.penalizer}


def fit_gamma_gamma(summary: pd.DataFrame, *, penalizer: float = 0.0) -> GammaGamma:
    """The Gamma-Gamma model of the customers of ``summary`` with a repeat purchase (and a
    positive repeat mean) by maximum likelihood. ``penalizer``: see ``_fit_logs``."""
    _check_summary(summary, ("x", "monetary"))
    fitted = summary[(summary["x"] > 0) & (summary["monetary"] > 0)]
    _repeaters(fitted, "order-value model")
    x = fitted["x"].to_numpy(dtype=np.float64)
    m = fitted["monetary"].to_numpy(dtype=np.float64)

    def nll(params: np.ndarray) -> float:
        p, q, v = params
        return -float(gamma_gamma_log_likelihood(p, q, v, x, m).sum())

    # start: purchase values with a coefficient of variation of 1, population mean ~ m
    start = np.array([1.0, 2.0, float(m.mean())])
    fit = _fit_logs(nll, start, len(x), penalizer)
    p, q, v = (float(val) for val in fit.params)
    return GammaGamma(p, q, v, fit.log_likelihood, len(x), fit.converged, float(m.mean()),
                      penalizer)


# --- choosing the penalizer ---------------------------------------------------------------


def choose_penalizer(buys_or_orders: pd.DataFrame, *, end: str | pd.Timestamp,
                     horizon_days: float, grid: tuple[float, ...] = PENALIZER_GRID,
                     ) -> tuple[float, dict[str, Any]]:
    """The BG/NBD penalizer (``_fit_logs``) of ``grid`` that best predicts purchases on an
    inner time split of the data before ``end``, and the scores behind the choice.

    Only orders before ``end`` are read (``buys_or_orders``: ``purchases(...)`` rows, or
    an orders frame, which is turned into them). Inner calibration end = ``end`` -
    ``horizon_days``: for each penalizer the BG/NBD is fitted on the orders before it, each
    customer seen by then gets their expected purchases (purchase days) in [inner end,
    ``end``), and the score is the mean absolute error against what they did (the same
    error ``validate`` reports). The smallest score wins; on a tie the smaller penalizer
    (less pull away from plain maximum likelihood).

    Falls back to 0.0 (plain maximum likelihood), with the reason under ``fallback``, when
    the inner split cannot be scored: less than 2 x ``horizon_days`` of history before the
    inner end, or too few repeat customers there for a fit (``MIN_REPEAT_CUSTOMERS``).

    ``scores`` (JSON-ready): ``end``, ``inner_calibration_end``, ``horizon_days``,
    ``history_days`` (first purchase day to inner end), ``customers`` and
    ``repeat_customers`` of the inner calibration, ``mae`` {penalizer: inner MAE} (empty on a
    fallback), ``baseline_mae`` (each customer's purchases in the ``horizon_days`` before the
    inner end carried forward, for scale), ``chosen`` and ``fallback`` (None or why).

    Caveats. MAE is minimized by a count's median, not its mean, so it rewards predictions
    pulled down for rare buyers: on orders simulated from a BG/NBD (where plain ML is
    right; 800 customers, 3 seeds) it still picked the grid's largest penalizer (0.1),
    while RMSE was flat. So a
    large choice is not by itself evidence that the model is mis-specified. The penalty
    pulls all four log-parameters towards 0, alpha too, whose scale is the time unit (days
    here, alpha ~ 60 unpenalized): much of it goes into shrinking alpha and r, not only
    into keeping a and b off the boundary.

    The Gamma-Gamma model is not penalized (``customer_value`` and ``validate`` fit it with
    0), by choice: (1) its plain ML fit is interior on Online Retail (p ~ 2-3, q ~ 3 > 1,
    v ~ 300-400), so there is no boundary to pull it back from; (2) a pull of log(v)
    towards 0 depends on the currency unit (v is money: pounds and pence would get
    different fits); (3) scored by the same inner split on revenue MAE, the penalty did not
    help in a way one could trust: on both of Online Retail's inner splits (before
    2011-09-01 and before 2011-12-10) the grid's best (0.1) beat 0 by under 1 % while 0.03
    was 7-18 % worse than 0, i.e. the score is not smooth in the penalizer, and 0.1 drives
    q below 1, where the model has no population mean. Revenue MAE is dominated by a few
    large buyers, too noisy to tune on."""
    _check_horizon(horizon_days)
    values = sorted({_check_penalizer(g) for g in grid})
    if not values:
        raise InputError("The penalizer grid is empty.",
                         "Pass a few values, e.g. (0.0, 0.001, 0.01, 0.1).")
    stop = parse_day(end, "end")
    buys = _as_buys(buys_or_orders)
    buys = buys[buys["timestamp"] < stop]
    inner = stop - pd.Timedelta(days=horizon_days)
    scores: dict[str, Any] = {
        "end": stop.strftime("%Y-%m-%d"), "inner_calibration_end": inner.strftime("%Y-%m-%d"),
        "horizon_days": float(horizon_days), "history_days": 0.0, "customers": 0,
        "repeat_customers": 0, "mae": {}, "baseline_mae": None, "chosen": 0.0,
        "fallback": None}
    earlier = buys[buys["timestamp"] < inner]
    if not earlier.empty:
        scores["history_days"] = float((inner - earlier["timestamp"].min().normalize()) / DAY)
    if scores["history_days"] < 2 * horizon_days:
        scores["fallback"] = (
            f"only {scores['history_days']:.0f} day(s) of orders before the inner calibration "
            f"end {inner:%Y-%m-%d} (it needs 2 x {horizon_days:g} = {2 * horizon_days:g}): "
            "too little history to choose a penalizer, so plain maximum likelihood (0.0)")
        return 0.0, scores
    summary = rfm_summary(earlier, end=inner)
    scores["customers"] = len(summary)
    scores["repeat_customers"] = int((summary["x"] > 0).sum())
    actual, _ = _window_totals(buys, summary.index, inner, stop)
    base, _ = _window_totals(buys, summary.index, inner - pd.Timedelta(days=horizon_days),
                             inner)
    scores["baseline_mae"] = float(np.mean(np.abs(base - actual)))
    best, best_mae = 0.0, math.inf
    for value in values:
        try:
            fit = fit_bgnbd(summary, penalizer=value)
        except InputError as err:  # too few repeat customers: the same for every value
            scores["fallback"] = (f"the inner calibration (orders before {inner:%Y-%m-%d}) "
                                  f"cannot be fitted: {err.message} So plain maximum "
                                  "likelihood (0.0)")
            scores["mae"] = {}
            return 0.0, scores
        mae = float(np.mean(np.abs(fit.expected_purchases(horizon_days, summary).to_numpy()
                                   - actual)))
        scores["mae"][value] = mae if math.isfinite(mae) else None
        if math.isfinite(mae) and mae < best_mae:  # ascending: a tie keeps the smaller
            best, best_mae = value, mae
    if not math.isfinite(best_mae):
        scores["fallback"] = "no penalizer gave a finite inner error, so 0.0"
        best = 0.0
    scores["chosen"] = best
    return best, scores


def _as_buys(frame: pd.DataFrame) -> pd.DataFrame:
    """``purchases(...)`` rows from either those rows or an orders frame."""
    if "is_return" in frame.columns:
        return purchases(frame)
    missing = [c for c in ("customer", "timestamp", "amount") if c not in frame.columns]
    if missing:
        raise InputError(f"The purchases lack the column(s) {', '.join(missing)}.",
                         "Pass an orders frame or purchases(orders).")
    return frame


# --- per customer -------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerValue:
    """``customer_value``'s answer: ``table`` (one row per customer, see there), the two
    fitted models, the window they predict, the BG/NBD's ``penalizer`` and, when it was
    chosen from the data, ``penalizer_scores`` (``choose_penalizer``; None when given)."""

    table: pd.DataFrame
    bgnbd: BGNBD
    gamma_gamma: GammaGamma
    end: pd.Timestamp
    horizon_days: float
    penalizer: float = 0.0
    penalizer_scores: dict[str, Any] | None = None

    def params(self) -> dict[str, Any]:
        """The fitted parameters, JSON-ready, for a report."""
        return {"end": self.end.strftime("%Y-%m-%d"), "horizon_days": self.horizon_days,
                "unit": UNIT, "penalizer": self.penalizer,
                "penalizer_scores": self.penalizer_scores, "bgnbd": self.bgnbd.as_dict(),
                "gamma_gamma": self.gamma_gamma.as_dict()}


def customer_value(orders: pd.DataFrame, *, horizon_days: float = 90,
                   end: str | pd.Timestamp | None = None,
                   penalizer: float | None = None) -> CustomerValue:
    """Fit both models on the orders before ``end`` (default: the day after the last
    order) and predict, per customer (``table``, indexed by customer, sorted by
    ``expected_value`` descending): the ``rfm_summary`` columns, ``expected_purchases`` in
    the next ``horizon_days`` (purchase days), ``p_alive``, ``churn_risk``,
    ``expected_order_value`` (per purchase day) and ``expected_value`` =
    expected_purchases x expected_order_value. No value is NaN (see ``rfm_summary`` and
    ``GammaGamma.expected_value``).

    ``churn_risk`` = 1 - ``p_alive``: the model's probability that the customer has
    already dropped out for good (as of ``end``). It is 0 for every customer without a
    repeat purchase (the BG/NBD lets a customer drop out only after a repeat purchase), so
    for one-time buyers it says nothing: read their ``T`` (days since their only purchase)
    instead.

    ``penalizer``: the BG/NBD's L2 penalty on its log-parameters (``_fit_logs``). None
    (the default) chooses it with ``choose_penalizer`` on these same orders (before
    ``end``, inner split of ``horizon_days``); a number uses it (0: plain maximum
    likelihood). The Gamma-Gamma model is always fitted with 0 (``choose_penalizer`` says
    why)."""
    _check_horizon(horizon_days)
    if penalizer is not None:
        penalizer = _check_penalizer(penalizer)
    stop = parse_day(end, "end") if end is not None else None
    buys = purchases(orders, until=stop)
    if buys.empty:
        raise InputError("There are no purchases to predict customer value from"
                         + (f" before {stop:%Y-%m-%d}." if stop is not None else "."),
                         "Load an orders file with purchases (not only returns)"
                         + (", or pass a later end date." if stop is not None else "."))
    if stop is None:
        stop = day_after_last(buys["timestamp"])
    summary = rfm_summary(buys, end=stop)
    scores = None
    if penalizer is None:
        penalizer, scores = choose_penalizer(buys, end=stop, horizon_days=horizon_days)
    bg, gg = fit_bgnbd(summary, penalizer=penalizer), fit_gamma_gamma(summary)
    alive = bg.p_alive(summary)
    table = summary.assign(expected_purchases=bg.expected_purchases(horizon_days, summary),
                           p_alive=alive, churn_risk=1.0 - alive,
                           expected_order_value=gg.expected_value(summary))
    table["expected_value"] = table["expected_purchases"] * table["expected_order_value"]
    table = table.sort_values("expected_value", ascending=False, kind="stable")
    return CustomerValue(table, bg, gg, stop, float(horizon_days), penalizer, scores)


# --- validation ---------------------------------------------------------------------------


def validate(orders: pd.DataFrame, *, calibration_end: str | pd.Timestamp,
             horizon_days: int, penalizer: float | None = None) -> dict[str, Any]:
    """Fit on the orders before ``calibration_end``, predict each of those customers'
    purchases (purchase days) and revenue in [calibration_end, + horizon_days), and compare
    with what they did, next to a naive baseline: each customer's purchases and revenue in
    the ``horizon_days`` just before ``calibration_end``, carried forward. Customers first
    seen in the holdout are not counted (neither the model nor the baseline knows them).

    JSON-ready: per quantity (``purchases``, ``revenue``) the ``mae`` and ``rmse`` of the
    ``model`` and the ``baseline``, ``ratio`` = model / baseline (None where the
    baseline's error is 0) and the ``total`` predicted by each next to the ``actual``;
    plus the customer counts, the fitted parameters, the BG/NBD's ``penalizer`` and
    ``penalizer_scores``.

    ``penalizer``: None (the default) chooses it with ``choose_penalizer`` on the orders
    before ``calibration_end`` only (inner split: calibration_end - horizon_days), so the
    holdout plays no part in the choice; ``penalizer_scores`` are then its scores. A number
    is used as given (``penalizer_scores`` None). The Gamma-Gamma model is fitted with 0
    (``choose_penalizer`` says why)."""
    _check_horizon(horizon_days)
    if penalizer is not None:
        penalizer = _check_penalizer(penalizer)
    buys = purchases(orders)
    if buys.empty:
        raise InputError("There are no purchases to validate the value model on.",
                         "Load an orders file with purchases (not only returns).")
    cut = parse_day(calibration_end, "calibration_end")
    window = pd.Timedelta(days=horizon_days)
    first, last = buys["timestamp"].min(), buys["timestamp"].max()
    data_end = day_after_last(buys["timestamp"])
    if not first < cut < data_end:
        raise InputError(f"calibration_end {cut:%Y-%m-%d} is outside the data "
                         f"({first:%Y-%m-%d} to {last:%Y-%m-%d}).",
                         "Pick a date between the first and the last order.")
    if cut + window > data_end:
        raise InputError(f"The {horizon_days}-day holdout after {cut:%Y-%m-%d} runs past "
                         f"the last order ({last:%Y-%m-%d}), so its actual purchases are "
                         "not all known.",
                         f"Pick a calibration_end on or before {data_end - window:%Y-%m-%d}"
                         " or a shorter horizon.")
    summary = rfm_summary(buys, end=cut)
    scores = None
    if penalizer is None:  # on the orders before the cut only
        penalizer, scores = choose_penalizer(buys[buys["timestamp"] < cut], end=cut,
                                             horizon_days=horizon_days)
    bg, gg = fit_bgnbd(summary, penalizer=penalizer), fit_gamma_gamma(summary)
    predicted_n = bg.expected_purchases(horizon_days, summary).to_numpy()
    predicted_rev = predicted_n * gg.expected_value(summary).to_numpy()
    actual_n, actual_rev = _window_totals(buys, summary.index, cut, cut + window)
    base_n, base_rev = _window_totals(buys, summary.index, cut - window, cut)
    return {
        "calibration_end": cut.strftime("%Y-%m-%d"), "horizon_days": int(horizon_days),
        "unit": UNIT, "customers": len(summary),
        "repeat_customers": int((summary["x"] > 0).sum()),
        "active_in_holdout": int((actual_n > 0).sum()),
        "purchases": _compare(predicted_n, base_n, actual_n),
        "revenue": _compare(predicted_rev, base_rev, actual_rev),
        "penalizer": penalizer, "penalizer_scores": scores,
        "params": {"bgnbd": bg.as_dict(), "gamma_gamma": gg.as_dict()},
    }


def _window_totals(buys: pd.DataFrame, customers: pd.Index, start: pd.Timestamp,
                   stop: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Per customer of ``customers`` (0 for those without any): purchase days and revenue
    in [start, stop)."""
    rows = buys[(buys["timestamp"] >= start) & (buys["timestamp"] < stop)]
    g = rows.assign(day=rows["timestamp"].dt.normalize()).groupby("customer", observed=True)
    days = g["day"].nunique()
    revenue = g["amount"].sum()
    days.index, revenue.index = days.index.astype(str), revenue.index.astype(str)
    return (days.reindex(customers, fill_value=0).to_numpy(dtype=np.float64),
            revenue.reindex(customers, fill_value=0.0).to_numpy(dtype=np.float64))


def _compare(model: np.ndarray, baseline: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    errors = {name: {"mae": float(np.mean(np.abs(pred - actual))),
                     "rmse": float(np.sqrt(np.mean((pred - actual) ** 2)))}
              for name, pred in (("model", model), ("baseline", baseline))}
    ratio = {k: (errors["model"][k] / errors["baseline"][k]
                 if errors["baseline"][k] > 0 else None) for k in ("mae", "rmse")}
    return {**errors, "ratio": ratio,
            "total": {"model": float(model.sum()), "baseline": float(baseline.sum()),
                      "actual": float(actual.sum())}}
