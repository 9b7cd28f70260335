//! The key material every SIMD backend shares, and GHASH arithmetic on any
//! register width (see the parent module's docs for the representation).

use super::{Block, Lanes, MAX_ROUND_KEYS, POWERS};
use crate::backend::KeyBytes;
use zeroize::Zeroize;

/// The power table's length: `H^POWERS..H^1`, then zero blocks, enough
/// that a 512-bit load starting at `H^1` stays inside.
const TABLE: usize = POWERS + 4;

/// Round keys and powers of the hash key, in 128-bit registers.
#[derive(Clone)]
pub(crate) struct Material<N: Block> {
    /// Round keys `0..=rounds`; zero after.
    round_keys: [N; MAX_ROUND_KEYS],
    /// 10, 12 or 14.
    pub(super) rounds: usize,
    /// `powers[i] = H^(POWERS - i) * x^-1`, reflected, for `i < POWERS`;
    /// zero after.
    powers: [N; TABLE],
    /// `half_sums[i]`: the XOR of the two 64-bit halves of `powers[i]`, in
    /// both halves (Karatsuba's middle product).
    half_sums: [N; TABLE],
}

impl<N: Block> Drop for Material<N> {
    fn drop(&mut self) {
        self.round_keys.zeroize();
        self.powers.zeroize();
        self.half_sums.zeroize();
    }
}

impl<N: Block> Material<N> {
    /// Key setup: AES key expansion, `H = E(K, 0)` and its powers.
    #[inline(always)]
    pub(crate) fn new(t: N::Token, key: KeyBytes<'_>) -> Material<N> {
        let zero = N::zero(t);
        let mut m = Material {
            round_keys: N::expand_key(t, key),
            // AES-128/192/256: 4/6/8 key words, 10/12/14 rounds.
            rounds: key.as_slice().len() / 4 + 6,
            powers: [zero; TABLE],
            half_sums: [zero; TABLE],
        };
        // H reflected, times x^-1: dividing by x is a left shift of the
        // reflected form; the bit shifted out (the x^0 coefficient) comes
        // back as x^-1 = x^127 + x^6 + x + 1.
        let mut h = u128::from_be_bytes(m.encrypt_block(t, zero).to_bytes());
        let carry = 0u128.wrapping_sub(h >> 127);
        let mut h_shifted = (h << 1) ^ (carry & 0xC200_0000_0000_0000_0000_0000_0000_0001);
        let h1 = N::from_u128(t, h_shifted);
        h.zeroize();
        h_shifted.zeroize();
        let mut power = h1;
        for i in (0..POWERS).rev() {
            m.powers[i] = power;
            m.half_sums[i] = power.xor(power.swap_halves());
            // (H^i x^-1)(H x^-1) x = H^(i+1) x^-1.
            power = gf_mul(t, power, h1);
        }
        power.zeroize();
        m
    }

    /// `H^k` and its half-sum in every lane of a `V` (`k` in
    /// `1..=POWERS`; zeros for 0).
    #[inline(always)]
    pub(super) fn power_splat<V: Lanes<Narrow = N>>(&self, t: V::Token, k: usize) -> (V, V) {
        let i = POWERS.wrapping_sub(k);
        let h = self.powers.get(i).copied().unwrap_or(N::zero(V::narrow(t)));
        let hk = if V::KARATSUBA { self.half_sums.get(i).copied().unwrap_or(N::zero(V::narrow(t))) } else { h };
        (V::splat(t, h), V::splat(t, hk))
    }

    /// Round key `i` in every lane of a `V`.
    #[inline(always)]
    pub(super) fn round_key<V: Lanes<Narrow = N>>(&self, t: V::Token, i: usize) -> V {
        V::splat(t, self.round_keys.get(i).copied().unwrap_or(N::zero(V::narrow(t))))
    }

    /// Encrypt one block.
    #[inline(always)]
    pub(super) fn encrypt_block(&self, t: N::Token, block: N) -> N {
        let mut b = block.aes_first(self.round_key::<N>(t, 0));
        for i in 1..self.rounds {
            b = b.aes_round(self.round_key::<N>(t, i));
        }
        b.aes_last(self.round_key::<N>(t, self.rounds))
    }

