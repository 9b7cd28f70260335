//! The one's complement sum of long inputs (ESP's inner checksum,
//! `crate::ones_complement`) with AVX2, chosen at run time.
//!
//! The portable sum adds 64-bit words on one add-with-carry chain, about
//! 16 bytes a cycle on Zen 4; ESP sums each packet's segment once on each
//! side, and for a 1420-byte packet that pass took 26-36 ns of a burst's
//! 220-240 ns per packet. Here each 16-bit word is taken as a signed number
//! by flipping its top bit (`w - 0x8000`), so that `vpmaddwd` against ones
//! adds neighbouring words into 32-bit lanes in one instruction; the
//! offsets are added back once at the end. About 64 bytes a cycle.
//!
//! Nothing here is secret-dependent in a way that matters: the checksum
//! covers plaintext, but every instruction runs whatever the data is.

use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_set1_epi16, _mm256_setzero_si256,
    _mm256_storeu_si256, _mm256_xor_si256,
};

cpufeatures::new!(avx2, "avx2");

/// Blocks summed into the 32-bit lanes before they are added up: each
/// 64-byte block moves a lane by at most 0x10000 either way (two words
/// of at most 0x8000 in size, in each of two accumulators per lane), so
/// 2^14 blocks keep a lane within 2^30.
const RUN: usize = 1 << 14;

/// The exact sum of `blocks` as native-order 16-bit words (an integer, not
/// reduced), or `None` where this CPU has no AVX2 and the caller's
/// portable sum should run.
#[inline]
pub(crate) fn sum_blocks(blocks: &[[u8; 64]]) -> Option<u64> {
    if !avx2::get() {
        return None;
    }
    // SAFETY: AVX2 is present (checked just above), which is all that
    // `sum_blocks_avx2` is compiled for.
    Some(unsafe { sum_blocks_avx2(blocks) })
}

#[target_feature(enable = "avx2")]
fn sum_blocks_avx2(blocks: &[[u8; 64]]) -> u64 {
    let flip = _mm256_set1_epi16(i16::MIN);
    let ones = _mm256_set1_epi16(1);
    let mut total: u64 = 0;
    for run in blocks.chunks(RUN) {
        // Two accumulators (the two halves of a block), so that the adds of
        // successive blocks are two chains, not one.
        let (mut low, mut high) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for block in run {
            let (first, second) = block.split_at(32);
            // SAFETY: each half is 32 bytes, which is what an unaligned
            // 256-bit load reads.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_si256(first.as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(second.as_ptr().cast::<__m256i>()),
                )
            };
            low = _mm256_add_epi32(low, _mm256_madd_epi16(_mm256_xor_si256(a, flip), ones));
            high = _mm256_add_epi32(high, _mm256_madd_epi16(_mm256_xor_si256(b, flip), ones));
        }
        let mut lanes = [[0u8; 32]; 2];
        // SAFETY: each destination is 32 bytes, what an unaligned 256-bit
        // store writes.
        unsafe {
            _mm256_storeu_si256(lanes[0].as_mut_ptr().cast::<__m256i>(), low);
            _mm256_storeu_si256(lanes[1].as_mut_ptr().cast::<__m256i>(), high);
        }
        let signed: i64 =
            lanes.as_flattened().as_chunks::<4>().0.iter().map(|lane| i64::from(i32::from_ne_bytes(*lane))).sum();
        // Each of the run's 32 words per block was taken 0x8000 low.
        let offset = (run.len() as i64) * 32 * 0x8000;
        // Never negative: it is the plain sum of the run's words.
        total = total.wrapping_add((signed + offset) as u64);
    }
    total
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The plain sum of 16-bit native-order words, the reference.
    fn words(bytes: &[u8]) -> u64 {
        bytes.as_chunks::<2>().0.iter().map(|w| u64::from(u16::from_ne_bytes(*w))).sum()
    }

    #[test]
    fn equals_the_plain_sum_of_words() {
        if !avx2::get() {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        let mixed: Vec<u8> = (0..64 * 300).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
        let extremes = [vec![0u8; 64 * 40], vec![0xffu8; 64 * 40], vec![0x80u8; 64 * 40], vec![0x7fu8; 64 * 40]];
        for bytes in extremes.iter().chain([&mixed]) {
            for n in [0, 1, 2, 3, 22, 40, bytes.len() / 64] {
                let blocks = bytes[..64 * n].as_chunks::<64>().0;
                assert_eq!(sum_blocks(blocks), Some(words(&bytes[..64 * n])), "{n} blocks of {:#x}..", bytes[0]);
            }
        }
    }

    /// Longer than one run, all ones: the lanes' worst case, and the
    /// carry between runs.
    #[test]
    fn runs_longer_than_the_lanes_hold() {
        if !avx2::get() {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        let bytes = vec![0xffu8; 64 * (RUN * 2 + 3)];
        let blocks = bytes.as_chunks::<64>().0;
        assert_eq!(sum_blocks(blocks), Some(words(&bytes)));
        assert_eq!(sum_blocks(blocks), Some(0xffff * 32 * (RUN as u64 * 2 + 3)));
    }
}
