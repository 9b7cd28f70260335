//! Packet frames: one packet in a buffer with room in front of it and after
//! it, the shape every stage of the tunnel shares.
//!
//! A frame is read into (from the TUN queue or a socket) at a fixed offset,
//! sealed or opened where it lies by the ESP engine (it is an
//! [`espgcm::esp::PacketBuffer`]), and written out from where the engine
//! left it. The TUN device's batched calls (`tun-rs`) see the same frame
//! through `AsRef`/`AsMut` (the whole buffer, for reading into) and
//! [`ExpandBuffer`] (for its receive-offload coalescing, which appends the
//! following segments of a TCP flow to the first one).

use espgcm::esp::PacketBuffer;
use tun_rs::ExpandBuffer;

/// One packet and the memory around it.
///
/// The packet is `mem[start..start + len]`. `mem.len()` is the frame's
/// capacity while the frame is read into or transformed; before it is handed
/// to the TUN device's batched write it is cut to the end of the packet
/// and shown from a little before the packet (see [`Frame::place_for_tun`]),
/// because that call takes "everything from a fixed offset to the end of the
/// buffer" as the packet.
#[derive(Clone, Debug)]
pub struct Frame {
    mem: Vec<u8>,
    start: usize,
    len: usize,
    /// Where the buffer the TUN device sees begins (`AsRef`, `AsMut`,
    /// [`ExpandBuffer`]): 0, except after [`Frame::place_for_tun`].
    view: usize,
}

impl Frame {
    /// An empty frame of `capacity` bytes.
    pub fn new(capacity: usize) -> Frame {
        Frame { mem: vec![0; capacity], start: 0, len: 0, view: 0 }
    }

    /// An empty frame of `capacity` bytes whose memory can grow to
    /// `reserve` bytes without moving: the TUN device's receive-offload
    /// coalescing appends a flow's following segments to its first one, and
    /// declines to when that would reallocate.
    pub fn with_reserve(capacity: usize, reserve: usize) -> Frame {
        let mut mem = Vec::with_capacity(reserve.max(capacity));
        mem.resize(capacity, 0);
        Frame { mem, start: 0, len: 0, view: 0 }
    }

    /// Restore the full capacity (after a write to the TUN device cut or
    /// grew the buffer) and forget the packet.
    pub fn reset(&mut self, capacity: usize) {
        self.mem.resize(capacity, 0);
        self.start = 0;
        self.len = 0;
        self.view = 0;
    }

    /// The memory from `offset` to the end, to receive a packet into.
    pub fn tail_mut(&mut self, offset: usize) -> &mut [u8] {
        self.mem.get_mut(offset..).unwrap_or_default()
    }

    /// The packet is the `len` bytes at `start` (after a read put them there).
    /// Returns false, leaving the frame empty, if they do not lie inside it.
    pub fn set_packet(&mut self, start: usize, len: usize) -> bool {
        if start.checked_add(len).is_some_and(|end| end <= self.mem.len()) {
            self.start = start;
            self.len = len;
            true
        } else {
            self.start = 0;
            self.len = 0;
            false
        }
    }

    /// Copy `bytes` in as the packet, at `start`. Returns false (frame left
    /// empty) if they do not fit.
    pub fn fill(&mut self, start: usize, bytes: &[u8]) -> bool {
        match self.mem.get_mut(start..start + bytes.len()) {
            Some(place) => {
                place.copy_from_slice(bytes);
                self.start = start;
                self.len = bytes.len();
                true
            }
            None => {
                self.len = 0;
                false
            }
        }
    }

    /// The packet.
    pub fn packet(&self) -> &[u8] {
        self.mem.get(self.start..self.start + self.len).unwrap_or_default()
    }

    /// Where the packet starts.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The packet's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame holds no packet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes in front of the packet, writable (for an outer header).
    pub fn headroom_mut(&mut self) -> &mut [u8] {
        self.mem.get_mut(..self.start).unwrap_or_default()
    }

    /// Grow the packet forward by `n` bytes of its headroom (after they were
    /// written through [`headroom_mut`](Self::headroom_mut)).
    pub fn push_front(&mut self, n: usize) -> bool {
        match self.start.checked_sub(n) {
            Some(s) => {
                self.start = s;
                self.len += n;
                true
            }
            None => false,
        }
    }

    /// Show the TUN device's batched write a buffer in which the packet
    /// begins at `offset` (its virtio header goes in front) and which ends
    /// with the packet; nothing is copied. Returns false if the headroom is
    /// smaller than `offset`.
    pub fn place_for_tun(&mut self, offset: usize) -> bool {
        let Some(view) = self.start.checked_sub(offset) else {
            return false;
        };
        self.view = view;
        self.mem.truncate(self.start + self.len);
        true
    }
}

impl PacketBuffer for Frame {
    fn room(&mut self) -> (&mut [u8], &mut usize, &mut usize) {
        (&mut self.mem, &mut self.start, &mut self.len)
    }

    fn data(&self) -> &[u8] {
        self.packet()
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self.mem.get(self.view..).unwrap_or_default()
    }
}

impl AsMut<[u8]> for Frame {
    fn as_mut(&mut self) -> &mut [u8] {
        self.mem.get_mut(self.view..).unwrap_or_default()
    }
}

impl ExpandBuffer for Frame {
    fn buf_capacity(&self) -> usize {
        self.mem.capacity() - self.view
    }

    fn buf_resize(&mut self, new_len: usize, value: u8) {
        self.mem.resize(self.view + new_len, value);
    }

    fn buf_extend_from_slice(&mut self, src: &[u8]) {
        self.mem.extend_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_moves_to_the_tun_offset_and_the_buffer_ends_with_it() {
        let mut f = Frame::new(256);
        assert!(f.fill(100, b"packet"));
        assert!(f.place_for_tun(10));
        assert_eq!(f.as_ref().len(), 16);
        assert_eq!(&f.as_ref()[10..], b"packet");
        f.buf_extend_from_slice(b"+more");
        assert_eq!(&f.as_ref()[10..], b"packet+more");
        f.buf_resize(12, 0);
        assert_eq!(&f.as_ref()[10..], b"pa");
        assert!(!f.place_for_tun(200));
        f.reset(256);
        assert_eq!((f.as_ref().len(), f.len()), (256, 0));
    }

    #[test]
    fn headers_go_into_the_headroom() {
        let mut f = Frame::new(64);
        assert!(f.fill(8, b"esp"));
        f.headroom_mut()[6..8].copy_from_slice(b"ip");
        assert!(f.push_front(2));
        assert_eq!(f.packet(), b"ipesp");
        assert!(!f.push_front(7), "only 6 bytes of room are left");
        assert!(!f.set_packet(60, 5));
        assert!(f.is_empty());
    }
}
