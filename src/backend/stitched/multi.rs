//! Several short messages at once, one per 128-bit lane: the kernel under
//! `Gcm::encrypt_batch` / `decrypt_batch`.
//!
//! # Why
//!
//! A message of a few blocks is a chain of dependent AES rounds followed by
//! a short chain of multiplies, so single-message code leaves the AES units
//! mostly waiting. Here [`GROUP`] messages go through together: each
//! 128-bit lane of a register holds a different message (lane `l` of the
//! register for block `k` is block `k` of message `l`), one register of a
//! backend covers `BLOCKS` messages, and `GROUP / BLOCKS` registers (a
//! *set*) cover them all, so every AES round instruction of a set advances
//! one block of `GROUP` messages. `CH` blocks per message go through the
//! rounds together, so `GROUP / BLOCKS * CH` registers are in flight: enough
//! to fill the AES pipes on every width.
//!
//! # Lengths and the hash
//!
//! Messages of a group may differ in length: they are lined up at their
//! *ends*. A group has `B` blocks, its longest message's count; a message of
//! `b` blocks starts at block `B - b`, and its lanes before that hold
//! nothing (zero data, never read or written). So block `k` of every lane is
//! multiplied by the same power of H, `H^(B + 1 - k)` (the length block takes
//! `H^1`), broadcast from the key's table, and a lane's missing blocks add
//! zero. Each message's AAD (at most a block) is hashed first, all lanes at
//! once (`AAD * H`, one reduction per lane), and joins the message's first
//! data block, where the Horner form of GHASH wants it. Long groups are
//! hashed in segments of at most 32 blocks (the powers the key keeps), each
//! reduced lane by lane and joining the next. Counter blocks are built from
//! each lane's `J0` and its start, one add per register, and `E(K, J0)` for
//! the tags rides with the first blocks through the rounds.
//!
//! # The short kernel
//!
//! On 512-bit registers (four blocks), whole registers' worth of messages
//! of one block count, at most sixteen blocks each, with 96-bit IVs take
//! [`run_short`] instead: each message is one to four registers, its whole
//! registers' counters are counted in message order (a register a
//! message, so their keystream needs no transpose), and transposes move
//! the rest between message order (for memory) and block order (for the
//! hash). It leaves out the lane kernel's starts, tails and segments,
//! whose bookkeeping cost more than the rounds for such messages. For
//! messages of one register ([`run_short_piped`]) it is software-pipelined:
//! one set's multiplies run between the next set's rounds. A set whose four
//! messages share a length block `L` adds `L * H`, computed once and kept
//! for the batch ([`LengthHash`]), in place of four lanes' multiply.
//!
//! The results are those of single calls, byte for byte and tag for tag
//! (`tests/batch.rs`, the group tests in `tests.rs`, and every 96-bit-IV
//! CAVP case through the batch path).

use super::ghash::Wide;
use super::{Block, Lanes, MaterialOf, NarrowOf, Shape, TokenOf};
use crate::backend::group::{GROUP, LengthHash, Message};

/// Blocks hashed per reduction when a group is long.
const SEGMENT: usize = 32;

/// Run up to [`GROUP`] messages that `group::fits` allows; `tags[i]` gets
/// message `i`'s tag (sealing: the tag to send; opening: the one computed
/// over the ciphertext, for the caller to compare). The messages go through
/// in passes of `Q` registers (`Q * BLOCKS` messages) in lockstep, `CH`
/// blocks of each at a time: enough in flight to keep the AES pipes busy
/// and few enough to stay in registers. Inlined into the backend's entry
/// point.
#[inline(always)]
pub(crate) fn run<K: Shape, const Q: usize, const CH: usize, const DECRYPT: bool>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    msgs: &mut [Message<'_>],
    tags: &mut [[u8; 16]],
    lengths: &mut LengthHash,
) {
    match m.rounds {
        10 => run_rounds::<K, Q, CH, DECRYPT, 10>(t, m, msgs, tags, lengths),
        12 => run_rounds::<K, Q, CH, DECRYPT, 12>(t, m, msgs, tags, lengths),
        _ => run_rounds::<K, Q, CH, DECRYPT, 14>(t, m, msgs, tags, lengths),
    }
}

/// What the kernel knows about one lane.
#[derive(Clone, Copy)]
struct LaneInfo {
    /// Where group block 0 would be: the data less 16 bytes per block
    /// before the message's start (never dereferenced below the data).
    base: *mut u8,
    /// The group block at which the message starts (`usize::MAX`: an empty
    /// lane).
    start: usize,
    /// Bytes in its last block (the group's last, `1..=16`).
    tail: usize,
}

const EMPTY: LaneInfo = LaneInfo { base: core::ptr::null_mut(), start: usize::MAX, tail: 0 };

/// One register's messages through a pass: their lanes and running state.
#[derive(Clone, Copy)]
struct Set<V: Lanes> {
    lanes: [LaneInfo; 4],
    /// Each lane's counter for group block 0.
    ctr: V,
    /// `E(K, J0)` per lane (in the rounds until the first chunk is done).
    tag_mask: V,
    /// Each lane's `AAD * H`: it joins the message's first data block.
    aad_hash: V,
    /// The hash of the segments before (zero in lanes not started yet).
    carry: V,
    /// Products of the current segment.
    wide: Wide<V>,
    /// Each lane's length block.
    lengths: V,
}