    /// `E(K, block)` for `R` rounds, computed in every lane of a `V` with
    /// the broadcast round keys the data path uses; lane 0 is returned.
    #[inline(always)]
    pub(super) fn encrypt<V: Lanes<Narrow = N>, const R: usize>(&self, t: V::Token, block: N) -> N {
        let mut b = V::splat(t, block).aes_first(self.round_key::<V>(t, 0));
        for i in 1..R {
            b = b.aes_round(self.round_key::<V>(t, i));
        }
        b.aes_last(self.round_key::<V>(t, R)).lane0()
    }

    /// The powers of H for `V::BLOCKS` consecutive blocks from table index
    /// `at` (`H^(POWERS - at)` first), and their half-sums when the
    /// backend multiplies with Karatsuba.
    #[inline(always)]
    pub(super) fn powers_at<V: Lanes<Narrow = N>>(&self, t: V::Token, at: usize) -> (V, V) {
        let h = load_entries::<V>(t, &self.powers, at);
        (h, if V::KARATSUBA { load_entries::<V>(t, &self.half_sums, at) } else { V::zero(t) })
    }

    /// GHASH `data`, zero-padded to whole blocks, into the reflected `acc`,
    /// eight blocks per reduction on 128-bit registers.
    #[inline(always)]
    pub(super) fn hash_bytes(&self, t: N::Token, mut acc: N, data: &[u8]) -> N {
        let (chunks, rest) = data.as_chunks::<128>();
        for chunk in chunks {
            let mut wide = Wide::<N>::new(t);
            for (i, block) in chunk.as_chunks::<16>().0.iter().enumerate() {
                // SAFETY: `block` is 16 readable bytes.
                let x = unsafe { N::load(t, block.as_ptr()) }.byte_reverse();
                let x = if i == 0 { x.xor(acc) } else { x };
                let (h, hk) = self.powers_at::<N>(t, POWERS - 8 + i);
                wide.mul_add(x, h, hk);
            }
            acc = wide.reduce();
        }
        if rest.is_empty() {
            return acc;
        }
        let n = rest.len().div_ceil(16);
        let mut wide = Wide::<N>::new(t);
        for (i, block) in rest.chunks(16).enumerate() {
            let x = N::from_partial(t, block).byte_reverse();
            let x = if i == 0 { x.xor(acc) } else { x };
            let (h, hk) = self.powers_at::<N>(t, POWERS - n + i);
            wide.mul_add(x, h, hk);
        }
        wide.reduce()
    }
}

/// `V::BLOCKS` consecutive table entries from `at` as one register (zero if
/// they would run past the table).
#[inline(always)]
fn load_entries<V: Lanes>(t: V::Token, table: &[V::Narrow; TABLE], at: usize) -> V {
    match table.get(at..at + V::BLOCKS) {
        // SAFETY: `entries` is `V::BLOCKS` contiguous 16-byte registers.
        Some(entries) => unsafe { V::load(t, entries.as_ptr().cast()) },
        None => V::zero(t),
    }
}

/// An unreduced sum of products in every lane, kept as its low, middle and
/// high parts.
#[derive(Clone, Copy)]
pub(super) struct Wide<V: Lanes> {
    lo: V,
    mid: V,
    hi: V,
    t: V::Token,
}

impl<V: Lanes> Wide<V> {
    #[inline(always)]
    pub(super) fn new(t: V::Token) -> Wide<V> {
        let z = V::zero(t);
        Wide { lo: z, mid: z, hi: z, t }
    }

    /// Add `x * h`, lane by lane (`x` reflected, `h` a stored power with
    /// its half-sum `hk`).
    #[inline(always)]
    pub(super) fn mul_add(&mut self, x: V, h: V, hk: V) {
        self.lo = self.lo.xor(x.clmul::<0x00>(h));
        self.hi = self.hi.xor(x.clmul::<0x11>(h));
        self.mid = if V::KARATSUBA {
            // (x_lo + x_hi)(h_lo + h_hi) = lo + hi + the middle term.
            self.mid.xor(x.xor(x.swap_halves()).clmul::<0x00>(hk))
        } else {
            self.mid.xor3(x.clmul::<0x01>(h), x.clmul::<0x10>(h))
        };
    }

