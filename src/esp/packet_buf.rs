//! Packets with room around them, sealed and opened where they lie.
//!
//! A data plane's packet buffers (DPDK mbufs, AF_XDP frames, a ring of
//! fixed-size slots) keep free space before and after the packet, so that
//! headers can be pushed in front and a trailer appended without copying the
//! payload. [`PacketBuffer`] is that shape as a trait: a region of memory
//! and where in it the packet currently sits. [`PacketBuf`] owns its
//! memory; [`PacketSlice`] borrows someone else's (a C data plane's frame,
//! described by a slice and two offsets).

use core::fmt;

/// Room in front of the packet that any SA needs: an outer IPv6 header
/// (40), UDP encapsulation (8), the ESP header (8) and IV (8), with the rest
/// to spare for a caller's link-layer header.
pub const HEADROOM: usize = 128;

/// Room after the packet that any SA needs: padding (up to 3), pad length and
/// next header (2) and the ICV (up to 16), with the rest to spare.
pub const TAILROOM: usize = 64;

/// Memory that holds one packet with free room before and after it.
///
/// Implement it for a data plane's own buffer type to seal and open packets
/// in place there; [`PacketBuf`] and [`PacketSlice`] are the two provided.
/// The invariant every implementation keeps: `start + len <=
/// room().0.len()`.
pub trait PacketBuffer {
    /// The whole region and the packet's place in it: (memory, start, len).
    fn room(&mut self) -> (&mut [u8], &mut usize, &mut usize);

    /// The packet as it is now.
    fn data(&self) -> &[u8];
}

/// An owned packet buffer with [`HEADROOM`] and [`TAILROOM`] around the
/// packet, reused from packet to packet.
///
/// ```
/// use espgcm::esp::PacketBuf;
///
/// let mut buf = PacketBuf::from_packet(b"an IP packet");
/// assert_eq!(buf.data(), b"an IP packet");
/// assert!(buf.headroom() >= 64 && buf.tailroom() >= 32);
/// buf.set(b"the next one, in the same allocation");
/// assert_eq!(buf.data(), b"the next one, in the same allocation");
/// ```
#[derive(Clone, Default)]
pub struct PacketBuf {
    memory: Vec<u8>,
    start: usize,
    len: usize,
}

impl PacketBuf {
    /// A buffer holding `packet`, with room for any SA's headers and trailer.
    pub fn from_packet(packet: &[u8]) -> PacketBuf {
        let mut buf = PacketBuf::with_capacity(packet.len());
        buf.set(packet);
        buf
    }

    /// An empty buffer that can take a packet of `len` bytes without
    /// growing.
    pub fn with_capacity(len: usize) -> PacketBuf {
        PacketBuf { memory: vec![0; HEADROOM + len + TAILROOM], start: HEADROOM, len: 0 }
    }

    /// Replace the contents with `packet`, in the same allocation when it
    /// fits (growing it once otherwise). The bytes of the earlier packet
    /// are overwritten where the new one lies, and zeroed elsewhere only
    /// when the buffer grows.
    pub fn set(&mut self, packet: &[u8]) {
        let needed = HEADROOM + packet.len() + TAILROOM;
        if self.memory.len() < needed {
            self.memory.resize(needed, 0);
        }
        self.start = HEADROOM;
        self.len = packet.len();
        if let Some(place) = self.memory.get_mut(HEADROOM..HEADROOM + packet.len()) {
            place.copy_from_slice(packet);
        }
    }

    /// The packet as it is now.
    pub fn data(&self) -> &[u8] {
        self.memory.get(self.start..self.start + self.len).unwrap_or_default()
    }

    /// The packet, to change in place.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.memory.get_mut(self.start..self.start + self.len).unwrap_or_default()
    }

    /// Free bytes in front of the packet.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the packet.
    pub fn tailroom(&self) -> usize {
        self.memory.len() - self.start - self.len
    }

    /// The packet's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no packet bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PacketBuffer for PacketBuf {
    fn room(&mut self) -> (&mut [u8], &mut usize, &mut usize) {
        (&mut self.memory, &mut self.start, &mut self.len)
    }

    fn data(&self) -> &[u8] {
        PacketBuf::data(self)
    }
}

impl fmt::Debug for PacketBuf {
    /// Lengths only: a packet's bytes may be plaintext.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketBuf")
            .field("len", &self.len)
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

/// Someone else's packet memory: a slice holding the whole frame and the
/// packet's offset and length in it (an mbuf's `buf_addr`/`data_off`/
/// `data_len`, an AF_XDP frame and its descriptor). After a seal or open,
/// [`start`](Self::start) and [`len`](Self::len) say where the result is,
/// for the caller to write back into its own descriptor.
///
/// ```
/// use espgcm::esp::{PacketBuffer, PacketSlice};
///
/// let mut frame = [0u8; 256];
/// frame[128..132].copy_from_slice(b"data");
/// let packet = PacketSlice::new(&mut frame, 128, 4).expect("the packet lies inside the frame");
/// assert_eq!(packet.data(), b"data");
/// assert!(PacketSlice::new(&mut [0u8; 8], 6, 4).is_none());
/// ```
#[derive(Debug)]
pub struct PacketSlice<'a> {
    memory: &'a mut [u8],
    start: usize,
    len: usize,
}

impl<'a> PacketSlice<'a> {
    /// The packet of `len` bytes at `start` in `memory`; `None` if it does
    /// not lie inside `memory`.
    pub fn new(memory: &'a mut [u8], start: usize, len: usize) -> Option<PacketSlice<'a>> {
        let end = start.checked_add(len)?;
        if end > memory.len() {
            return None;
        }
        Some(PacketSlice { memory, start, len })
    }

    /// Where the packet starts now.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The packet's length now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the packet is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PacketBuffer for PacketSlice<'_> {
    fn room(&mut self) -> (&mut [u8], &mut usize, &mut usize) {
        (self.memory, &mut self.start, &mut self.len)
    }

    fn data(&self) -> &[u8] {
        self.memory.get(self.start..self.start + self.len).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn set_reuses_the_allocation_and_grows_only_when_needed() {
        let mut buf = PacketBuf::from_packet(&[1; 100]);
        let before = buf.memory.as_ptr();
        buf.set(&[2; 60]);
        assert_eq!(buf.memory.as_ptr(), before);
        assert_eq!(buf.data(), &[2; 60][..]);
        assert_eq!((buf.headroom(), buf.len(), buf.tailroom()), (HEADROOM, 60, 40 + TAILROOM));
        buf.set(&[3; 1500]);
        assert_eq!(buf.data(), &[3; 1500][..]);
        assert_eq!(buf.tailroom(), TAILROOM);
    }

    #[test]
    fn a_slice_keeps_its_offsets_inside_the_frame() {
        let mut frame = vec![0u8; 300];
        assert!(PacketSlice::new(&mut frame, 200, 100).is_some());
        assert!(PacketSlice::new(&mut frame, 200, 101).is_none());
        assert!(PacketSlice::new(&mut frame, usize::MAX, 2).is_none());
        let mut p = PacketSlice::new(&mut frame, 10, 5).unwrap();
        let (memory, start, len) = p.room();
        memory[10..15].copy_from_slice(b"hello");
        *start += 1;
        *len -= 1;
        assert_eq!((p.start(), p.len(), p.data()), (11, 4, &b"ello"[..]));
    }
}