#[inline(always)]
fn run_rounds<K: Shape, const Q: usize, const CH: usize, const DECRYPT: bool, const R: usize>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    msgs: &mut [Message<'_>],
    tags: &mut [[u8; 16]],
    lengths: &mut LengthHash,
) {
    let count = msgs.len().min(GROUP).min(tags.len());
    if K::V::BLOCKS == ONE_REGISTER_BLOCKS
        && count == msgs.len()
        && count.is_multiple_of(ONE_REGISTER_BLOCKS)
        && let Some(blocks) = one_block_count(msgs)
    {
        // Whole registers of messages of one block count, at most a
        // register each (the common burst of one packet size): the short
        // kernel.
        match blocks {
            1 => run_short_piped::<K, DECRYPT, R, 1>(t, m, msgs, tags, lengths),
            2 => run_short_piped::<K, DECRYPT, R, 2>(t, m, msgs, tags, lengths),
            3 => run_short_piped::<K, DECRYPT, R, 3>(t, m, msgs, tags, lengths),
            4 => run_short_piped::<K, DECRYPT, R, 4>(t, m, msgs, tags, lengths),
            5 => run_short::<K, DECRYPT, R, 5>(t, m, msgs, tags, lengths),
            6 => run_short::<K, DECRYPT, R, 6>(t, m, msgs, tags, lengths),
            7 => run_short::<K, DECRYPT, R, 7>(t, m, msgs, tags, lengths),
            8 => run_short::<K, DECRYPT, R, 8>(t, m, msgs, tags, lengths),
            9 => run_short::<K, DECRYPT, R, 9>(t, m, msgs, tags, lengths),
            10 => run_short::<K, DECRYPT, R, 10>(t, m, msgs, tags, lengths),
            11 => run_short::<K, DECRYPT, R, 11>(t, m, msgs, tags, lengths),
            12 => run_short::<K, DECRYPT, R, 12>(t, m, msgs, tags, lengths),
            13 => run_short::<K, DECRYPT, R, 13>(t, m, msgs, tags, lengths),
            14 => run_short::<K, DECRYPT, R, 14>(t, m, msgs, tags, lengths),
            15 => run_short::<K, DECRYPT, R, 15>(t, m, msgs, tags, lengths),
            _ => run_short::<K, DECRYPT, R, 16>(t, m, msgs, tags, lengths),
        }
        return;
    }
    let blocks = msgs.iter().take(count).map(|msg| msg.data.len().div_ceil(16)).max().unwrap_or(0);
    if blocks == 0 {
        return;
    }
    // Rounded up to whole chunks: blocks past `blocks` are empty in every
    // lane (zero data, zero powers).
    let chunks = blocks.div_ceil(CH);
    let per_pass = Q * K::V::BLOCKS;
    let mut first = 0;
    while first < count {
        let pass = msgs.get_mut(first..count.min(first + per_pass)).unwrap_or_default();
        // (A loop, not `array::from_fn`: a closure would not be inlined
        // into the entry point, and its instructions would become calls.)
        // Every lane full and starting at block 0 (messages of one block
        // count): whole blocks need no masks.
        let uniform = pass.len() == per_pass && pass.iter().all(|msg| msg.data.len().div_ceil(16) == blocks);
        let mut sets = [set_up::<K>(t, m, &mut [], blocks, false); Q];
        for (q, set) in sets.iter_mut().enumerate() {
            *set = set_up::<K>(t, m, pass.get_mut(q * K::V::BLOCKS..).unwrap_or_default(), blocks, uniform);
        }
        for chunk in 0..chunks {
            match (chunk, uniform) {
                (0, true) => run_chunk::<K, Q, CH, DECRYPT, R, true, true>(t, m, &mut sets, blocks, 0),
                (0, false) => run_chunk::<K, Q, CH, DECRYPT, R, true, false>(t, m, &mut sets, blocks, 0),
                (_, true) => run_chunk::<K, Q, CH, DECRYPT, R, false, true>(t, m, &mut sets, blocks, chunk * CH),
                (_, false) => run_chunk::<K, Q, CH, DECRYPT, R, false, false>(t, m, &mut sets, blocks, chunk * CH),
            }
        }
        let (h1, hk1) = m.power_splat::<K::V>(t, 1);
        for (q, set) in sets.iter_mut().enumerate() {
            set.wide.mul_add(set.lengths, h1, hk1);
            let hash = set.wide.reduce_lanes().byte_reverse().xor(set.tag_mask);
            for i in 0..K::V::BLOCKS {
                let at = first + q * K::V::BLOCKS + i;
                if let Some(tag) = tags.get_mut(at).filter(|_| at < count) {
                    *tag = hash.lane(i).to_bytes();
                }
            }
        }
        first += per_pass;
    }
}

