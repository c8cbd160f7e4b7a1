//! Vectorizable exp, sigmoid and tanh over f32 slices. libm's `expf` is a call per element that
//! the compiler cannot vectorize; these are branch-free polynomials (Cephes' `expf`: within
//! 2 ulp of the true value) that it turns into SIMD loops of fused multiply-adds.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 in two parts, so that `x - n ln 2` loses no bits for large `n` (Cody and Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding then subtracting 1.5 * 2^23 rounds to the nearest integer without a `round` call.
const ROUND: f32 = 12_582_912.0;

/// e^x for one element, written so that a loop over it vectorizes.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Beyond these e^x over- or underflows f32; clamping keeps 2^n a normal number.
    let x = x.clamp(-87.0, 88.0);
    // t's low mantissa bits hold n = round(x / ln 2) as an integer: no float-to-int conversion.
    let t = x.mul_add(LOG2_E, ROUND);
    let n = t - ROUND;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    // Fused multiply-adds: one instruction each where the caller is compiled for FMA.
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_2e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    // Cephes writes 5.000_000_1e-1, which is 0.5 in f32.
    p = p.mul_add(r, 0.5);
    let e_r = (p * r).mul_add(r, r) + 1.0;
    let biased_n = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    let two_n = f32::from_bits(biased_n << 23);
    e_r * two_n
}

/// 1 / (1 + e^-x).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh x = 1 - 2 / (e^2x + 1): within 1e-7 of the true value (absolute).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// Defines `fn NAME(args)` whose body is compiled three times and chosen at run time: for
/// AVX-512 (16 lanes, 32 registers: the constants of exp stay in registers), for AVX2 and FMA
/// (8 lanes), and for x86-64's baseline, so that the binary still runs on any x86-64. The same
/// source gives the same bits on each: Rust never fuses a multiply and an add on its own, only
/// where the source says `mul_add`. The body must be a loop the compiler can vectorize.
macro_rules! simd_fn {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
                if avx2 && std::is_x86_feature_detected!("avx512f") {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    unsafe fn avx512($($arg: $ty),*) {
                        body($($arg),*)
                    }
                    // SAFETY: the CPU was just checked for the three features.
                    return unsafe { avx512($($arg),*) };
                }
                if avx2 {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn avx2($($arg: $ty),*) {
                        body($($arg),*)
                    }
                    // SAFETY: the CPU was just checked for both features.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

simd_fn! {
    /// `sum += values`, element by element: the partial sums of a gradient, added up.
    pub(crate) fn add(sum: &mut [f32], values: &[f32]) {
        for (s, v) in sum.iter_mut().zip(values) {
            *s += v;
        }
    }
}

simd_fn! {
    /// Every element of `xs` through the sigmoid, in place.
    pub fn sigmoid_in_place(xs: &mut [f32]) {
        for x in xs {
            *x = sigmoid(*x);
        }
    }
}

simd_fn! {
    /// Every element of `xs` through tanh, in place.
    pub fn tanh_in_place(xs: &mut [f32]) {
        for x in xs {
            *x = tanh(*x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn exp_is_within_two_ulp_of_libm(x in -80.0f32..80.0) {
            let (ours, libm) = (exp(x), x.exp());
            prop_assert!((ours - libm).abs() <= 2.5 * f32::EPSILON * libm, "{x}: {ours} vs {libm}");
        }

        #[test]
        fn sigmoid_and_tanh_match_libm(x in -100.0f32..100.0) {
            let sigmoid_libm = 1.0 / (1.0 + (-x).exp());
            prop_assert!((sigmoid(x) - sigmoid_libm).abs() <= 2e-7, "sigmoid {x}");
            prop_assert!((tanh(x) - x.tanh()).abs() <= 3e-7, "tanh {x}");
        }
    }

    /// The vector paths (AVX-512 or AVX2 on this machine) give the scalar functions' bits.
    #[test]
    fn in_place_passes_give_the_scalar_bits() {
        let xs: Vec<f32> = (0..1000).map(|k| (k as f32 * 0.731).sin() * 40.0).collect();
        let (mut s, mut t) = (xs.clone(), xs.clone());
        sigmoid_in_place(&mut s);
        tanh_in_place(&mut t);
        for (k, x) in xs.iter().enumerate() {
            assert_eq!(s[k].to_bits(), sigmoid(*x).to_bits(), "sigmoid {x}");
            assert_eq!(t[k].to_bits(), tanh(*x).to_bits(), "tanh {x}");
        }
    }

    #[test]
    fn saturation_gives_exact_limits_without_nan() {
        assert_eq!(sigmoid(1e4), 1.0);
        assert!(sigmoid(-1e4) < 1e-37);
        assert_eq!(tanh(1e4), 1.0);
        assert_eq!(tanh(-1e4), -1.0);
        assert!(exp(f32::NEG_INFINITY) < 1e-37 && exp(f32::INFINITY).is_finite());
    }
}
