//! The bulk loops: whole batches through AES while another batch is
//! hashed, and the counters that feed them.

use super::ghash::{Material, Wide};
use super::{Block, Lanes, MaterialOf, NarrowOf, POWERS, Regs, Shape};
use crate::backend::PlaintextSink;
use crate::backend::bulk::Bulk;

/// The data counters, kept in memory order so that a register of them costs
/// one add: while the counter's last byte does not wrap inside a batch,
/// adding to that byte is inc32. A batch where it wraps takes the
/// byte-reversed route.
#[derive(Clone, Copy)]
pub(crate) struct Counters<V: Lanes> {
    /// Lanes `ctr, ctr + 1, ...`, as the blocks sit in memory.
    mem: V,
    /// The last byte of lane 0's counter.
    low: u32,
    pub(super) t: V::Token,
}

impl<V: Lanes> Counters<V> {
    /// From the first data counter, reflected (dword 0 is the counter).
    #[inline(always)]
    pub(super) fn new(t: V::Token, ctr: V::Narrow) -> Counters<V> {
        let low = ctr.low_u32() & 0xff;
        let reflected = V::splat(t, ctr).add32(V::dwords(t, 0, 0, 1));
        Counters { mem: reflected.byte_reverse(), low, t }
    }

    /// The token the counters were made with.
    #[inline(always)]
    pub(super) fn token(&self) -> V::Token {
        self.t
    }

    /// Fill `out` with the next registers of counter blocks, through AES's
    /// first step ([`Lanes::aes_first`], round key 0); moves on past them.
    #[inline(always)]
    pub(super) fn fill(&mut self, rk0: V, out: &mut [V]) {
        let per_reg = V::BLOCKS as u32;
        let n = out.len() as u32 * per_reg;
        if self.low + n - 1 <= 0xff {
            // The last byte is the top byte of each lane's fourth dword.
            for (g, o) in out.iter_mut().enumerate() {
                *o = self.mem.add32(V::dwords(self.t, 3, (g as u32 * per_reg) << 24, 0)).aes_first(rk0);
            }
        } else {
            let reflected = self.mem.byte_reverse();
            for (g, o) in out.iter_mut().enumerate() {
                *o = reflected.add32(V::dwords(self.t, 0, g as u32 * per_reg, 0)).byte_reverse().aes_first(rk0);
            }
        }
        // The last lane holds `low + per_reg - 1`: after the step it must
        // still fit the byte.
        self.mem = if self.low + per_reg - 1 + n <= 0xff {
            self.mem.add32(V::dwords(self.t, 3, n << 24, 0))
        } else {
            self.mem.byte_reverse().add32(V::dwords(self.t, 0, n, 0)).byte_reverse()
        };
        self.low = (self.low + n) & 0xff;
    }

    /// The next batch of counter blocks (see [`fill`](Self::fill)).
    #[inline(always)]
    pub(super) fn next<B: Regs<V>>(&mut self, rk0: V) -> B {
        let mut out = B::splat(rk0);
        self.fill(rk0, out.regs_mut());
        out
    }
}

/// AES rounds `from..R` and the last round on the registers `b`.
#[inline(always)]
pub(super) fn finish_rounds<V: Lanes, const R: usize>(t: V::Token, m: &Material<V::Narrow>, b: &mut [V], from: usize) {
    for i in from..R {
        let k = m.round_key::<V>(t, i);
        for x in b.iter_mut() {
            *x = x.aes_round(k);
        }
    }
    let last = m.round_key::<V>(t, R);
    for x in b.iter_mut() {
        *x = x.aes_last(last);
    }
}

/// The hash inside one bulk call: `PAIR` (1 or 2) batches share a
/// reduction, and the groups are lined up so that the last batch the call
/// hashes ends one (so nothing unreduced outlives the call).
#[derive(Clone, Copy)]
struct Hash<K: Shape> {
    t: <K::V as Lanes>::Token,
    /// The reduced hash of everything hashed so far.
    acc: <K::V as Lanes>::Narrow,
    /// Products of the current group.
    wide: Wide<K::V>,
    /// The place in its group of the next batch hashed (`0..PAIR`).
    position: usize,
}

impl<K: Shape> Hash<K> {
    /// Blocks per batch.
    const BATCH_BLOCKS: usize = K::V::BLOCKS * <K::Batch as Regs<K::V>>::LEN;

