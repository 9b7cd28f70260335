//! Timing for the benches on a shared, noisy machine: two (or three)
//! candidates run alternately, batch after batch, and each keeps its fastest batch
//! (interference only ever adds time), so their ratio is taken under the
//! same conditions.

use std::time::{Duration, Instant};

/// The fastest of `rounds` batches of `iters` calls of each closure,
/// alternating: (a, b), nanoseconds per call.
pub fn race(rounds: usize, iters: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let (mut best_a, mut best_b) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            a();
        }
        best_a = best_a.min(t.elapsed());
        let t = Instant::now();
        for _ in 0..iters {
            b();
        }
        best_b = best_b.min(t.elapsed());
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / iters.max(1) as f64;
    (per(best_a), per(best_b))
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
    let time = |f: &mut dyn FnMut(), best: &mut Duration| {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        *best = (*best).min(t.elapsed());
    };
    for _ in 0..rounds {
        let [ba, bb, bc] = &mut best;
        time(&mut a, ba);
        time(&mut b, bb);
        time(&mut c, bc);
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / iters.max(1) as f64;
    (per(best[0]), per(best[1]), per(best[2]))
}
