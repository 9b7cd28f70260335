//! Turning what C passed (pointers and lengths) into Rust references, with
//! every check made first: NULL, length, alignment, overlap. This is where
//! the bindings' trust in the caller is written down.

use crate::result::{ESPGCM_ERR_INVALID_ARGUMENT, ESPGCM_ERR_NULL_PARAMETER, ESPGCM_ERR_OVERLAP};
use core::ffi::c_int;

/// The longest buffer a Rust slice can describe.
const MAX_LEN: usize = isize::MAX as usize;

/// Bytes the caller passed as (pointer, length): NULL with length 0 is an
/// empty buffer.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len`
/// readable bytes that nothing writes for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], c_int> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(ESPGCM_ERR_NULL_PARAMETER);
    }
    if len > MAX_LEN {
        return Err(ESPGCM_ERR_INVALID_ARGUMENT);
    }
    // SAFETY: not NULL, at most isize::MAX bytes (checked above), readable
    // and unchanged for 'a (this function's contract); u8 needs no alignment.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// Writable bytes the caller passed as (pointer, length): NULL with
/// length 0 is an empty buffer.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len`
/// writable bytes that nothing else reads or writes for `'a`.
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], c_int> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(ESPGCM_ERR_NULL_PARAMETER);
    }
    if len > MAX_LEN {
        return Err(ESPGCM_ERR_INVALID_ARGUMENT);
    }
    // SAFETY: not NULL, at most isize::MAX bytes (checked above), writable
    // and used by nobody else for 'a (this function's contract).
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// A caller's object of type `T`, to read.
///
/// # Safety
/// A non-NULL `ptr` must point to a valid `T` that nothing writes for `'a`.
pub(crate) unsafe fn object<'a, T>(ptr: *const T) -> Result<&'a T, c_int> {
    if ptr.is_null() {
        return Err(ESPGCM_ERR_NULL_PARAMETER);
    }
    if !ptr.is_aligned() {
        return Err(ESPGCM_ERR_INVALID_ARGUMENT);
    }
    // SAFETY: not NULL and aligned (checked above), a valid T unchanged for
    // 'a (this function's contract).
    Ok(unsafe { &*ptr })
}

/// A caller's optional object: NULL is `None`.
///
/// # Safety
/// As for [`object`].
pub(crate) unsafe fn optional<'a, T>(ptr: *const T) -> Result<Option<&'a T>, c_int> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: this function's contract is object's.
    unsafe { object(ptr) }.map(Some)
}

/// A caller's object of type `T`, to change.
///
/// # Safety
/// A non-NULL `ptr` must point to a valid `T` that nothing else reads or
/// writes for `'a`.
pub(crate) unsafe fn object_mut<'a, T>(ptr: *mut T) -> Result<&'a mut T, c_int> {
    if ptr.is_null() {
        return Err(ESPGCM_ERR_NULL_PARAMETER);
    }
    if !ptr.is_aligned() {
        return Err(ESPGCM_ERR_INVALID_ARGUMENT);
    }
    // SAFETY: not NULL and aligned (checked above), a valid T used by
    // nobody else for 'a (this function's contract).
    Ok(unsafe { &mut *ptr })
}

/// An array of `len` objects of type `T`, to change: NULL with length 0 is
/// an empty array.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len` valid,
/// consecutive `T`s that nothing else reads or writes for `'a`.
pub(crate) unsafe fn array_mut<'a, T>(ptr: *mut T, len: usize) -> Result<&'a mut [T], c_int> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(ESPGCM_ERR_NULL_PARAMETER);
    }
    if !ptr.is_aligned() || len.checked_mul(size_of::<T>()).is_none_or(|n| n > MAX_LEN) {
        return Err(ESPGCM_ERR_INVALID_ARGUMENT);
    }
    // SAFETY: not NULL, aligned, at most isize::MAX bytes (checked above);
    // len valid Ts used by nobody else for 'a (this function's contract).
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// An array of `len` objects of type `T`, to read: NULL with length 0 is
/// an empty array.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len` valid,
/// consecutive `T`s that nothing writes for `'a`.
pub(crate) unsafe fn array<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], c_int> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(ESPGCM_ERR_NULL_PARAMETER);
    }
    if !ptr.is_aligned() || len.checked_mul(size_of::<T>()).is_none_or(|n| n > MAX_LEN) {
        return Err(ESPGCM_ERR_INVALID_ARGUMENT);
    }
    // SAFETY: not NULL, aligned, at most isize::MAX bytes (checked above);
    // len valid Ts unchanged for 'a (this function's contract).
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// Write `value` to an output parameter.
///
/// # Safety
/// A non-NULL `ptr` must be valid for a write of a `T` (its old contents
/// may be uninitialised: they are not read or dropped).
pub(crate) unsafe fn put<T>(ptr: *mut T, value: T) -> Result<(), c_int> {
    if ptr.is_null() {
        return Err(ESPGCM_ERR_NULL_PARAMETER);
    }
    if !ptr.is_aligned() {
        return Err(ESPGCM_ERR_INVALID_ARGUMENT);
    }
    // SAFETY: not NULL and aligned (checked above), writable (this
    // function's contract); write() neither reads nor drops the old value.
    unsafe { ptr.write(value) };
    Ok(())
}

