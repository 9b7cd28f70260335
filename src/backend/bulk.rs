//! The whole batches of a message, as the SIMD bulk loops see them.
//!
//! A [`Bulk`] stands for `batches * batch_len` bytes read from `src` and
//! written to `dst`: the same memory when working in place, or the caller's
//! input and the spare capacity of an output `Vec` (ESP's seal, which
//! encrypts a payload straight from the packet it was handed). Each backend
//! loads and stores its own register width through [`Bulk::input`] and
//! [`Bulk::output`].

use super::sink::PlaintextSink;
use core::marker::PhantomData;
use core::mem::MaybeUninit;

/// `batches` whole batches of `batch_len` bytes, read from `src`, written to
/// `dst`.
///
/// Made only from slices by [`Bulk::in_place`] and [`Bulk::between`], which
/// guarantee that `src` is readable and `dst` writable for
/// `batches * batch_len` bytes for the lifetime `'a`; that is what the
/// pointer accessors rely on.
#[derive(Clone, Copy)]
pub(crate) struct Bulk<'a> {
    src: *const u8,
    dst: *mut u8,
    /// How many whole batches there are.
    pub(super) batches: usize,
    batch_len: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> Bulk<'a> {
    /// The batches of `batch_len` bytes of `buf`, in place, and the bytes
    /// after them.
    #[inline(always)]
    pub(super) fn in_place(buf: &'a mut [u8], batch_len: usize) -> (Bulk<'a>, &'a mut [u8]) {
        let batches = buf.len() / batch_len;
        let (head, rest) = buf.split_at_mut(batches * batch_len);
        let dst = head.as_mut_ptr();
        (Bulk { src: dst, dst, batches, batch_len, _borrow: PhantomData }, rest)
    }

    /// The batches of `src` into the start of `dst`, and what is left of
    /// each.
    #[inline(always)]
    pub(super) fn between(
        src: &'a [u8],
        dst: &'a mut [MaybeUninit<u8>],
        batch_len: usize,
    ) -> (Bulk<'a>, &'a [u8], &'a mut [MaybeUninit<u8>]) {
        let batches = (src.len() / batch_len).min(dst.len() / batch_len);
        let (src_head, src_rest) = src.split_at(batches * batch_len);
        let (dst_head, dst_rest) = dst.split_at_mut(batches * batch_len);
        let bulk = Bulk {
            src: src_head.as_ptr(),
            dst: dst_head.as_mut_ptr().cast(),
            batches,
            batch_len,
            _borrow: PhantomData,
        };
        (bulk, src_rest, dst_rest)
    }

    /// Byte `offset` of input batch `batch`.
    ///
    /// # Safety
    /// `batch * batch_len + offset` is below `batches * batch_len`; the
    /// caller reads only bytes below that bound from it.
    #[inline(always)]
    pub(super) unsafe fn input(&self, batch: usize, offset: usize) -> *const u8 {
        // SAFETY: inside the `batches * batch_len` readable bytes (caller).
        unsafe { self.src.add(batch * self.batch_len + offset) }
    }

    /// Byte `offset` of output batch `batch`.
    ///
    /// # Safety
    /// `batch * batch_len + offset` is below `batches * batch_len`; the
    /// caller writes only bytes below that bound through it.
    #[inline(always)]
    pub(super) unsafe fn output(&self, batch: usize, offset: usize) -> *mut u8 {
        // SAFETY: inside the `batches * batch_len` writable bytes (caller).
        unsafe { self.dst.add(batch * self.batch_len + offset) }
    }

    /// Hand input batch `batch` to `sink`, 64 bytes at a time (`batch_len`
    /// is a multiple of 64).
    ///
    /// # Safety
    /// `batch < self.batches`.
    #[inline(always)]
    pub(super) unsafe fn feed<S: PlaintextSink>(&self, batch: usize, sink: &mut S) {
        debug_assert!(self.batch_len.is_multiple_of(64));
        for part in 0..self.batch_len / 64 {
            // SAFETY: in bounds of `src` (caller and type invariant); nothing
            // writes them while this short-lived reference exists.
            sink.block(unsafe { &*self.input(batch, 64 * part).cast::<[u8; 64]>() });
        }
    }
}