/// The block count every message of `msgs` has, if they share one of at
/// most four registers' worth ([`SHORT_BLOCKS`]) and every `J0` counter is
/// 1 (96-bit IVs): what [`run_short`] takes.
#[inline(always)]
fn one_block_count(msgs: &[Message<'_>]) -> Option<usize> {
    let blocks = msgs.first()?.data.len().div_ceil(16);
    let same = msgs.iter().all(|msg| msg.data.len().div_ceil(16) == blocks && msg.j0 as u32 == 1);
    (same && (1..=SHORT_BLOCKS).contains(&blocks)).then_some(blocks)
}

/// Blocks per register of the widths the short kernel runs on.
const ONE_REGISTER_BLOCKS: usize = 4;

/// The longest message the short kernel takes: four registers.
const SHORT_BLOCKS: usize = 4 * ONE_REGISTER_BLOCKS;

/// Sets of four messages of `B` blocks each (`B` at most four registers),
/// all of whose `J0` counters are 1 (96-bit IVs), on a width of four
/// blocks a register, set by set: a set's counters go through AES together
/// (`B` registers and the `E(K, J0)` register), each message is read and
/// written as one register with a byte mask (past four blocks, whole
/// registers and a last masked one), and four-by-four transposes turn the
/// messages into block order for the hash, so that the set's four hashes
/// take one reduction. The keystream of a message's whole registers is
/// made in message order (a counter register a message), so only a last
/// partial register's is transposed: that transpose sat between the last
/// round and the stores, and leaving it out took 0.2-1.4 ns a message off
/// sealing and opening 80-256 bytes (2.3 ns off opening 128; a local
/// driver, pinned, interleaved pairs, 2026-12-07).
///
/// Written out for this case instead of going through the general lane
/// kernel above, whose per-lane bookkeeping (starts, tails, segments,
/// gathers lane by lane) cost more than the rounds: sealing 32 messages of
/// 64 bytes, the group kernel's share of a batch went from about 17 ns a
/// message to about 12 (2026-12-07). A stand-alone version with every
/// input in place took about 8.
#[inline(always)]
fn run_short<K: Shape, const DECRYPT: bool, const R: usize, const B: usize>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    msgs: &mut [Message<'_>],
    tags: &mut [[u8; 16]],
    cache: &mut LengthHash,
) {
    const { assert!(B >= 1 && B <= SHORT_BLOCKS) };
    // Registers per message: a message of more than four blocks is read
    // and written as whole registers and a last partial one.
    let parts = B.div_ceil(ONE_REGISTER_BLOCKS);
    let n = K::V::narrow(t);
    let rk0 = m.round_key::<K::V>(t, 0);
    let (aad_power, aad_power_k) = m.power_splat::<K::V>(t, B + 2);
    let (h1, hk1) = m.power_splat::<K::V>(t, 1);
    // Set by set, each start to finish: the next set's rounds overlap this
    // one's hash.
    // (Ranges, not a zip of chunk iterators: its constructor was not
    // inlined into the kernel, a call per group.)
    for first in (0..msgs.len()).step_by(ONE_REGISTER_BLOCKS) {
        let (Some(set), Some(set_tags)) =
            (msgs.get_mut(first..first + ONE_REGISTER_BLOCKS), tags.get_mut(first..first + ONE_REGISTER_BLOCKS))
        else {
            break;
        };
        // Each message's place and length, where its `J0` and AAD are, and
        // its length block.
        let mut places = [(core::ptr::null_mut::<u8>(), 0usize); ONE_REGISTER_BLOCKS];
        let mut j0s = [core::ptr::null::<u8>(); ONE_REGISTER_BLOCKS];
        let mut aads = [(core::ptr::null::<u8>(), 0usize); ONE_REGISTER_BLOCKS];
        let mut bits = [0u128; ONE_REGISTER_BLOCKS];
        for (l, msg) in set.iter_mut().enumerate() {
            if let (Some(place), Some(j0), Some(aad), Some(bits)) =
                (places.get_mut(l), j0s.get_mut(l), aads.get_mut(l), bits.get_mut(l))
            {
                *place = (msg.data.as_mut_ptr(), msg.data.len());
                *j0 = core::ptr::from_ref(&msg.j0).cast::<u8>();
                *aad = (msg.aad.as_ptr(), msg.aad.len());
                *bits = (u128::from(msg.aad.len() as u64 * 8) << 64) | u128::from(msg.data.len() as u64 * 8);
            }
        }
        // The length blocks: in a burst of one size, `L * H` once a batch.
        let [first_bits, ..] = bits;
        let length_hash = bits.iter().all(|&b| b == first_bits).then(|| length_hash::<K>(t, m, cache, first_bits));
        // Counters in memory order: J0's last byte is 1 and block k's
        // counter is 2 + k, so adding to that byte is inc32 (no carry).
        // SAFETY: each pointer is a `u128` of `msgs` (16 readable bytes),
        // whose bytes in memory are the block reversed (little-endian).
        let j0 = unsafe { K::V::gather_full(t, j0s) }.byte_reverse();
        // The `B` counter registers, then `J0` for the tag, through the
        // rounds together. The whole parts of four blocks take a register
        // a message (its own `J0` in every lane, plus the blocks' offsets),
        // so that their keystream is in message order without a transpose;
        // a last part of fewer blocks takes a register per block, one
        // message a lane, so that no register goes through the rounds
        // half empty.
        let whole_parts = B / ONE_REGISTER_BLOCKS;
        let mut own = [j0; ONE_REGISTER_BLOCKS];
        if whole_parts > 0 {
            for (o, &at) in own.iter_mut().zip(&j0s) {
                // SAFETY: as for the gather: 16 readable bytes at `at`.
                *o = K::V::splat(t, unsafe { NarrowOf::<K>::load(n, at) }).byte_reverse();
            }
        }
        let mut ks = [j0; SHORT_BLOCKS + 1];
        for (k, y) in ks.iter_mut().take(B).enumerate() {
            let (part, l) = (k / ONE_REGISTER_BLOCKS, k % ONE_REGISTER_BLOCKS);
            *y = match own.get(l).filter(|_| part < whole_parts) {
                // Register `4 * part + l`: message `l`'s blocks `4 * part..`.
                Some(o) => o.add32(K::V::dwords(t, 3, (4 * part as u32 + 1) << 24, 1 << 24)),
                None => j0.add32(K::V::dwords(t, 3, (k as u32 + 1) << 24, 0)),
            };
        }
        if let Some(y) = ks.get_mut(B) {
            *y = j0;
        }
        for y in ks.iter_mut().take(B + 1) {
            *y = y.aes_first(rk0);
        }
        for i in 1..R {
            let key = m.round_key::<K::V>(t, i);
            for y in ks.iter_mut().take(B + 1) {
                *y = y.aes_round(key);
            }
        }
        let last = m.round_key::<K::V>(t, R);
        for y in ks.iter_mut().take(B + 1) {
            *y = y.aes_last(last);
        }
        let mask = ks.get(B).copied().unwrap_or(rk0);
        let mut wide = Wide::<K::V>::new(t);
        // `E(K, J0)` joins the sum before its multiplies: added to the
        // reduced hash at the end, the compiler put its rounds there too,
        // at the end of the chain.
        wide.add_reduced(mask.byte_reverse());
        // SAFETY: each lane's AAD slice (at most 16 bytes, `group::fits`).
        let aad = unsafe { K::V::gather(t, aads) }.byte_reverse();
        if aads.iter().all(|&(_, len)| len <= 8) {
            wide.mul_add_high(aad, aad_power, aad_power_k);
        } else {
            wide.mul_add(aad, aad_power, aad_power_k);
        }
        match length_hash {
            Some(lh) => wide.add_reduced(lh),
            None => wide.mul_add(K::V::from_lanes(t, bits.map(|b| NarrowOf::<K>::from_u128(n, b))), h1, hk1),
        }
        // Four blocks of each message a register, read, written and hashed
        // register by register.
        for part in 0..parts {
            let from = part * ONE_REGISTER_BLOCKS;
            let mut stream = [K::V::zero(t); ONE_REGISTER_BLOCKS];
            for (k, y) in stream.iter_mut().enumerate().take(B - from) {
                *y = ks.get(from + k).copied().unwrap_or(rk0);
            }
            // Register l: this part of message l's keystream.
            let stream = if from + ONE_REGISTER_BLOCKS <= B { stream } else { K::V::transpose4(t, stream) };
            let mut hashed = [K::V::zero(t); ONE_REGISTER_BLOCKS];
            for ((h, y), &(at, len)) in hashed.iter_mut().zip(stream).zip(&places) {
                // Every message has `B` blocks, so more than `16 * from`
                // bytes: this part is 1 to 64 of them.
                let offset = 16 * from;
                let n = (len - offset).min(16 * ONE_REGISTER_BLOCKS);
                // SAFETY: bytes `offset..offset + n` of the `len` at `at`,
                // the message's data, borrowed mutably through `msgs`.
                let at = unsafe { at.add(offset) };
                // SAFETY: `n` (1..=64) bytes at `at`, inside the message.
                let input = unsafe { K::V::load_partial(t, at, n) };
                let output = input.xor(y);
                // SAFETY: as for the load.
                unsafe { output.store_partial(at, n) };
                // The ciphertext, zero past the message's end.
                *h = if DECRYPT { input } else { output.keep(n) };
            }
            // Register k: block `from + k` of the four messages, times
            // `H^(B + 1 - from - k)`.
            for (k, x) in K::V::transpose4(t, hashed).into_iter().enumerate().take(B - from) {
                let (h, hk) = m.power_splat::<K::V>(t, B + 1 - from - k);
                wide.mul_add(x.byte_reverse(), h, hk);
            }
        }
        let hash = wide.reduce_lanes().byte_reverse();
        // SAFETY: four tags, 64 contiguous writable bytes: a register.
        unsafe { hash.store(set_tags.as_mut_ptr().cast()) };
    }
}

/// The longest messages [`run_short_piped`] takes, in blocks: one
/// register a message. Longer ones go to [`run_short`]: with two sets'
/// registers live at once the register file runs out, and at 128 bytes the
/// pipelined kernel measured 7% slower (level at 80-112 bytes; taking every
/// length up to 256 bytes also grew the kernel's stack frame to 40 KiB,
/// probed page by page on every call).
const PIPED_BLOCKS: usize = ONE_REGISTER_BLOCKS;

/// One set's hash, waiting to run beside the next set's rounds
/// ([`run_short_piped`]).
#[derive(Clone, Copy)]
struct Pending<V: Lanes> {
    /// The inputs in the order of their powers: `xs[i]` is multiplied by
    /// `H^(B + 2 - i)` (the AAD, then the blocks; the length blocks' term
    /// is in `wide` already).
    xs: [V; PIPED_BLOCKS + 1],
    /// The sum so far: `E(K, J0)` and the length blocks' term added.
    wide: Wide<V>,
    /// Every AAD is at most 8 bytes: `xs[0]`'s low halves are zero.
    short_aad: bool,
    /// The set's first message, where its four tags go.
    first: usize,
}

/// [`run_short`] for messages of at most [`PIPED_BLOCKS`] blocks,
/// software-pipelined: set `s + 1`'s rounds run beside set `s`'s
/// multiplies, one multiply after each of its first middle rounds.
///
/// Set by set, each set's multiplies wait for its rounds, and they fill
/// the scheduler before the next set's counters arrive, so the AES pipes
/// wait between sets. Here a set's hash inputs are kept ([`Pending`])
/// until the next set starts its rounds; the last set's are hashed alone.
/// Sealing 32 messages of 64 bytes (AES-128), a local driver measured
/// 15.2-15.3 ns a message against 15.8-15.9 set by set (2026-12-07).
///
/// The set's inputs and first round are written out here as in
/// [`run_short`], not shared: moved into helpers both call, they measured
/// 0.2-0.4 ns a message slower at 48 and 64 bytes.
#[inline(always)]
fn run_short_piped<K: Shape, const DECRYPT: bool, const R: usize, const B: usize>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    msgs: &mut [Message<'_>],
    tags: &mut [[u8; 16]],
    cache: &mut LengthHash,
) {
    const { assert!(B >= 1 && B <= PIPED_BLOCKS && B + 2 < R) };
    let n = K::V::narrow(t);
    let rk0 = m.round_key::<K::V>(t, 0);
    let mut pending: Option<Pending<K::V>> = None;
    let mut first = 0;
    loop {
        // (A set is only started with room for its tags.)
        let set =
            msgs.get_mut(first..first + ONE_REGISTER_BLOCKS).filter(|_| first + ONE_REGISTER_BLOCKS <= tags.len());
        let Some(set) = set else {
            if let Some(mut p) = pending {
                for step in 0..B + 1 {
                    hash_step::<K, B>(t, m, &mut p, step);
                }
                finish_set::<K>(p, tags);
            }
            return;
        };
        // Each message's place and length, where its `J0` and AAD are, and
        // its length block.
        let mut places = [(core::ptr::null_mut::<u8>(), 0usize); ONE_REGISTER_BLOCKS];
        let mut j0s = [core::ptr::null::<u8>(); ONE_REGISTER_BLOCKS];
        let mut aads = [(core::ptr::null::<u8>(), 0usize); ONE_REGISTER_BLOCKS];
        let mut bits = [0u128; ONE_REGISTER_BLOCKS];
        for (l, msg) in set.iter_mut().enumerate() {
            if let (Some(place), Some(j0), Some(aad), Some(bits)) =
                (places.get_mut(l), j0s.get_mut(l), aads.get_mut(l), bits.get_mut(l))
            {
                *place = (msg.data.as_mut_ptr(), msg.data.len());
                *j0 = core::ptr::from_ref(&msg.j0).cast::<u8>();
                *aad = (msg.aad.as_ptr(), msg.aad.len());
                *bits = (u128::from(msg.aad.len() as u64 * 8) << 64) | u128::from(msg.data.len() as u64 * 8);
            }
        }
        // Counters in memory order: J0's last byte is 1 and block k's
        // counter is 2 + k, so adding to that byte is inc32 (no carry).
        // SAFETY: each pointer is a `u128` of `msgs` (16 readable bytes),
        // whose bytes in memory are the block reversed (little-endian).
        let j0 = unsafe { K::V::gather_full(t, j0s) }.byte_reverse();
        // The `B` counter registers, then `J0` for the tag. Messages of
        // four blocks take a register each (its own `J0` in every lane,
        // plus 1 to 4), so that the keystream is in message order without
        // a transpose (32 x 64 B, local driver, interleaved: sealing
        // 13.3 ns a message against 14.0-14.2, opening 14.1 against
        // 14.8-14.9); shorter ones take a register per block, one message
        // a lane, so that fewer registers go through the rounds.
        let mut ks = [j0; PIPED_BLOCKS + 1];
        if B == ONE_REGISTER_BLOCKS {
            let steps = K::V::dwords(t, 3, 1 << 24, 1 << 24);
            for (y, &at) in ks.iter_mut().zip(&j0s) {
                // SAFETY: as for the gather above: 16 readable bytes.
                let one = unsafe { NarrowOf::<K>::load(n, at) };
                *y = K::V::splat(t, one).byte_reverse().add32(steps);
            }
        } else {
            for (k, y) in ks.iter_mut().take(B).enumerate() {
                *y = j0.add32(K::V::dwords(t, 3, (k as u32 + 1) << 24, 0));
            }
        }
        for y in ks.iter_mut().take(B + 1) {
            *y = y.aes_first(rk0);
        }
        // The rounds, with the set before's multiplies between them.
        for i in 1..R {
            let key = m.round_key::<K::V>(t, i);
            for y in ks.iter_mut().take(B + 1) {
                *y = y.aes_round(key);
            }
            if let Some(p) = pending.as_mut() {
                hash_step::<K, B>(t, m, p, i - 1);
            }
        }
        if let Some(p) = pending.take() {
            finish_set::<K>(p, tags);
        }
        let last = m.round_key::<K::V>(t, R);
        for y in ks.iter_mut().take(B + 1) {
            *y = y.aes_last(last);
        }
        // The length blocks: in a burst of one size, `L * H` once a batch
        // joins `E(K, J0)` in the sum, and the set has one multiply less
        // between the next set's rounds; sets of mixed lengths multiply
        // theirs here.
        let [first_bits, ..] = bits;
        let short_aad = aads.iter().all(|&(_, len)| len <= 8);
        let mut p = Pending { xs: [K::V::zero(t); PIPED_BLOCKS + 1], wide: Wide::<K::V>::new(t), short_aad, first };
        let mut mask = ks.get(B).copied().unwrap_or(rk0).byte_reverse();
        if bits.iter().all(|&b| b == first_bits) {
            mask = mask.xor(length_hash::<K>(t, m, cache, first_bits));
        } else {
            let (h1, hk1) = m.power_splat::<K::V>(t, 1);
            p.wide.mul_add(K::V::from_lanes(t, bits.map(|b| NarrowOf::<K>::from_u128(n, b))), h1, hk1);
        }
        p.wide.add_reduced(mask);
        // SAFETY: each lane's AAD slice (at most 16 bytes, `group::fits`).
        let aad = unsafe { K::V::gather(t, aads) }.byte_reverse();
        let mut stream = [K::V::zero(t); ONE_REGISTER_BLOCKS];
        for (y, k) in stream.iter_mut().zip(ks).take(B) {
            *y = k;
        }
        // Register l: message l's keystream.
        let stream = if B == ONE_REGISTER_BLOCKS { stream } else { K::V::transpose4(t, stream) };
        let mut hashed = [K::V::zero(t); ONE_REGISTER_BLOCKS];
        for ((h, y), &(at, len)) in hashed.iter_mut().zip(stream).zip(&places) {
            // Every message has `B` blocks: 1 to 64 bytes.
            let n = len.min(16 * ONE_REGISTER_BLOCKS);
            if n == 16 * ONE_REGISTER_BLOCKS {
                // A whole register (64-byte messages, the common small
                // packet): no masks. Sealing 32 x 64 B measured 0.3 ns a
                // message faster than through the masked path.
                // SAFETY: 64 bytes at `at`, the message's data, borrowed
                // mutably through `msgs`.
                let input = unsafe { K::V::load(t, at) };
                let output = input.xor(y);
                // SAFETY: as for the load.
                unsafe { output.store(at) };
                *h = if DECRYPT { input } else { output };
                continue;
            }
            // SAFETY: `n` (1..=64) bytes at `at`, the message's data,
            // borrowed mutably through `msgs`.
            let input = unsafe { K::V::load_partial(t, at, n) };
            let output = input.xor(y);
            // SAFETY: as for the load.
            unsafe { output.store_partial(at, n) };
            // The ciphertext, zero past the message's end.
            *h = if DECRYPT { input } else { output.keep(n) };
        }
        // The AAD, and block k of the four messages for each k (register k
        // of the transpose).
        if let Some(x) = p.xs.first_mut() {
            *x = aad;
        }
        for (k, x) in K::V::transpose4(t, hashed).into_iter().enumerate().take(B) {
            if let Some(slot) = p.xs.get_mut(1 + k) {
                *slot = x.byte_reverse();
            }
        }
        pending = Some(p);
        first += ONE_REGISTER_BLOCKS;
    }
}

/// Multiply `p.xs[step]` by its power of H, `H^(B + 2 - step)`, into the
/// sum (nothing past the `B + 1` inputs).
#[inline(always)]
fn hash_step<K: Shape, const B: usize>(t: TokenOf<K>, m: &MaterialOf<K>, p: &mut Pending<K::V>, step: usize) {
    if let Some(&x) = p.xs.get(step).filter(|_| step < B + 1) {
        let (h, hk) = m.power_splat::<K::V>(t, B + 2 - step);
        if step == 0 && p.short_aad {
            p.wide.mul_add_high(x, h, hk);
        } else {
            p.wide.mul_add(x, h, hk);
        }
    }
}

/// `L * H` for the length block `bits`, reduced, in every lane: from
/// `cache` if it holds `bits`, else computed and kept there for the
/// batch's next groups.
#[inline(always)]
fn length_hash<K: Shape>(t: TokenOf<K>, m: &MaterialOf<K>, cache: &mut LengthHash, bits: u128) -> K::V {
    let n = K::V::narrow(t);
    if cache.bits != bits {
        let (h1, hk1) = m.power_splat::<K::V>(t, 1);
        let mut wide = Wide::<K::V>::new(t);
        wide.mul_add(K::V::splat(t, NarrowOf::<K>::from_u128(n, bits)), h1, hk1);
        cache.hash = wide.reduce_lanes().lane0().to_u128();
        cache.bits = bits;
    }
    K::V::splat(t, NarrowOf::<K>::from_u128(n, cache.hash))
}

/// The reduction of `p`'s sum (its multiplies done), and the set's four
/// tags.
#[inline(always)]
fn finish_set<K: Shape>(p: Pending<K::V>, tags: &mut [[u8; 16]]) {
    let hash = p.wide.reduce_lanes().byte_reverse();
    if let Some(set_tags) = tags.get_mut(p.first..p.first + ONE_REGISTER_BLOCKS) {
        // SAFETY: four tags, 64 contiguous writable bytes: a register.
        unsafe { hash.store(set_tags.as_mut_ptr().cast()) };
    }
}

/// A register's worth of messages (`BLOCKS` of `msgs`, or fewer: empty
/// lanes) ready for the chunks: lanes, counters, `E(K, J0)` started, the
/// AAD hashed (`uniform`: all start at block 0, so the AAD is block -1 of
/// every lane, at one power of H, in the first segment's sum).
#[inline(always)]
fn set_up<K: Shape>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    msgs: &mut [Message<'_>],
    blocks: usize,
    uniform: bool,
) -> Set<K::V> {
    let n = K::V::narrow(t);
    let zero = NarrowOf::<K>::zero(n);
    let mut lanes = [EMPTY; 4];
    let (mut j0, mut first, mut aad, mut lengths) = ([zero; 4], [zero; 4], [zero; 4], [zero; 4]);
    for (l, msg) in msgs.iter_mut().take(K::V::BLOCKS).enumerate() {
        let start = blocks - msg.data.len().div_ceil(16);
        let tail = msg.data.len() - 16 * (blocks - 1 - start);
        lanes[l] = LaneInfo { base: msg.data.as_mut_ptr().wrapping_sub(16 * start), start, tail };
        j0[l] = NarrowOf::<K>::from_u128(n, msg.j0);
        // Its counter for group block k is inc32(J0) + 1 + (k - start).
        first[l] = j0[l].add32(NarrowOf::<K>::dwords(n, 0, 1u32.wrapping_sub(start as u32), 0));
        aad[l] = NarrowOf::<K>::from_partial(n, msg.aad).byte_reverse();
        let bits = (u128::from(msg.aad.len() as u64 * 8) << 64) | u128::from(msg.data.len() as u64 * 8);
        lengths[l] = NarrowOf::<K>::from_u128(n, bits);
    }
    let rk0 = m.round_key::<K::V>(t, 0);
    let aad = K::V::from_lanes(t, aad);
    let (mut aad_hash, mut sum) = (K::V::zero(t), Wide::<K::V>::new(t));
    if uniform && blocks + 2 <= super::POWERS {
        let (h, hk) = m.power_splat::<K::V>(t, blocks + 2);
        sum.mul_add(aad, h, hk);
    } else {
        let (h1, hk1) = m.power_splat::<K::V>(t, 1);
        let mut wide = Wide::<K::V>::new(t);
        wide.mul_add(aad, h1, hk1);
        aad_hash = wide.reduce_lanes();
    }
    Set {
        lanes,
        ctr: K::V::from_lanes(t, first),
        // E(K, J0) starts now; it finishes with the first chunk's rounds.
        tag_mask: K::V::from_lanes(t, j0).byte_reverse().aes_first(rk0),
        aad_hash,
        carry: K::V::zero(t),
        wide: sum,
        lengths: K::V::from_lanes(t, lengths),
    }
}

/// Group blocks `k0..k0 + CH` of every set: counters through AES (with
/// `E(K, J0)` when `TAG`), the data in and out, the hash (`UNIFORM`: every
/// lane full, all messages of the group's length).
#[inline(always)]
fn run_chunk<
    K: Shape,
    const Q: usize,
    const CH: usize,
    const DECRYPT: bool,
    const R: usize,
    const TAG: bool,
    const UNIFORM: bool,
>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    sets: &mut [Set<K::V>; Q],
    blocks: usize,
    k0: usize,
) {
    let rk0 = m.round_key::<K::V>(t, 0);
    let mut ks = [[rk0; CH]; Q];
    for (set, ks) in sets.iter().zip(ks.iter_mut()) {
        for (c, y) in ks.iter_mut().enumerate() {
            *y = set.ctr.add32(K::V::dwords(t, 0, (k0 + c) as u32, 0)).byte_reverse().aes_first(rk0);
        }
    }
    for i in 1..R {
        let k = m.round_key::<K::V>(t, i);
        for (set, ks) in sets.iter_mut().zip(ks.iter_mut()) {
            for y in ks.iter_mut() {
                *y = y.aes_round(k);
            }
            if TAG {
                set.tag_mask = set.tag_mask.aes_round(k);
            }
        }
    }
    let last = m.round_key::<K::V>(t, R);
    for (set, ks) in sets.iter_mut().zip(ks.iter_mut()) {
        for y in ks.iter_mut() {
            *y = y.aes_last(last);
        }
        if TAG {
            set.tag_mask = set.tag_mask.aes_last(last);
        }
    }
    for (set, ks) in sets.iter_mut().zip(ks.iter()) {
        for (c, &keystream) in ks.iter().enumerate() {
            let k = k0 + c;
            if UNIFORM && k + 1 < blocks {
                whole_block::<K, DECRYPT>(t, m, set, blocks, k, keystream);
            } else if UNIFORM && k + 1 == blocks {
                last_block::<K, DECRYPT>(t, m, set, blocks, k, keystream);
            } else if k < blocks {
                block::<K, DECRYPT>(t, m, set, blocks, k, keystream);
            }
        }
    }
}