    /// A hash continuing from `acc` that will take `batches` more batches.
    #[inline(always)]
    fn new(t: <K::V as Lanes>::Token, acc: <K::V as Lanes>::Narrow, batches: usize) -> Hash<K> {
        const { assert!(K::PAIR == 1 || K::PAIR == 2) };
        Hash { t, acc, wide: Wide::new(t), position: (K::PAIR - batches % K::PAIR) % K::PAIR }
    }

    /// The table index of the first power for a batch hashed at place `p`
    /// of its group.
    #[inline(always)]
    const fn base(p: usize) -> usize {
        POWERS - (K::PAIR - p) * Self::BATCH_BLOCKS
    }

    /// The multiplies of register `i` of the batch at place `p` (`acc`
    /// joins block 0 when `fresh`).
    #[inline(always)]
    fn mul_add(&mut self, m: &MaterialOf<K>, x: K::V, i: usize, p: usize, fresh: bool) {
        let x = if i == 0 && fresh { x.xor(K::V::low(self.t, self.acc)) } else { x };
        let (h, hk) = m.powers_at::<K::V>(self.t, Self::base(p) + i * K::V::BLOCKS);
        self.wide.mul_add(x, h, hk);
    }

    /// `batches` batches were hashed into the group: reduce if it is done.
    #[inline(always)]
    fn advance(&mut self, batches: usize) {
        self.position += batches;
        if self.position >= K::PAIR {
            self.acc = self.wide.reduce();
            self.wide = Wide::new(self.t);
            self.position = 0;
        }
    }
}

/// Encrypt the batches of `io`; each batch's ciphertext is hashed while the
/// next is encrypted (`pending`: the batch before the first, if any), the
/// last one left in `pending`. The plaintext goes to `sink` too (whose
/// work, if any, runs on the integer units, which this loop leaves idle).
/// Messages of [`LAGGED_MIN`] batches or more, where the shape and key size
/// want it, go to [`seal_lagged`] instead.
#[inline(always)]
pub(crate) fn seal<K: Shape, const R: usize, S: PlaintextSink>(
    m: &MaterialOf<K>,
    ctr: &mut Counters<K::V>,
    acc: &mut NarrowOf<K>,
    pending: &mut Option<K::Batch>,
    io: Bulk<'_>,
    sink: &mut S,
) {
    if io.batches == 0 {
        return;
    }
    if K::LAGGED_SEAL[(R - 10) / 2] && pending.is_none() && io.batches >= LAGGED_MIN {
        return seal_lagged::<K, R, S>(m, ctr, acc, pending, io, sink);
    }
    let t = ctr.t;
    let mut c = *ctr;
    let hashed = io.batches - usize::from(pending.is_none());
    let mut hash = Hash::<K>::new(t, *acc, hashed);
    let mut batch = 0;
    let mut prev = match *pending {
        Some(p) => p,
        None => {
            // The first batch has nothing before it to hash.
            // SAFETY: `io.batches > 0` (checked above).
            let out = unsafe { seal_batch::<K, R, false, S>(&mut hash, m, &mut c, &io, 0, sink, None, 0, false) };
            batch = 1;
            out
        }
    };
    // The groups are lined up to end with the call: the first one may be
    // short by a batch, which then takes the last place (and starts the
    // group, so it takes `acc`). Then whole groups, each batch's place a
    // constant.
    if batch < io.batches && hash.position != 0 {
        // SAFETY: `batch < io.batches`.
        prev = unsafe {
            seal_batch::<K, R, true, S>(&mut hash, m, &mut c, &io, batch, sink, Some(&prev), K::PAIR - 1, true)
        };
        batch += 1;
    }
    while batch + K::PAIR <= io.batches {
        for p in 0..K::PAIR {
            let fresh = p == 0;
            // SAFETY: `batch + p < io.batches`.
            prev = unsafe {
                seal_batch::<K, R, true, S>(&mut hash, m, &mut c, &io, batch + p, sink, Some(&prev), p, fresh)
            };
        }
        batch += K::PAIR;
    }
    (*ctr, *acc, *pending) = (c, hash.acc, Some(prev));
}

/// Batches from which [`seal`] hashes each batch's ciphertext two batches
/// late, read back from the output ([`seal_lagged`]), on the shapes and key
/// sizes of [`Shape::LAGGED_SEAL`].
const LAGGED_MIN: usize = 3;

