//! The bytes after the last whole batch, and the final reduction.

use super::ghash::{Material, Wide};
use super::loops::{Counters, finish_rounds, reflected};
use super::{Block, Lanes, MaterialOf, NarrowOf, POWERS, Regs, Shape, TokenOf};

/// What the bulk loops left for the final hash besides the tail.
pub(crate) enum Last<'a, K: Shape> {
    /// The last batch's ciphertext, reflected, if any (`acc` joins the
    /// first block hashed).
    Pending(Option<&'a K::Batch>),
    /// The last batch already multiplied by its powers, with `acc` joined
    /// (`loops::open`); the tail and the length block are added to it.
    Started(Wide<K::V>),
}

/// En- or decrypt `rest` (`G` registers' worth, the last partial or
/// whole; nothing when `G` is 0) in place, then hash everything not hashed
/// yet: the AAD block `head` if it waited, the last batch (`last`), the
/// tail and the length block, under one reduction; mask it with
/// `E(K, J0)`. Returns the tag.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish<K: Shape, const G: usize, const R: usize, const DECRYPT: bool>(
    m: &MaterialOf<K>,
    j0: NarrowOf<K>,
    mut ctr: Counters<K::V>,
    acc: NarrowOf<K>,
    last: Last<'_, K>,
    head: Option<NarrowOf<K>>,
    rest: &mut [u8],
    lengths: NarrowOf<K>,
) -> [u8; 16] {
    let t = ctr.token();
    // E(K, J0) on a full register with the tail's round keys (lane 0 is
    // taken): its latency hides behind the tail.
    let tag_mask = m.encrypt::<K::V, R>(t, j0.byte_reverse());
    let blocks = rest.len().div_ceil(16);
    let hashed = if G == 0 { [K::V::zero(t); G] } else { tail::<K::V, G, R, DECRYPT>(t, m, &mut ctr, rest) };
    let hash = final_hash::<K>(t, m, acc, last, head, &hashed, blocks, lengths);
    hash.byte_reverse().xor(tag_mask).to_bytes()
}

/// The last `rest.len()` bytes in `G` registers (the last one partial or
/// whole), en- or decrypted in place; returns the ciphertext reflected and
/// zero-padded, for the final hash.
#[inline(always)]
fn tail<V: Lanes, const G: usize, const R: usize, const DECRYPT: bool>(
    t: V::Token,
    m: &Material<V::Narrow>,
    ctr: &mut Counters<V>,
    rest: &mut [u8],
) -> [V; G] {
    let width = 16 * V::BLOCKS;
    // 1..=width bytes in the last register (the caller picked `G` so).
    let last = rest.len() - (G - 1) * width;
    let p = rest.as_mut_ptr();
    let mut data = [V::zero(t); G];
    for (g, d) in data.iter_mut().enumerate() {
        // SAFETY: registers before the last are whole inside `rest`; the
        // last reads its `last` bytes, which end where `rest` ends.
        *d = unsafe {
            if g + 1 < G { V::load(t, p.add(g * width)) } else { V::load_partial(t, p.add(g * width), last) }
        };
    }
    let mut ks: [V; G] = ctr.next(m.round_key::<V>(t, 0));
    finish_rounds::<V, R>(t, m, &mut ks, 1);
    let mut ciphertext = data;
    for (g, (c, k)) in ciphertext.iter_mut().zip(ks).enumerate() {
        let out = c.xor(k);
        // SAFETY: as for the loads.
        unsafe {
            if g + 1 < G {
                out.store(p.add(g * width));
            } else {
                out.store_partial(p.add(g * width), last);
            }
        }
        // The keystream past the message's end must not reach the hash.
        *c = if DECRYPT {
            *c
        } else if g + 1 < G {
            out
        } else {
            out.keep(last)
        };
    }
    reflected(ciphertext)
}

