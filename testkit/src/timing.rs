//! Timing for the benches on a shared, noisy machine: two (or three)
//! candidates run alternately, batch after batch, and each keeps its fastest batch
//! (interference only ever adds time), so their ratio is taken under the
//! same conditions.

use std::time::{Duration, Instant};

/// The fastest of `rounds` batches of `iters` calls of each closure,
/// alternating: (a, b), nanoseconds per call.
pub fn race(rounds: usize, iters: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let mut best = [Duration::MAX; 2];
    for _ in 0..rounds {
        let [ba, bb] = &mut best;
        batch(iters, &mut a, ba);
        batch(iters, &mut b, bb);
    }
    (per_call(best[0], iters), per_call(best[1], iters))
}

/// [`race`] of three: the fastest of `rounds` batches of `iters` calls of
/// each closure, in turn: (a, b, c), nanoseconds per call.
pub fn race3(
    rounds: usize,
    iters: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
    mut c: impl FnMut(),
) -> (f64, f64, f64) {
    let mut best = [Duration::MAX; 3];
    for _ in 0..rounds {
        let [ba, bb, bc] = &mut best;
        batch(iters, &mut a, ba);
        batch(iters, &mut b, bb);
        batch(iters, &mut c, bc);
    }
    (per_call(best[0], iters), per_call(best[1], iters), per_call(best[2], iters))
}

/// One batch of `iters` calls of `f`, keeping the fastest time in `best`.
/// Inlined with `f`, so that each candidate's loop is its own code.
#[inline(always)]
fn batch(iters: usize, f: &mut impl FnMut(), best: &mut Duration) {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    *best = (*best).min(t.elapsed());
}

fn per_call(d: Duration, iters: usize) -> f64 {
    d.as_secs_f64() * 1e9 / iters.max(1) as f64
}