/// [`seal`] for a message of [`LAGGED_MIN`] batches or more, none pending:
/// batch `i`'s AES runs while batch `i - 2`'s ciphertext, read back from
/// the output, is hashed, its multiplies spread over the middle rounds as
/// when opening. Batch `n - 2` is hashed alone after the loop and batch
/// `n - 1` is left in `pending`.
///
/// [`seal`] holds the batch before in registers, which ties up a batch of
/// registers beside the round keys and packs its multiplies into the first
/// rounds. Reading that batch back from memory one batch late instead
/// loads 64 bytes right after they were stored, and waited for the stores
/// (16 KiB 22% slower). Two batches late the loads find nothing to wait
/// for, and the loop runs like the one that opens.
#[inline(always)]
fn seal_lagged<K: Shape, const R: usize, S: PlaintextSink>(
    m: &MaterialOf<K>,
    ctr: &mut Counters<K::V>,
    acc: &mut NarrowOf<K>,
    pending: &mut Option<K::Batch>,
    io: Bulk<'_>,
    sink: &mut S,
) {
    let t = ctr.t;
    let mut c = *ctr;
    let n = io.batches;
    debug_assert!(n >= LAGGED_MIN);
    // Batches 0..n - 1 are hashed here; the groups end with batch n - 2.
    let mut hash = Hash::<K>::new(t, *acc, n - 1);
    for batch in 0..2 {
        // SAFETY: `batch < 2 <= n`.
        unsafe { seal_batch::<K, R, false, S>(&mut hash, m, &mut c, &io, batch, sink, None, 0, false) };
    }
    let mut batch = 2;
    if hash.position != 0 {
        // SAFETY: `batch < n - 1`: a short first group means an odd number
        // of hashed batches, `n - 1`, so n >= 4.
        unsafe { seal_batch_lagged::<K, R, S, false>(&mut hash, m, &mut c, &io, batch, sink, K::PAIR - 1, true) };
        batch += 1;
    }
    while batch + K::PAIR < n {
        for p in 0..K::PAIR {
            // SAFETY: `batch + p < n - 1`.
            unsafe { seal_batch_lagged::<K, R, S, false>(&mut hash, m, &mut c, &io, batch + p, sink, p, p == 0) };
        }
        batch += K::PAIR;
    }
    // Fewer than a group's batches left, the last one kept: they start a
    // group.
    while batch + 1 < n {
        let p = hash.position;
        // SAFETY: `batch < n - 1`.
        unsafe { seal_batch_lagged::<K, R, S, false>(&mut hash, m, &mut c, &io, batch, sink, p, p == 0) };
        batch += 1;
    }
    let p = hash.position;
    // SAFETY: `batch = n - 1 >= 2`.
    let last = unsafe { seal_batch_lagged::<K, R, S, true>(&mut hash, m, &mut c, &io, batch, sink, p, p == 0) };
    // Batch n - 2, whose place ends the last group.
    let p = hash.position;
    for i in 0..<K::Batch as Regs<K::V>>::LEN {
        // SAFETY: register `i` of batch `n - 2`, written above.
        let x = unsafe { K::V::load(t, io.output(n - 2, 16 * K::V::BLOCKS * i)) };
        hash.mul_add(m, x.byte_reverse(), i, p, p == 0);
    }
    hash.advance(1);
    (*ctr, *acc, *pending) = (c, hash.acc, Some(last));
}

/// Encrypt batch `batch` while batch `batch - 2` (its ciphertext read back
/// from the output) is hashed at place `p` of its group; returns batch
/// `batch`'s ciphertext, reflected when `KEEP` (the caller keeps it).
///
/// # Safety
/// `2 <= batch < io.batches`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn seal_batch_lagged<K: Shape, const R: usize, S: PlaintextSink, const KEEP: bool>(
    hash: &mut Hash<K>,
    m: &MaterialOf<K>,
    ctr: &mut Counters<K::V>,
    io: &Bulk<'_>,
    batch: usize,
    sink: &mut S,
    p: usize,
    fresh: bool,
) -> K::Batch {
    let t = hash.t;
    // SAFETY: batch `batch - 2`, written two batches ago (caller:
    // `2 <= batch < io.batches`); only read.
    let hashed = unsafe { io.output(batch - 2, 0) }.cast_const();
    // SAFETY: as above.
    let ks = unsafe { rounds_hashing::<K, R>(m, ctr, hashed, Products::Group { hash, p, fresh }) };
    // SAFETY: `batch < io.batches` (caller).
    unsafe { io.feed(batch, sink) };
    // SAFETY: `batch < io.batches` (caller).
    let out = unsafe { store_xor(io, batch, &load_batch::<K::V, K::Batch>(t, io, batch), &ks) };
    if KEEP { reflected(out) } else { out }
}