/// The final reduction over the `F` blocks not hashed yet: `head` (the AAD
/// block, if it waited), the pending batch, the `n` tail blocks in `tail`
/// (zero past `n`) and the length block; block `j` is multiplied by
/// `H^(F - j)` and the chain's hash joins the first. The AAD and length
/// blocks are single blocks, multiplied on 128-bit registers. A started
/// last batch holds the products of the blocks before the tail, `acc`
/// included.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn final_hash<K: Shape>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    acc: NarrowOf<K>,
    last: Last<'_, K>,
    head: Option<NarrowOf<K>>,
    tail: &[K::V],
    n: usize,
    lengths: NarrowOf<K>,
) -> NarrowOf<K> {
    let (pending, mut wide, mut carry) = match last {
        Last::Pending(None) if tail.is_empty() => {
            // Only single blocks left: 128-bit registers do.
            return final_hash_narrow::<K::V>(t, m, acc, head, lengths);
        }
        // The chain's hash joins the first block.
        Last::Pending(pending) => (pending, Wide::<K::V>::new(t), Some(acc)),
        Last::Started(wide) => (None, wide, None),
    };
    let pending_blocks = if pending.is_some() { K::V::BLOCKS * <K::Batch as Regs<K::V>>::LEN } else { 0 };
    let f = usize::from(head.is_some()) + pending_blocks + n + 1;
    let mut at = POWERS - f;
    if let Some(h) = head {
        mul_add_narrow(m, &mut wide, &mut carry, h, at);
        at += 1;
    }
    if let Some(batch) = pending {
        for (r, &x) in batch.regs().iter().enumerate() {
            mul_add_at(t, m, &mut wide, &mut carry, x, at + r * K::V::BLOCKS);
        }
        at += pending_blocks;
    }
    for (g, &x) in tail.iter().enumerate() {
        mul_add_at(t, m, &mut wide, &mut carry, x, at + g * K::V::BLOCKS);
    }
    // The length block takes H^1, the last power.
    mul_add_narrow(m, &mut wide, &mut carry, lengths, POWERS - 1);
    wide.reduce()
}

/// [`final_hash`] when only `head` and the length block are left.
#[inline(always)]
fn final_hash_narrow<V: Lanes>(
    t: V::Token,
    m: &Material<V::Narrow>,
    acc: V::Narrow,
    head: Option<V::Narrow>,
    lengths: V::Narrow,
) -> V::Narrow {
    let mut wide = Wide::<V::Narrow>::new(V::narrow(t));
    let mut carry = Some(acc);
    if let Some(h) = head {
        mul_add_narrow(m, &mut wide, &mut carry, h, POWERS - 2);
    }
    mul_add_narrow(m, &mut wide, &mut carry, lengths, POWERS - 1);
    wide.reduce()
}

/// Add the single block `x` (plus `carry`, once) times the power at table
/// index `at`, multiplied on 128-bit registers and added into lane 0.
#[inline(always)]
fn mul_add_narrow<V: Lanes>(
    m: &Material<V::Narrow>,
    wide: &mut Wide<V>,
    carry: &mut Option<V::Narrow>,
    x: V::Narrow,
    at: usize,
) {
    let x = match carry.take() {
        Some(acc) => x.xor(acc),
        None => x,
    };
    let (h, hk) = m.powers_at::<V::Narrow>(V::narrow(wide.token()), at);
    wide.mul_add_narrow(x, h, hk);
}

/// Add `x` (plus `carry`, once) times the powers from table index `at`.
#[inline(always)]
fn mul_add_at<V: Lanes>(
    t: V::Token,
    m: &Material<V::Narrow>,
    wide: &mut Wide<V>,
    carry: &mut Option<V::Narrow>,
    x: V,
    at: usize,
) {
    let x = match carry.take() {
        Some(acc) => x.xor(V::low(t, acc)),
        None => x,
    };
    let (h, hk) = m.powers_at::<V>(t, at);
    wide.mul_add(x, h, hk);
}