/// Group block `k` (not the last) of a set whose lanes all hold a message
/// that started at block 0: whole blocks in and out, into the hash.
#[inline(always)]
fn whole_block<K: Shape, const DECRYPT: bool>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    set: &mut Set<K::V>,
    blocks: usize,
    k: usize,
    keystream: K::V,
) {
    let mut at = [core::ptr::null_mut::<u8>(); 4];
    for (a, lane) in at.iter_mut().zip(set.lanes.iter()).take(K::V::BLOCKS) {
        *a = lane.base.wrapping_add(16 * k);
    }
    // SAFETY: every lane's message has more than `k + 1` blocks and starts
    // at block 0 (the caller's check), so block `k` is 16 bytes inside it.
    let input = unsafe { K::V::gather_full(t, at.map(<*mut u8>::cast_const)) };
    let output = input.xor(keystream);
    // SAFETY: as for the gather.
    unsafe { output.scatter_full(at) };
    let hashed = if DECRYPT { input } else { output }.byte_reverse();
    let hashed = if k == 0 { hashed.xor(set.aad_hash) } else { hashed };
    hash_block::<K>(t, m, set, blocks, k, hashed);
}

/// The last group block of a set whose lanes all hold a message that
/// started at block 0: each lane's `tail` bytes in and out.
#[inline(always)]
fn last_block<K: Shape, const DECRYPT: bool>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    set: &mut Set<K::V>,
    blocks: usize,
    k: usize,
    keystream: K::V,
) {
    let mut inputs = [(core::ptr::null::<u8>(), 0usize); 4];
    let mut outputs = [(core::ptr::null_mut::<u8>(), 0usize); 4];
    let mut lens = [0usize; 4];
    for (i, lane) in set.lanes.iter().enumerate().take(K::V::BLOCKS) {
        let at = lane.base.wrapping_add(16 * k);
        (inputs[i], outputs[i], lens[i]) = ((at.cast_const(), lane.tail), (at, lane.tail), lane.tail);
    }
    // SAFETY: block `k` is every message's last, with `tail` bytes (the
    // caller's check that all started at block 0).
    let input = unsafe { K::V::gather(t, inputs) };
    let output = input.xor(keystream);
    // SAFETY: as for the gather.
    unsafe { output.scatter(outputs) };
    let hashed = if DECRYPT { input } else { output.keep_lanes(lens) }.byte_reverse();
    let hashed = if k == 0 { hashed.xor(set.aad_hash) } else { hashed };
    hash_block::<K>(t, m, set, blocks, k, hashed);
}