/// Encrypt batch `batch`, hashing `prev` (when `HASH`: the batch before,
/// at place `p` of its group) in the first AES rounds; then the rest, the
/// XOR with the input (handed to `sink`), the store. Returns the
/// ciphertext reflected.
///
/// # Safety
/// `batch < io.batches`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn seal_batch<K: Shape, const R: usize, const HASH: bool, S: PlaintextSink>(
    hash: &mut Hash<K>,
    m: &MaterialOf<K>,
    ctr: &mut Counters<K::V>,
    io: &Bulk<'_>,
    batch: usize,
    sink: &mut S,
    prev: Option<&K::Batch>,
    p: usize,
    fresh: bool,
) -> K::Batch {
    let t = ctr.t;
    let mut ks: K::Batch = ctr.next(m.round_key::<K::V>(t, 0));
    let mut done = 0;
    if let (true, Some(x)) = (HASH, prev) {
        for (i, &block) in x.regs().iter().enumerate() {
            let k = m.round_key::<K::V>(t, 1 + i);
            for y in ks.regs_mut() {
                *y = y.aes_round(k);
            }
            hash.mul_add(m, block, i, p, fresh);
        }
        hash.advance(1);
        done = x.regs().len();
    }
    finish_rounds::<K::V, R>(t, m, ks.regs_mut(), 1 + done);
    // SAFETY: `batch < io.batches` (caller).
    unsafe { io.feed(batch, sink) };
    // SAFETY: as above.
    reflected(unsafe { store_xor(io, batch, &load_batch::<K::V, K::Batch>(t, io, batch), &ks) })
}

/// Decrypt the batches of `io`, each but the last hashed while it is
/// decrypted (a single batch until a reduction group starts, then whole
/// groups); `acc` becomes the reduced hash of those.
///
/// When `tail_blocks` is given (these are the message's last batches, and
/// that many blocks follow them), the last batch is hashed as it is
/// decrypted too, with `acc` joining it, but not reduced: its products
/// start the final hash, returned for `tail::finish` to add the tail and
/// the length block to under one reduction (so its powers start at
/// `H^(batch blocks + tail_blocks + 1)`). Reducing it here put one more
/// reduction in the chain that ends every message (opens of 576 and 1420
/// bytes were 8-10 ns slower than seals); leaving its ciphertext for the
/// final hash, as sealing does, made it 5-8% slower than sealing at 1420
/// bytes, its multiplies all after the last AES round.
///
/// Otherwise (more batches follow in another call) the last batch's
/// ciphertext is left in `pending`, reflected.
#[inline(always)]
pub(crate) fn open<K: Shape, const R: usize>(
    m: &MaterialOf<K>,
    ctr: &mut Counters<K::V>,
    acc: &mut NarrowOf<K>,
    pending: &mut Option<K::Batch>,
    io: Bulk<'_>,
    tail_blocks: Option<usize>,
) -> Option<Wide<K::V>> {
    if io.batches == 0 {
        return None;
    }
    let mut c = *ctr;
    let t = c.t;
    if let Some(prev) = pending.take() {
        // A batch left by an earlier call (none of today's callers leaves
        // one before a second bulk): hashed on its own, in the last place
        // of a group of one.
        let mut alone = Hash::<K>::new(t, *acc, 1);
        let p = alone.position;
        for (i, &x) in prev.regs().iter().enumerate() {
            alone.mul_add(m, x, i, p, true);
        }
        alone.advance(1);
        *acc = alone.acc;
    }
    let hashed = io.batches - 1;
    let mut hash = Hash::<K>::new(t, *acc, hashed);
    let mut batch = 0;
    // As when sealing: a short first group takes the last place.
    if batch < hashed && hash.position != 0 {
        // SAFETY: `batch < hashed < io.batches`.
        unsafe { open_batch::<K, R>(&mut hash, m, &mut c, &io, batch, K::PAIR - 1, true) };
        batch += 1;
    }
    while batch + K::PAIR <= hashed {
        for p in 0..K::PAIR {
            // SAFETY: `batch + p < hashed < io.batches`.
            unsafe { open_batch::<K, R>(&mut hash, m, &mut c, &io, batch + p, p, p == 0) };
        }
        batch += K::PAIR;
    }
    let Some(tail_blocks) = tail_blocks else {
        // SAFETY: `hashed = io.batches - 1` is the last batch.
        let last = unsafe { open_unhashed::<K, R>(m, &mut c, &io, hashed) };
        (*ctr, *acc, *pending) = (c, hash.acc, Some(last));
        return None;
    };
    let first_power = POWERS - (Hash::<K>::BATCH_BLOCKS + tail_blocks + 1);
    // SAFETY: `hashed = io.batches - 1` is the last batch.
    let started = unsafe { open_last::<K, R>(m, &mut c, &io, hashed, hash.acc, first_power) };
    *ctr = c;
    Some(started)
}