    /// [`mul_add`](Self::mul_add) for an `x` whose low 64-bit half is zero
    /// in every lane: a reflected block of at most 8 bytes (ESP's AAD
    /// without extended sequence numbers), whose products with `h`'s low
    /// half are zero: two multiplies of four. Only the 512-bit short group
    /// kernels call it, and they are schoolbook; a Karatsuba accumulator
    /// takes the full product (no code here that no test runs).
    #[inline(always)]
    pub(super) fn mul_add_high(&mut self, x: V, h: V, hk: V) {
        if V::KARATSUBA {
            self.mul_add(x, h, hk);
            return;
        }
        self.hi = self.hi.xor(x.clmul::<0x11>(h));
        self.mid = self.mid.xor(x.clmul::<0x01>(h));
    }

    /// Add `x` to what [`reduce_lanes`](Self::reduce_lanes) will return
    /// (reduction is linear, and the high part passes through it).
    #[inline(always)]
    pub(super) fn add_reduced(&mut self, x: V) {
        self.hi = self.hi.xor(x);
        if V::KARATSUBA {
            // The middle term is recovered as mid ^ lo ^ hi.
            self.mid = self.mid.xor(x);
        }
    }

    /// The token the accumulator was made with.
    #[inline(always)]
    pub(super) fn token(&self) -> V::Token {
        self.t
    }

    /// Add the single-block product `x * h` (128-bit registers) into lane
    /// 0, in this accumulator's convention (Karatsuba or schoolbook).
    #[inline(always)]
    pub(super) fn mul_add_narrow(&mut self, x: V::Narrow, h: V::Narrow, hk: V::Narrow) {
        let lo = x.clmul::<0x00>(h);
        let hi = x.clmul::<0x11>(h);
        let mid = if V::KARATSUBA {
            x.xor(x.swap_halves()).clmul::<0x00>(hk)
        } else {
            x.clmul::<0x01>(h).xor(x.clmul::<0x10>(h))
        };
        self.lo = self.lo.xor(V::low(self.t, lo));
        self.mid = self.mid.xor(V::low(self.t, mid));
        self.hi = self.hi.xor(V::low(self.t, hi));
    }

    /// Reduce every lane and add the lanes: the reflected 128-bit hash.
    #[inline(always)]
    pub(super) fn reduce(self) -> V::Narrow {
        self.reduce_lanes().fold_lanes()
    }

    /// Reduce every lane on its own (lanes that hold different messages).
    #[inline(always)]
    pub(super) fn reduce_lanes(self) -> V {
        let mid = if V::KARATSUBA { self.mid.xor3(self.lo, self.hi) } else { self.mid };
        let lo = self.lo.xor(mid.shift_up8());
        let hi = self.hi.xor(mid.shift_down8());
        fold(self.t, lo, hi)
    }
}

/// Reduce the 256-bit reflected values `hi:lo` in every lane modulo the
/// GCM polynomial: two folds by `0xC2 << 56` (see the module docs).
#[inline(always)]
fn fold<V: Lanes>(t: V::Token, lo: V, hi: V) -> V {
    let c = V::splat64(t, 0xC200_0000_0000_0000);
    // Clear the lowest word w0: w0 * y^128 lands two words up (the lane
    // swap), w0 * (y^121 + y^126 + y^127) one word up (the multiply).
    let folded = lo.swap_halves().xor(lo.clmul::<0x00>(c));
    // Same for the next word, which now sits in the low lane of `folded`.
    hi.xor3(folded.swap_halves(), folded.clmul::<0x00>(c))
}

/// Full product of two reflected values (schoolbook), reduced. Key setup.
#[inline(always)]
fn gf_mul<N: Block>(t: N::Token, a: N, b: N) -> N {
    let lo = a.clmul::<0x00>(b);
    let hi = a.clmul::<0x11>(b);
    let mid = a.clmul::<0x01>(b).xor(a.clmul::<0x10>(b));
    fold(t, lo.xor(mid.shift_up8()), hi.xor(mid.shift_down8()))
}