/// The address range of a buffer, for overlap checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    start: usize,
    end: usize,
    /// Whether the call writes it.
    written: bool,
}

impl Span {
    /// A buffer the call reads.
    pub(crate) fn read(b: &[u8]) -> Span {
        let start = b.as_ptr() as usize;
        Span { start, end: start + b.len(), written: false }
    }

    /// A buffer the call writes.
    pub(crate) fn written(b: &[u8]) -> Span {
        Span { written: true, ..Span::read(b) }
    }

    /// Raw bounds, for memory described by a pointer and a length that has
    /// already been checked to lie in one allocation.
    pub(crate) fn raw(ptr: *const u8, len: usize, written: bool) -> Span {
        let start = ptr as usize;
        Span { start, end: start.saturating_add(len), written }
    }
}

/// [`ESPGCM_ERR_OVERLAP`] if a buffer that is written overlaps any other
/// buffer. Empty buffers overlap nothing. Sorts `spans`.
pub(crate) fn check_disjoint(spans: &mut [Span]) -> Result<(), c_int> {
    spans.sort_unstable_by_key(|s| s.start);
    // Sweep in order of start: a span overlaps an earlier one exactly when
    // it starts before that one ends.
    let (mut end_any, mut end_written) = (0usize, 0usize);
    for s in spans.iter().filter(|s| s.end > s.start) {
        if s.start < end_written || (s.written && s.start < end_any) {
            return Err(ESPGCM_ERR_OVERLAP);
        }
        end_any = end_any.max(s.end);
        if s.written {
            end_written = end_written.max(s.end);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(list: &[(usize, usize, bool)]) -> Vec<Span> {
        list.iter().map(|&(start, end, written)| Span { start, end, written }).collect()
    }

    #[test]
    fn overlaps_with_a_written_buffer_are_refused() {
        // Reads may overlap each other; adjacent buffers do not overlap.
        assert!(check_disjoint(&mut spans(&[(0, 10, false), (5, 15, false), (15, 20, true)])).is_ok());
        assert!(check_disjoint(&mut spans(&[(0, 10, true), (10, 20, true), (20, 20, true)])).is_ok());
        assert_eq!(check_disjoint(&mut spans(&[(0, 10, true), (9, 20, false)])), Err(ESPGCM_ERR_OVERLAP));
        assert_eq!(check_disjoint(&mut spans(&[(0, 10, false), (9, 20, true)])), Err(ESPGCM_ERR_OVERLAP));
        // A short written span inside a long read one, found whatever the order.
        assert_eq!(check_disjoint(&mut spans(&[(50, 51, true), (0, 100, false)])), Err(ESPGCM_ERR_OVERLAP));
        // A written span that ends far out overlaps a later one two places on.
        assert_eq!(
            check_disjoint(&mut spans(&[(0, 100, true), (10, 10, false), (20, 30, false)])),
            Err(ESPGCM_ERR_OVERLAP)
        );
        // Empty spans never overlap.
        assert!(check_disjoint(&mut spans(&[(0, 100, true), (50, 50, false)])).is_ok());
    }

    #[test]
    fn null_pointers_are_refused_unless_empty() {
        // SAFETY: NULL pointers are never dereferenced by these helpers.
        unsafe {
            assert_eq!(bytes(core::ptr::null(), 0), Ok(&[][..]));
            assert_eq!(bytes(core::ptr::null(), 1), Err(ESPGCM_ERR_NULL_PARAMETER));
            assert_eq!(bytes_mut(core::ptr::null_mut(), 3).map(|b| b.len()), Err(ESPGCM_ERR_NULL_PARAMETER));
            assert_eq!(object::<u32>(core::ptr::null()).err(), Some(ESPGCM_ERR_NULL_PARAMETER));
            assert_eq!(optional::<u32>(core::ptr::null()), Ok(None));
            assert_eq!(put::<u32>(core::ptr::null_mut(), 1), Err(ESPGCM_ERR_NULL_PARAMETER));
        }
        let x = [0u32; 2];
        let misaligned = (x.as_ptr() as *const u8).wrapping_add(1).cast::<u32>();
        // SAFETY: a misaligned pointer is refused before it is dereferenced.
        assert_eq!(unsafe { object(misaligned) }.err(), Some(ESPGCM_ERR_INVALID_ARGUMENT));
        let b = [1u8; 4];
        // SAFETY: b is 4 readable bytes; the length is refused before use.
        assert_eq!(unsafe { bytes(b.as_ptr(), usize::MAX) }, Err(ESPGCM_ERR_INVALID_ARGUMENT));
    }
}
