//! Timing for the benches on a shared, noisy machine: two (or three)
//! candidates run alternately, batch after batch, and each keeps its fastest batch
//! (interference only ever adds time), so their ratio is taken under the
//! same conditions.

use std::time::{Duration, Instant};

/// The fastest of `rounds` batches of `iters` calls of each closure,
/// alternating: (a, b), nanoseconds per call.
pub fn race(rounds: usize, iters: usize, a: impl FnMut(), b: impl FnMut()) -> (f64, f64) {
    race_for(Duration::ZERO, rounds, iters, a, b)
}

/// [`race`] for at least `rounds` rounds and until `budget` has passed.
///
/// Interference on a shared host can come in spells of seconds: forty
/// rounds of a millisecond may all fall inside one, and then the fastest
/// batch measures the spell, not the code (on 2026-12-08 the ESP bench read
/// 58-70 ns for a burst that a driver keeping the best of 400 slices over
/// two seconds read 42-43 ns, run after run). Racing for a fixed time gives
/// each pair of batches many chances to land between spells.
pub fn race_for(budget: Duration, rounds: usize, iters: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let start = Instant::now();
    let mut best = [Duration::MAX; 2];
    let mut done = 0;
    while done < rounds || start.elapsed() < budget {
        let [ba, bb] = &mut best;
        batch(iters, &mut a, ba);
        batch(iters, &mut b, bb);
        done += 1;
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