/// Decrypt the last batch, `batch`, multiplying its ciphertext (with `acc`
/// joining its first block) by the powers from table index `first_power`
/// meanwhile, spread over the middle rounds ([`rounds_hashing`]); returns
/// the products, unreduced.
///
/// # Safety
/// `batch < io.batches`.
#[inline(always)]
unsafe fn open_last<K: Shape, const R: usize>(
    m: &MaterialOf<K>,
    ctr: &mut Counters<K::V>,
    io: &Bulk<'_>,
    batch: usize,
    acc: NarrowOf<K>,
    first_power: usize,
) -> Wide<K::V> {
    let t = ctr.t;
    let mut wide = Wide::<K::V>::new(t);
    let into = Products::Final { wide: &mut wide, acc, first_power };
    // SAFETY: a batch that exists (caller).
    let ks = unsafe { rounds_hashing::<K, R>(m, ctr, io.input(batch, 0), into) };
    // SAFETY: as above.
    unsafe { store_xor(io, batch, &load_batch::<K::V, K::Batch>(t, io, batch), &ks) };
    wide
}

/// Where the products of a batch hashed during the rounds go.
enum Products<'a, K: Shape> {
    /// Place `p` of a reduction group (`fresh`: the group's first, which
    /// takes the chain's hash).
    Group { hash: &'a mut Hash<K>, p: usize, fresh: bool },
    /// The final hash's products: `acc` joins the batch's first block, whose
    /// power is at table index `first_power`.
    Final { wide: &'a mut Wide<K::V>, acc: NarrowOf<K>, first_power: usize },
}

/// The next batch of counter blocks through AES while the batch at
/// `hashed` (ciphertext, as it lies in memory) is multiplied into `into`:
/// one register's multiplies every `(R - 1) / registers` rounds, spread
/// over the middle rounds. Packed into the first rounds, the multiplies
/// of one batch held up its AES on the shared ports, and AES-256 on
/// `vaes512` ran at one of two speeds 12% apart from one process to the
/// next; spread, it runs at the faster one or close to it.
///
/// # Safety
/// `hashed` points to a whole batch of readable bytes.
#[inline(always)]
unsafe fn rounds_hashing<K: Shape, const R: usize>(
    m: &MaterialOf<K>,
    ctr: &mut Counters<K::V>,
    hashed: *const u8,
    mut into: Products<'_, K>,
) -> K::Batch {
    let t = ctr.t;
    let regs = <K::Batch as Regs<K::V>>::LEN;
    // Every register gets a middle round (true of every shape and key size).
    const { assert!(<K::Batch as Regs<K::V>>::LEN < R) };
    let stride = (R - 1) / regs;
    let mut ks: K::Batch = ctr.next(m.round_key::<K::V>(t, 0));
    for r in 1..R {
        let k = m.round_key::<K::V>(t, r);
        for y in ks.regs_mut() {
            *y = y.aes_round(k);
        }
        let i = (r - 1) / stride;
        if (r - 1) % stride == 0 && i < regs {
            // SAFETY: register `i` of the batch at `hashed` (caller).
            let x = unsafe { K::V::load(t, hashed.add(16 * K::V::BLOCKS * i)) }.byte_reverse();
            match &mut into {
                Products::Group { hash, p, fresh } => hash.mul_add(m, x, i, *p, *fresh),
                Products::Final { wide, acc, first_power } => {
                    let x = if i == 0 { x.xor(K::V::low(t, *acc)) } else { x };
                    let (h, hk) = m.powers_at::<K::V>(t, *first_power + i * K::V::BLOCKS);
                    wide.mul_add(x, h, hk);
                }
            }
        }
    }
    if let Products::Group { hash, .. } = into {
        hash.advance(1);
    }
    finish_rounds::<K::V, R>(t, m, ks.regs_mut(), R);
    ks
}

/// Decrypt batch `batch` without hashing it; returns its ciphertext
/// reflected, for the final hash.
///
/// # Safety
/// `batch < io.batches`.
#[inline(always)]
unsafe fn open_unhashed<K: Shape, const R: usize>(
    m: &MaterialOf<K>,
    ctr: &mut Counters<K::V>,
    io: &Bulk<'_>,
    batch: usize,
) -> K::Batch {
    let t = ctr.t;
    let rk0 = m.round_key::<K::V>(t, 0);
    // SAFETY: the batch exists (caller).
    let ct: K::Batch = unsafe { load_batch(t, io, batch) };
    let mut ks: K::Batch = ctr.next(rk0);
    finish_rounds::<K::V, R>(t, m, ks.regs_mut(), 1);
    // SAFETY: as above.
    unsafe { store_xor(io, batch, &ct, &ks) };
    reflected(ct)
}

/// Decrypt batch `batch`, hashing it into its group at place `p`
/// meanwhile ([`rounds_hashing`]).
///
/// One batch at a time, as sealing goes. Two batches a call (their rounds
/// interleaved, the pair hashed in their first eight rounds) kept two
/// batches of keystream and ciphertext in registers beside the round keys,
/// more than the register file, and the keystream went to the stack between
/// rounds. The ciphertext is read where it is used, for the hash in the
/// rounds and again for the XOR at the end, so that only the keystream
/// stays in registers.
///
/// # Safety
/// `batch < io.batches`.
#[inline(always)]
unsafe fn open_batch<K: Shape, const R: usize>(
    hash: &mut Hash<K>,
    m: &MaterialOf<K>,
    ctr: &mut Counters<K::V>,
    io: &Bulk<'_>,
    batch: usize,
    p: usize,
    fresh: bool,
) {
    let t = hash.t;
    // SAFETY: a batch that exists (caller).
    let ks = unsafe { rounds_hashing::<K, R>(m, ctr, io.input(batch, 0), Products::Group { hash, p, fresh }) };
    // SAFETY: as above.
    unsafe { store_xor(io, batch, &load_batch::<K::V, K::Batch>(t, io, batch), &ks) };
}

/// The registers of input batch `batch`.
///
/// # Safety
/// `batch < io.batches`.
#[inline(always)]
unsafe fn load_batch<V: Lanes, B: Regs<V>>(t: V::Token, io: &Bulk<'_>, batch: usize) -> B {
    let mut regs = B::splat(V::zero(t));
    for (r, x) in regs.regs_mut().iter_mut().enumerate() {
        // SAFETY: register `r` of a batch that exists (caller).
        *x = unsafe { V::load(t, io.input(batch, 16 * V::BLOCKS * r)) };
    }
    regs
}

/// Store `input ^ keystream` as output batch `batch`, and return it.
///
/// # Safety
/// `batch < io.batches`.
#[inline(always)]
unsafe fn store_xor<V: Lanes, B: Regs<V>>(io: &Bulk<'_>, batch: usize, input: &B, ks: &B) -> B {
    let mut out = *ks;
    for (r, (o, i)) in out.regs_mut().iter_mut().zip(input.regs()).enumerate() {
        *o = i.xor(*o);
        // SAFETY: register `r` of a batch that exists (caller).
        unsafe { o.store(io.output(batch, 16 * V::BLOCKS * r)) };
    }
    out
}

/// The registers byte-reversed (reflected), for hashing.
#[inline(always)]
pub(super) fn reflected<V: Lanes, B: Regs<V>>(mut x: B) -> B {
    for o in x.regs_mut() {
        *o = o.byte_reverse();
    }
    x
}