/// Add group block `k` (reflected, with whatever joins it) to the hash.
#[inline(always)]
fn hash_block<K: Shape>(t: TokenOf<K>, m: &MaterialOf<K>, set: &mut Set<K::V>, blocks: usize, k: usize, hashed: K::V) {
    let hashed = if k > 0 && k.is_multiple_of(SEGMENT) { hashed.xor(set.carry) } else { hashed };
    let segment_end = (k / SEGMENT + 1) * SEGMENT;
    // The last segment ends with the length block, at H^1.
    let power = if segment_end >= blocks { (blocks + 1).saturating_sub(k) } else { segment_end - k };
    let (h, hk) = m.power_splat::<K::V>(t, power);
    set.wide.mul_add(hashed, h, hk);
    if k + 1 == segment_end && segment_end < blocks {
        set.carry = set.wide.reduce_lanes();
        set.wide = Wide::new(t);
    }
}

/// Group block `k` of a set: in and out through the lanes' memory, and into
/// the hash.
#[inline(always)]
fn block<K: Shape, const DECRYPT: bool>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    set: &mut Set<K::V>,
    blocks: usize,
    k: usize,
    keystream: K::V,
) {
    // Lane i's bytes in this block: none before its start, then whole
    // blocks, and its last (partial or whole) block is the group's last,
    // since messages are lined up at their ends.
    let mut inputs = [(core::ptr::null::<u8>(), 0usize); 4];
    let mut outputs = [(core::ptr::null_mut::<u8>(), 0usize); 4];
    let mut lens = [0usize; 4];
    let (mut active, mut starts) = (0u32, 0u32);
    for (i, lane) in set.lanes.iter().enumerate().take(K::V::BLOCKS) {
        let len = if k < lane.start {
            0
        } else if k + 1 < blocks {
            16
        } else {
            lane.tail
        };
        let at = lane.base.wrapping_add(16 * k);
        (inputs[i], outputs[i], lens[i]) = ((at.cast_const(), len), (at, len), len);
        active |= u32::from(len > 0) << i;
        starts |= u32::from(k == lane.start) << i;
    }
    // SAFETY: a lane's bytes at block k (k at or past its start) are block
    // `k - start` of its message's data, whole before the last block and
    // `tail` bytes in it; lanes with none touch no memory.
    let input = unsafe { K::V::gather(t, inputs) };
    let output = input.xor(keystream);
    // SAFETY: as for the gather.
    unsafe { output.scatter(outputs) };
    // What is hashed is the ciphertext with zeros past each message's end
    // (and in lanes it has not reached).
    let hashed = if DECRYPT {
        input
    } else if k + 1 == blocks {
        output.keep_lanes(lens)
    } else if active != (1 << K::V::BLOCKS) - 1 {
        output.select_lanes(active)
    } else {
        output
    }
    .byte_reverse();
    // Each lane's AAD hash joins its first block; the hash of the segments
    // before joins the first block of a segment.
    let hashed = if starts == 0 { hashed } else { hashed.xor(set.aad_hash.select_lanes(starts)) };
    hash_block::<K>(t, m, set, blocks, k, hashed);
}
