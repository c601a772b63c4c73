//! Special functions the p-values need: `ln Γ(x)` and the regularized upper incomplete gamma
//! function `Q(a, x)`, hence the χ² survival function `P(X ≥ x) = Q(k/2, x/2)`. In: finite
//! arguments; out: values accurate to a few units in the last place (relative ≲ 1e-13 over the
//! range drift tests use), which keeps them within 1e-9 of SciPy's `chi2.sf`.

use std::f64::consts::PI;

/// Relative precision the series and continued fractions stop at.
const EPSILON: f64 = f64::EPSILON;
/// Upper bound on series and continued-fraction terms; both converge in O(√a) terms, so this is
/// only reached for absurd arguments (a above 10¹⁰), where the last partial result is returned.
const MAX_TERMS: usize = 1_000_000;

/// `ln Γ(x)` for `x > 0`: the argument is shifted above 10 by the recurrence
/// `Γ(x) = Γ(x + 1) / x`, then Stirling's series is summed to the `x⁻¹³` term (error below 1e-17
/// there).
pub fn ln_gamma(x: f64) -> f64 {
    debug_assert!(x > 0.0);
    let mut z = x;
    let mut product = 1.0;
    while z < 10.0 {
        product *= z;
        z += 1.0;
    }
    let r = 1.0 / z;
    let r2 = r * r;
    // Bernoulli-number coefficients B₂ₖ / (2k (2k − 1)) for k = 1..7.
    let series = r
        * (1.0 / 12.0
            + r2 * (-1.0 / 360.0
                + r2 * (1.0 / 1260.0
                    + r2 * (-1.0 / 1680.0 + r2 * (1.0 / 1188.0 + r2 * (-691.0 / 360_360.0 + r2 * (1.0 / 156.0)))))));
    (z - 0.5) * z.ln() - z + 0.5 * (2.0 * PI).ln() + series - product.ln()
}

/// `ln(x^a e^{-x} / Γ(a))`, the common factor of both incomplete gamma functions.
fn ln_prefactor(a: f64, x: f64) -> f64 {
    a * x.ln() - x - ln_gamma(a)
}

/// The regularized lower incomplete gamma function `P(a, x)` by its power series (for
/// `x < a + 1`, where it converges quickly).
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut r = a;
    for _ in 0..MAX_TERMS {
        r += 1.0;
        term *= x / r;
        sum += term;
        if term <= sum * EPSILON {
            break;
        }
    }
    (ln_prefactor(a, x).exp() * sum / a).min(1.0)
}

/// The regularized upper incomplete gamma function `Q(a, x)` by Legendre's continued fraction,
/// evaluated with the modified Lentz recurrence (for `x ≥ a`, `x ≥ 1`).
fn gamma_q_fraction(a: f64, x: f64) -> f64 {
    let tiny = f64::MIN_POSITIVE / EPSILON;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..MAX_TERMS {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() <= EPSILON {
            break;
        }
    }
    ln_prefactor(a, x).exp() * h
}

/// The regularized upper incomplete gamma function `Q(a, x) = Γ(a, x) / Γ(a)` for `a > 0`.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x.is_nan() || a.is_nan() || a <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if x < 1.0 || x < a {
        (1.0 - gamma_p_series(a, x)).max(0.0)
    } else {
        gamma_q_fraction(a, x).clamp(0.0, 1.0)
    }
}

/// The survival function of the χ² distribution with `dof` degrees of freedom at `x`
/// (SciPy's `scipy.stats.chi2.sf(x, dof)`).
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(dof / 2.0, x / 2.0)
}

/// `x · 2^e`, exactly (as C's `ldexp`), for any integer `e`.
pub(crate) fn ldexp(mut x: f64, mut e: i64) -> f64 {
    // 2^±1000 are exact doubles; stepping keeps every product exact until the result itself
    // overflows or becomes subnormal.
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        // Γ(n) = (n − 1)!; Γ(1/2) = √π; Γ(7/2) = 15√π/8.
        let mut fact = 1.0f64;
        for n in 1..30 {
            assert!((ln_gamma(n as f64) - fact.ln()).abs() <= 1e-14 * fact.ln().max(1.0), "Γ({n})");
            fact *= n as f64;
        }
        assert!(close(ln_gamma(0.5), PI.sqrt().ln(), 1e-14));
        assert!(close(ln_gamma(3.5), (15.0 * PI.sqrt() / 8.0).ln(), 1e-14));
        // Γ(171) is about 7.257e306.
        assert!(close(ln_gamma(171.0), 706.573_062_245_787_4, 1e-14));
    }

    #[test]
    fn chi2_survival_matches_closed_forms() {
        // dof 2: sf = e^{-x/2}; dof 1: sf = erfc(√(x/2)); dof 4: e^{-x/2} (1 + x/2).
        for x in [0.01, 0.5, 1.0, 3.0, 10.0, 50.0, 200.0] {
            assert!(close(chi2_sf(x, 2.0), (-x / 2.0).exp(), 1e-13), "dof 2 at {x}");
            assert!(close(chi2_sf(x, 4.0), (-x / 2.0).exp() * (1.0 + x / 2.0), 1e-13), "dof 4 at {x}");
        }
        // Table values: χ²(1) at 3.841458820694124 is 0.05; χ²(9) at 16.918977604620448 is 0.05.
        assert!(close(chi2_sf(3.841_458_820_694_124, 1.0), 0.05, 1e-12));
        assert!(close(chi2_sf(16.918_977_604_620_448, 9.0), 0.05, 1e-12));
        assert_eq!(chi2_sf(0.0, 3.0), 1.0);
        assert_eq!(chi2_sf(f64::INFINITY, 3.0), 0.0);
    }

    #[test]
    fn ldexp_scales_by_powers_of_two() {
        assert_eq!(ldexp(1.5, 3), 12.0);
        assert_eq!(ldexp(1.0, -1074), f64::from_bits(1));
        assert_eq!(ldexp(0.5, 1024), 2f64.powi(1023));
        assert_eq!(ldexp(ldexp(3.0, -1050), 1050), 3.0);
    }
}
