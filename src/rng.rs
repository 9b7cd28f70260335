//! The per-thread random generator behind sampled verification and fault
//! injection: SplitMix64, seeded on first use from std's `RandomState`
//! (keys from the operating system), so which messages are checked cannot
//! be predicted from outside. Not for keys or nonces.

use std::cell::Cell;

thread_local! {
    static RANDOM: Cell<u64> = const { Cell::new(0) };
}

fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1
}

/// A random number from the per-thread generator.
#[inline]
pub(crate) fn random() -> u64 {
    let state = RANDOM
        .try_with(|s| {
            let mut x = s.get();
            if x == 0 {
                x = random_seed();
            }
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            s.set(x);
            x
        })
        .unwrap_or_else(|_| random_seed());
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random number in `0..n` (`n` >= 1), by multiply-high (no division).
#[inline]
pub(crate) fn random_below(n: u64) -> u64 {
    ((u128::from(random()) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_below_stays_in_range() {
        for n in [1u64, 2, 3, 1000, u64::MAX] {
            for _ in 0..1000 {
                assert!(random_below(n) < n);
            }
        }
    }
}
