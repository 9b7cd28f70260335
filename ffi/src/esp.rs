//! IPsec ESP: SA configurations, the sending and receiving halves of an SA,
//! single packets and bursts over the caller's own packet memory.

use crate::args::{Span, array, array_mut, bytes, bytes_mut, check_disjoint, object, object_mut, optional, put};
use crate::backend::{backend_from, espgcm_backend, espgcm_verify, verify_from};
use crate::result::{
    ESPGCM_ERR_BUFFER_TOO_SMALL, ESPGCM_ERR_ESP_INVALID, ESPGCM_ERR_ESP_SEQUENCE_EXHAUSTED,
    ESPGCM_ERR_INVALID_ARGUMENT, ESPGCM_ERR_NULL_PARAMETER, ESPGCM_OK, esp_code, guard,
};
use core::cell::RefCell;
use core::ffi::{c_char, c_int};
use core::ptr::null_mut;
use espgcm::esp::{
    ChecksumPolicy, Counters, Encap, EspError, Inbound, Mode, NextHeaders, Outbound, PacketBuffer, SaConfig, Selector,
    Transform,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// Free bytes a frame should have in front of the packet for any SA's
/// headers (outer IPv6 header, UDP encapsulation, ESP header and IV), with
/// room to spare for a link-layer header.
pub const ESPGCM_HEADROOM: usize = 128;
/// Free bytes a frame should have after the packet for any SA's trailer
/// (padding, pad length, next header, ICV), with room to spare.
pub const ESPGCM_TAILROOM: usize = 64;

/// The ESP transform: one of the `ESPGCM_TRANSFORM_*` constants.
pub type espgcm_transform = u32;
/// AES-GCM (RFC 4106): confidentiality and integrity. The default.
pub const ESPGCM_TRANSFORM_AES_GCM: espgcm_transform = 0;
/// AES-GMAC (RFC 4543): integrity only, payload in the clear; ICV 16 only.
pub const ESPGCM_TRANSFORM_AES_GMAC: espgcm_transform = 1;

/// "Any protocol" in `espgcm_selector.protocol` (protocol numbers are 0 to
/// 255).
pub const ESPGCM_PROTOCOL_ANY: u16 = 256;

/// An IPv4 or IPv6 address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct espgcm_ip {
    /// 4 or 6.
    pub family: u8,
    /// The address in network byte order; an IPv4 address in the first
    /// 4 bytes.
    pub addr: [u8; 16],
}

/// The address a caller's `espgcm_ip` holds.
fn ip_from(ip: &espgcm_ip) -> Result<IpAddr, c_int> {
    match ip.family {
        4 => Ok(IpAddr::V4(Ipv4Addr::new(ip.addr[0], ip.addr[1], ip.addr[2], ip.addr[3]))),
        6 => Ok(IpAddr::V6(Ipv6Addr::from(ip.addr))),
        _ => Err(ESPGCM_ERR_INVALID_ARGUMENT),
    }
}

/// An optional address: NULL is none.
///
/// # Safety
/// A non-NULL `ip` must point to a valid `espgcm_ip`.
pub(crate) unsafe fn optional_ip(ip: *const espgcm_ip) -> Result<Option<IpAddr>, c_int> {
    // SAFETY: this function's contract.
    unsafe { optional(ip) }?.map(ip_from).transpose()
}

/// One traffic selector (RFC 4301 §4.4.1), from this end's point of view.
/// Fill one with `espgcm_selector_between` and narrow what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct espgcm_selector {
    /// This end's addresses: an address ...
    pub local: espgcm_ip,
    /// ... and a prefix length (0 to 32, or 0 to 128).
    pub local_prefix: u8,
    /// The peer's addresses: an address ...
    pub remote: espgcm_ip,
    /// ... and a prefix length.
    pub remote_prefix: u8,
    /// The IP protocol (0 to 255), or `ESPGCM_PROTOCOL_ANY`.
    pub protocol: u16,
    /// Lowest port at this end.
    pub local_port_min: u16,
    /// Highest port at this end.
    pub local_port_max: u16,
    /// Lowest port at the peer.
    pub remote_port_min: u16,
    /// Highest port at the peer.
    pub remote_port_max: u16,
}

/// The library's selector for a caller's one.
pub(crate) fn selector_from(s: &espgcm_selector) -> Result<Selector, c_int> {
    let protocol = match s.protocol {
        ESPGCM_PROTOCOL_ANY => None,
        p => Some(u8::try_from(p).map_err(|_| ESPGCM_ERR_INVALID_ARGUMENT)?),
    };
    Ok(Selector {
        protocol,
        local_ports: s.local_port_min..=s.local_port_max,
        remote_ports: s.remote_port_min..=s.remote_port_max,
        ..Selector::between((ip_from(&s.local)?, s.local_prefix), (ip_from(&s.remote)?, s.remote_prefix))
    })
}

/// Fill `*out` with a selector for any protocol and port between two
/// address ranges.
///
/// # Safety
/// `local` and `remote` must be valid; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_selector_between(
    local: *const espgcm_ip,
    local_prefix: u8,
    remote: *const espgcm_ip,
    remote_prefix: u8,
    out: *mut espgcm_selector,
) -> c_int {
    guard(|| {
        // SAFETY: both addresses are valid (this function's contract).
        let (local, remote) = unsafe { (*object(local)?, *object(remote)?) };
        let s = espgcm_selector {
            local,
            local_prefix,
            remote,
            remote_prefix,
            protocol: ESPGCM_PROTOCOL_ANY,
            local_port_min: 0,
            local_port_max: u16::MAX,
            remote_port_min: 0,
            remote_port_max: u16::MAX,
        };
        selector_from(&s)?;
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, s) }
    })
}

/// The parameters of one SA, one direction: made by `espgcm_sa_config_new`
/// with every default (AES-GCM, 16-byte ICV, transport mode, no UDP
/// encapsulation, no ESN, replay window 4096, checksums verified, best
/// backend, one message in 4096 cross-checked), changed with the
/// `espgcm_sa_config_set_*` functions, used by `espgcm_outbound_new`,
/// `espgcm_inbound_new` and `espgcm_sa_table_add_inbound` (which copy it),
/// released by `espgcm_sa_config_free` (which wipes its key material).
pub struct espgcm_sa_config(SaConfig);

impl Drop for espgcm_sa_config {
    fn drop(&mut self) {
        self.0.keymat.zeroize();
    }
}

/// Start an SA configuration: `spi` (256 or above) and the keying material,
/// an AES key followed by a 4-byte salt (RFC 4106: 20, 28 or 36 bytes),
/// which is copied. Nothing is checked until the SA is made (or
/// `espgcm_sa_config_validate` is called).
///
/// # Safety
/// `keymat` must point to `keymat_len` readable bytes; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_new(
    spi: u32,
    keymat: *const u8,
    keymat_len: usize,
    out: *mut *mut espgcm_sa_config,
) -> c_int {
    guard(|| {
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, null_mut()) }?;
        // SAFETY: keymat holds keymat_len readable bytes (this function's contract).
        let keymat = unsafe { bytes(keymat, keymat_len) }?;
        let cfg = Box::new(espgcm_sa_config(SaConfig::new(spi, keymat)));
        // SAFETY: out is writable; espgcm_sa_config_free takes the Box back.
        unsafe { put(out, Box::into_raw(cfg)) }
    })
}

/// Release a configuration, wiping its key material. NULL is fine.
///
/// # Safety
/// `cfg` must be NULL or a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_free(cfg: *mut espgcm_sa_config) {
    if cfg.is_null() {
        return;
    }
    let _ = guard(|| {
        // SAFETY: cfg came from Box::into_raw in espgcm_sa_config_new and is
        // freed once (this function's contract).
        drop(unsafe { Box::from_raw(cfg) });
        Ok(())
    });
}

/// Change a configuration through `f`.
fn with_config(cfg: *mut espgcm_sa_config, f: impl FnOnce(&mut SaConfig) -> Result<(), c_int>) -> c_int {
    guard(|| {
        // SAFETY: cfg is a live configuration used by nobody else (the
        // setters' contract).
        let cfg = unsafe { object_mut(cfg) }?;
        f(&mut cfg.0)
    })
}

/// Tunnel mode, with outer source and destination addresses (one family).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using; `src` and
/// `dst` must be valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_tunnel(
    cfg: *mut espgcm_sa_config,
    src: *const espgcm_ip,
    dst: *const espgcm_ip,
) -> c_int {
    with_config(cfg, |c| {
        // SAFETY: src and dst are valid (this function's contract).
        let (src, dst) = unsafe { (ip_from(object(src)?)?, ip_from(object(dst)?)?) };
        c.mode = Mode::Tunnel { src, dst };
        Ok(())
    })
}

/// Transport mode (the default).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_transport(cfg: *mut espgcm_sa_config) -> c_int {
    with_config(cfg, |c| {
        c.mode = Mode::Transport;
        Ok(())
    })
}

/// UDP encapsulation (RFC 3948, NAT traversal) with these ports (4500 and
/// 4500 normally); both 0 turns it off (plain ESP, the default).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_udp_encap(
    cfg: *mut espgcm_sa_config,
    src_port: u16,
    dst_port: u16,
) -> c_int {
    with_config(cfg, |c| {
        c.encap = if (src_port, dst_port) == (0, 0) { Encap::None } else { Encap::Udp { src_port, dst_port } };
        Ok(())
    })
}

/// The transform: `ESPGCM_TRANSFORM_AES_GCM` (default) or
/// `ESPGCM_TRANSFORM_AES_GMAC`.
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_transform(
    cfg: *mut espgcm_sa_config,
    transform: espgcm_transform,
) -> c_int {
    with_config(cfg, |c| {
        c.transform = match transform {
            ESPGCM_TRANSFORM_AES_GCM => Transform::AesGcm,
            ESPGCM_TRANSFORM_AES_GMAC => Transform::AesGmac,
            _ => return Err(ESPGCM_ERR_INVALID_ARGUMENT),
        };
        Ok(())
    })
}

/// ICV length: 16 (default), 12 or 8 (checked when the SA is made).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_icv_len(cfg: *mut espgcm_sa_config, icv_len: usize) -> c_int {
    with_config(cfg, |c| {
        c.icv_len = icv_len;
        Ok(())
    })
}

/// Extended (64-bit) sequence numbers; off by default.
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_esn(cfg: *mut espgcm_sa_config, esn: bool) -> c_int {
    with_config(cfg, |c| {
        c.esn = esn;
        Ok(())
    })
}

/// Anti-replay window in packets (0 disables the check; default 4096).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_replay_window(cfg: *mut espgcm_sa_config, packets: u32) -> c_int {
    with_config(cfg, |c| {
        c.replay_window = packets;
        Ok(())
    })
}

/// Whether inner TCP/UDP/ICMP checksums are verified before encryption and
/// after decryption (true, the default). Turn off only if your next stage
/// verifies every checksum itself.
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_checksums(cfg: *mut espgcm_sa_config, verify: bool) -> c_int {
    with_config(cfg, |c| {
        c.checksums = if verify { ChecksumPolicy::Verify } else { ChecksumPolicy::Skip };
        Ok(())
    })
}

/// The AES-GCM backend for the SA's key (default: the best available).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_backend(cfg: *mut espgcm_sa_config, backend: espgcm_backend) -> c_int {
    with_config(cfg, |c| {
        c.backend = Some(backend_from(backend)?);
        Ok(())
    })
}

/// The verify policy of the SA's key (as `espgcm_gcm_set_verify`; default
/// `ESPGCM_VERIFY_SAMPLE` with one message in 4096).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_verify(
    cfg: *mut espgcm_sa_config,
    policy: espgcm_verify,
    one_in: u32,
) -> c_int {
    with_config(cfg, |c| {
        c.verify = verify_from(policy, one_in)?;
        Ok(())
    })
}

/// Tunnel mode: TTL / hop limit of the outer header (default 64).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_tunnel_ttl(cfg: *mut espgcm_sa_config, ttl: u8) -> c_int {
    with_config(cfg, |c| {
        c.tunnel_ttl = ttl;
        Ok(())
    })
}

/// The path MTU sealed packets must fit when they may not be fragmented
/// (`ESPGCM_ERR_ESP_PACKET_TOO_BIG` otherwise); 0 for none (the default).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_path_mtu(cfg: *mut espgcm_sa_config, mtu: u16) -> c_int {
    with_config(cfg, |c| {
        c.path_mtu = (mtu != 0).then_some(mtu);
        Ok(())
    })
}

/// NAT-OA: the original (source, destination) addresses of packets received
/// on this SA, for the RFC 3948 checksum fix-up in transport mode behind a
/// NAT. Both NULL clears it (the default).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using; `src` and
/// `dst` must each be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_nat_original(
    cfg: *mut espgcm_sa_config,
    src: *const espgcm_ip,
    dst: *const espgcm_ip,
) -> c_int {
    with_config(cfg, |c| {
        // SAFETY: src and dst are NULL or valid (this function's contract).
        c.nat_original = match unsafe { (optional_ip(src)?, optional_ip(dst)?) } {
            (Some(s), Some(d)) => Some((s, d)),
            (None, None) => None,
            _ => return Err(ESPGCM_ERR_NULL_PARAMETER),
        };
        Ok(())
    })
}

/// Add a traffic selector: the SA then carries only packets one of its
/// selectors covers (none: anything, the default).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using; `selector`
/// must be valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_add_selector(
    cfg: *mut espgcm_sa_config,
    selector: *const espgcm_selector,
) -> c_int {
    with_config(cfg, |c| {
        // SAFETY: selector is valid (this function's contract).
        let s = selector_from(unsafe { object(selector) }?)?;
        c.selectors.push(s);
        Ok(())
    })
}

/// The next headers (IP protocol numbers) `open` delivers: exactly these
/// `n`; NULL with `n` 0 restores the default (those whose checksums the
/// SA verifies: TCP, UDP, ICMP, ICMPv6; IPv4 and IPv6 in tunnel mode).
///
/// # Safety
/// `cfg` must be a live configuration no other thread is using; `list` must
/// point to `n` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_set_next_headers(
    cfg: *mut espgcm_sa_config,
    list: *const u8,
    n: usize,
) -> c_int {
    with_config(cfg, |c| {
        // SAFETY: list holds n readable bytes (this function's contract).
        let list = unsafe { bytes(list, n) }?;
        c.next_headers = if list.is_empty() { NextHeaders::Verifiable } else { NextHeaders::Only(list.to_vec()) };
        Ok(())
    })
}

/// Check every setting: `ESPGCM_OK`, or `ESPGCM_ERR_ESP_INVALID`
/// with a message naming the setting and what would be accepted written to
/// `msg` (NUL-terminated, cut to `msg_cap` bytes) and its full length
/// (without the NUL) to `*msg_len`. `msg` may be NULL when `msg_cap` is 0,
/// and `msg_len` may be NULL.
///
/// # Safety
/// `cfg` must be a live configuration; `msg` must point to `msg_cap`
/// writable bytes; `msg_len` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_config_validate(
    cfg: *const espgcm_sa_config,
    msg: *mut c_char,
    msg_cap: usize,
    msg_len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: cfg is a live configuration (this function's contract).
        let cfg = unsafe { object(cfg) }?;
        // SAFETY: msg holds msg_cap writable bytes (this function's contract).
        let msg = unsafe { bytes_mut(msg.cast::<u8>(), msg_cap) }?;
        let text = match cfg.0.validate() {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        if let Some(room) = msg.len().checked_sub(1) {
            let n = text.len().min(room);
            msg[..n].copy_from_slice(&text.as_bytes()[..n]);
            msg[n] = 0;
        }
        if !msg_len.is_null() {
            // SAFETY: msg_len is writable (this function's contract).
            unsafe { put(msg_len, text.len()) }?;
        }
        if text.is_empty() { Ok(()) } else { Err(ESPGCM_ERR_ESP_INVALID) }
    })
}

/// The sending half of an SA. Made by `espgcm_outbound_new`, released by
/// `espgcm_outbound_free`; every other function may run on many threads at
/// once (sequence numbers are reserved atomically).
pub struct espgcm_outbound(pub(crate) Arc<Outbound>);

/// The receiving half of an SA. Made by `espgcm_inbound_new` or
/// `espgcm_sa_table_add_inbound`, released by `espgcm_inbound_free`; every
/// other function may run on many threads at once.
pub struct espgcm_inbound(pub(crate) Arc<Inbound>);

/// A copy of a caller's configuration.
///
/// # Safety
/// `cfg` must be a live configuration.
pub(crate) unsafe fn config_copy(cfg: *const espgcm_sa_config) -> Result<SaConfig, c_int> {
    // SAFETY: this function's contract.
    Ok(unsafe { object(cfg) }?.0.clone())
}

/// Make the sending half of an SA from a configuration (copied; the
/// configuration may be freed afterwards). `*out` is NULL on error:
/// `ESPGCM_ERR_ESP_INVALID` (see `espgcm_sa_config_validate`),
/// `ESPGCM_ERR_ESP_UNSUPPORTED` (backend), `ESPGCM_ERR_ESP_KEY_IN_USE`
/// (another live outbound SA in this process sends under this key and
/// salt: two would repeat IVs).
///
/// # Safety
/// `cfg` must be a live configuration; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_outbound_new(cfg: *const espgcm_sa_config, out: *mut *mut espgcm_outbound) -> c_int {
    guard(|| {
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, null_mut()) }?;
        // SAFETY: cfg is a live configuration (this function's contract).
        let sa = Outbound::new(unsafe { config_copy(cfg) }?).map_err(|e| esp_code(&e))?;
        let handle = Box::into_raw(Box::new(espgcm_outbound(Arc::new(sa))));
        // SAFETY: out is writable; espgcm_outbound_free takes the Box back.
        unsafe { put(out, handle) }
    })
}

/// Release an outbound SA handle. NULL is fine. (A policy of an SA table
/// that protects with this SA keeps it alive until the policy is removed.)
///
/// # Safety
/// `sa` must be NULL or a live handle no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_outbound_free(sa: *mut espgcm_outbound) {
    if sa.is_null() {
        return;
    }
    let _ = guard(|| {
        // SAFETY: sa came from Box::into_raw and is freed once (this
        // function's contract).
        drop(unsafe { Box::from_raw(sa) });
        Ok(())
    });
}

/// Make the receiving half of an SA from a configuration (copied). `*out` is
/// NULL on error (`ESPGCM_ERR_ESP_INVALID`, `ESPGCM_ERR_ESP_UNSUPPORTED`).
///
/// # Safety
/// `cfg` must be a live configuration; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_inbound_new(cfg: *const espgcm_sa_config, out: *mut *mut espgcm_inbound) -> c_int {
    guard(|| {
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, null_mut()) }?;
        // SAFETY: cfg is a live configuration (this function's contract).
        let sa = Inbound::new(unsafe { config_copy(cfg) }?).map_err(|e| esp_code(&e))?;
        let handle = Box::into_raw(Box::new(espgcm_inbound(Arc::new(sa))));
        // SAFETY: out is writable; espgcm_inbound_free takes the Box back.
        unsafe { put(out, handle) }
    })
}

/// Release an inbound SA handle. NULL is fine. (An SA table that holds the
/// SA keeps it until it is removed from the table.)
///
/// # Safety
/// `sa` must be NULL or a live handle no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_inbound_free(sa: *mut espgcm_inbound) {
    if sa.is_null() {
        return;
    }
    let _ = guard(|| {
        // SAFETY: sa came from Box::into_raw and is freed once (this
        // function's contract).
        drop(unsafe { Box::from_raw(sa) });
        Ok(())
    });
}

thread_local! {
    /// Where single-packet calls build their result before copying it out,
    /// reused so that a thread allocates once.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's scratch buffer, wiped afterwards (it may hold
/// plaintext), also if `f` panics.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|s| {
        let mut buf = Zeroizing::new(s.take());
        let r = f(&mut buf);
        // Zeroes the bytes and the spare capacity and empties it; the
        // allocation stays for the next packet.
        buf.zeroize();
        s.replace(core::mem::take(&mut *buf));
        r
    })
}

/// A single packet in, its result copied to the caller's buffer.
///
/// # Safety
/// `pkt` must point to `len` readable bytes, `out` to `out_cap` writable
/// ones, `out_len` be writable.
pub(crate) unsafe fn copy_out(
    pkt: *const u8,
    len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    run: impl FnOnce(&[u8], &mut Vec<u8>) -> Result<(), EspError>,
) -> Result<(), c_int> {
    if out_len.is_null() {
        return Err(ESPGCM_ERR_NULL_PARAMETER);
    }
    // SAFETY: out_len is writable (this function's contract).
    unsafe { put(out_len, 0) }?;
    // SAFETY: pkt and out are valid for their lengths (this function's
    // contract); an overlap is refused before anything is written.
    let (pkt, out) = unsafe { (bytes(pkt, len)?, bytes_mut(out, out_cap)?) };
    check_disjoint(&mut [Span::read(pkt), Span::written(out)])?;
    with_scratch(|scratch| {
        run(pkt, scratch).map_err(|e| esp_code(&e))?;
        // SAFETY: out_len is writable (this function's contract).
        unsafe { put(out_len, scratch.len()) }?;
        let place = out.get_mut(..scratch.len()).ok_or(ESPGCM_ERR_BUFFER_TOO_SMALL)?;
        place.copy_from_slice(scratch);
        Ok(())
    })
}

/// Seal one IPv4 or IPv6 packet (`len` bytes at `pkt`) and copy the IP
/// packet carrying ESP to `out`, its length to `*out_len`.
///
/// An `out_cap` of `len + ESPGCM_HEADROOM + ESPGCM_TAILROOM` always
/// suffices; with less, a packet that does not fit gives
/// `ESPGCM_ERR_BUFFER_TOO_SMALL` with the length needed in `*out_len` (its
/// sequence number is then skipped, never reused). The packet's checksums
/// are verified before anything is encrypted. To seal where the packet lies,
/// with no copy, use `espgcm_outbound_seal_burst`.
///
/// # Safety
/// `sa` must be a live handle; `pkt` must point to `len` readable bytes,
/// `out` to `out_cap` writable bytes not overlapping them; `out_len` must be
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_outbound_seal(
    sa: *const espgcm_outbound,
    pkt: *const u8,
    len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: sa is a live handle (this function's contract).
        let sa = unsafe { object(sa) }?;
        // SAFETY: the buffers are as copy_out needs (this function's contract).
        unsafe { copy_out(pkt, len, out, out_cap, out_len, |p, v| sa.0.seal(p, v)) }
    })
}

/// Open one IP packet carrying ESP (or ESP in UDP) and copy the inner
/// (tunnel) or restored (transport) packet to `out`, its length to
/// `*out_len`. An `out_cap` of `len` always suffices; a smaller one gives
/// `ESPGCM_ERR_BUFFER_TOO_SMALL` with nothing opened and `*out_len` set to
/// `len`. Rejections have their codes (`ESPGCM_ERR_AUTH`,
/// `ESPGCM_ERR_ESP_REPLAY`, ...); `ESPGCM_ERR_ESP_DUMMY`,
/// `ESPGCM_ERR_ESP_NAT_KEEPALIVE` and `ESPGCM_ERR_ESP_NON_ESP` are normal
/// traffic, not attacks.
///
/// # Safety
/// As for `espgcm_outbound_seal`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_inbound_open(
    sa: *const espgcm_inbound,
    pkt: *const u8,
    len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: sa is a live handle (this function's contract).
        let sa = unsafe { object(sa) }?;
        if out_cap < len {
            // The opened packet is never longer than the received one; refuse
            // now rather than after the replay window has taken the packet.
            // SAFETY: out_len is writable (this function's contract).
            unsafe { put(out_len, len) }?;
            return Err(ESPGCM_ERR_BUFFER_TOO_SMALL);
        }
        // SAFETY: the buffers are as copy_out needs (this function's contract).
        unsafe { copy_out(pkt, len, out, out_cap, out_len, |p, v| sa.0.open(p, v)) }
    })
}

/// One packet in the caller's own memory (a DPDK mbuf's data room, an
/// AF_XDP frame, a slot of a ring): the whole frame, and where in it the
/// packet lies. Burst calls seal and open the packet where it is, growing it
/// into the headroom and tailroom, and update `start` and `len`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct espgcm_packet {
    /// The frame: the packet with the free room around it.
    pub frame: *mut u8,
    /// Length of the frame in bytes.
    pub frame_len: usize,
    /// Offset of the packet in the frame; updated by the call.
    pub start: usize,
    /// Length of the packet; updated by the call.
    pub len: usize,
    /// This packet's result code, set by the call.
    pub result: c_int,
}

/// An `espgcm_packet` whose frame has been checked: not NULL, at most
/// `isize::MAX` bytes, the packet inside it, no other frame of the call
/// overlapping it. Only [`checked_frames`] makes these.
#[repr(transparent)]
pub(crate) struct Frame(espgcm_packet);

impl Frame {
    /// The packet's result code (after the check, the check's verdict).
    pub(crate) fn result(&self) -> c_int {
        self.0.result
    }
}

impl PacketBuffer for Frame {
    fn room(&mut self) -> (&mut [u8], &mut usize, &mut usize) {
        let p = &mut self.0;
        // SAFETY: the frame was checked (see Frame) and the caller lends it
        // to this call alone; the slice's borrow of self keeps it unique.
        let memory = unsafe { core::slice::from_raw_parts_mut(p.frame, p.frame_len) };
        (memory, &mut p.start, &mut p.len)
    }

    fn data(&self) -> &[u8] {
        let p = &self.0;
        // SAFETY: start + len <= frame_len holds for a checked frame, and
        // the library keeps it so when it moves the packet.
        unsafe { core::slice::from_raw_parts(p.frame.add(p.start), p.len) }
    }
}

impl PacketBuffer for &mut Frame {
    fn room(&mut self) -> (&mut [u8], &mut usize, &mut usize) {
        (**self).room()
    }

    fn data(&self) -> &[u8] {
        (**self).data()
    }
}

/// Something a burst result can be written to.
pub(crate) trait Outcome {
    fn set_result(&mut self, code: c_int);
}

impl Outcome for Frame {
    fn set_result(&mut self, code: c_int) {
        self.0.result = code;
    }
}

impl Outcome for &mut Frame {
    fn set_result(&mut self, code: c_int) {
        self.0.result = code;
    }
}

thread_local! {
    /// The frames' address ranges for the overlap check, reused.
    static SPANS: RefCell<Vec<Span>> = const { RefCell::new(Vec::new()) };
}

/// The caller's packets as frames the library can work in: each packet's
/// frame checked (a bad one gets its code in `result`), and all frames
/// checked for overlap. Returns the frames and whether every one is good.
///
/// # Safety
/// `pkts` must point to `n` initialised packets (or be NULL with `n` 0),
/// each frame valid for `frame_len` bytes, lent to this call alone.
pub(crate) unsafe fn checked_frames<'a>(pkts: *mut espgcm_packet, n: usize) -> Result<(&'a mut [Frame], bool), c_int> {
    // SAFETY: pkts points to n packets (this function's contract).
    let pkts = unsafe { array_mut(pkts, n) }?;
    let mut all_good = true;
    SPANS
        .with(|spans| {
            let mut spans = spans.borrow_mut();
            spans.clear();
            // The packet array itself is written (start, len, result).
            spans.push(Span::raw(pkts.as_ptr().cast(), size_of_val(pkts), true));
            for p in pkts.iter_mut() {
                p.result = if p.frame.is_null() {
                    ESPGCM_ERR_NULL_PARAMETER
                } else if p.frame_len > isize::MAX as usize
                    || p.start.checked_add(p.len).is_none_or(|end| end > p.frame_len)
                {
                    ESPGCM_ERR_INVALID_ARGUMENT
                } else {
                    spans.push(Span::raw(p.frame, p.frame_len, true));
                    ESPGCM_OK
                };
                all_good &= p.result == ESPGCM_OK;
            }
            check_disjoint(&mut spans)
        })
        .inspect_err(|&code| {
            // Nothing is done: every packet says so.
            for p in pkts.iter_mut() {
                p.result = code;
            }
        })?;
    // SAFETY: Frame is repr(transparent) over espgcm_packet, so the slice
    // has the same layout; the packets whose frames are not good are never
    // handed to the library (callers check `result` or `all_good`).
    let frames = unsafe { core::slice::from_raw_parts_mut(pkts.as_mut_ptr().cast::<Frame>(), pkts.len()) };
    Ok((frames, all_good))
}

/// Which half of an SA a burst runs on.
#[derive(Clone, Copy)]
pub(crate) enum Direction<'a> {
    Seal(&'a Outbound),
    Open(&'a Inbound),
}

/// How many results a burst call keeps at once (on the stack).
const CHUNK: usize = 32;

/// Seal or open `items` in place, writing each one's result code; the first
/// failure's code, if any.
pub(crate) fn run_burst<B: PacketBuffer + Outcome>(dir: Direction<'_>, items: &mut [B]) -> Result<(), c_int> {
    let mut first_error = None;
    let mut results: [Result<(), EspError>; CHUNK] = core::array::from_fn(|_| Ok(()));
    for chunk in items.chunks_mut(CHUNK) {
        let results = &mut results[..chunk.len()];
        match dir {
            Direction::Seal(sa) => sa.seal_burst_in(chunk, results),
            Direction::Open(sa) => sa.open_burst_in(chunk, results),
        }
        for (item, r) in chunk.iter_mut().zip(results.iter()) {
            let code = r.as_ref().map_or_else(esp_code, |()| ESPGCM_OK);
            item.set_result(code);
            if code != ESPGCM_OK {
                first_error.get_or_insert(code);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A burst on the caller's packets: the good ones run, the others keep the
/// code their check gave them.
///
/// # Safety
/// As for [`checked_frames`].
unsafe fn burst(dir: Direction<'_>, pkts: *mut espgcm_packet, n: usize) -> Result<(), c_int> {
    // SAFETY: this function's contract.
    let (frames, all_good) = unsafe { checked_frames(pkts, n) }?;
    if all_good {
        return run_burst(dir, frames);
    }
    let mut good: Vec<&mut Frame> = frames.iter_mut().filter(|f| f.result() == ESPGCM_OK).collect();
    let _ = run_burst(dir, &mut good);
    first_failure(frames)
}

/// The code of the first packet (in the caller's order) that failed.
pub(crate) fn first_failure(frames: &[Frame]) -> Result<(), c_int> {
    frames.iter().map(Frame::result).find(|&c| c != ESPGCM_OK).map_or(Ok(()), Err)
}

/// Seal `n` packets where they lie, each in its own frame: the packet grows
/// into its frame's headroom and tailroom (`ESPGCM_HEADROOM` and
/// `ESPGCM_TAILROOM` free bytes always suffice; with less, the packet moves
/// within the frame, or fails with `ESPGCM_ERR_ESP_TOO_LARGE` if the frame
/// cannot hold it). `start` and `len` are updated, each packet's `result`
/// set; a packet refused is left as it was. Each packet is judged alone and
/// the burst's sequence numbers are assigned in order.
///
/// Returns `ESPGCM_OK` if every packet was sealed, else the first failing
/// packet's code. `ESPGCM_ERR_OVERLAP` if two frames overlap or a frame
/// overlaps the packet array: nothing is done and every packet's `result`
/// says so. A packet with a NULL frame or lying
/// outside its frame gets `ESPGCM_ERR_NULL_PARAMETER` /
/// `ESPGCM_ERR_INVALID_ARGUMENT` and the others are still sealed.
///
/// # Safety
/// `sa` must be a live handle; `pkts` must point to `n` initialised packets
/// (or be NULL with `n` 0), each frame valid for `frame_len` bytes and not
/// used elsewhere during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_outbound_seal_burst(
    sa: *const espgcm_outbound,
    pkts: *mut espgcm_packet,
    n: usize,
) -> c_int {
    guard(|| {
        // SAFETY: sa is a live handle (this function's contract).
        let sa = unsafe { object(sa) }?;
        // SAFETY: the packets are as burst needs (this function's contract).
        unsafe { burst(Direction::Seal(&sa.0), pkts, n) }
    })
}

/// Open `n` packets where they lie, each in its own frame; `start` and `len`
/// are updated to the opened packet, each packet's `result` set. A packet
/// refused before decryption is left as it arrived; one refused at its ICV
/// or after was decrypted in place, so its ESP payload is zeroed (nothing
/// decrypted is left in it) and its headers are left as they arrived. Each
/// packet is judged alone; of two copies of one packet, the second is
/// refused as a replay.
///
/// Returns as `espgcm_outbound_seal_burst`.
///
/// # Safety
/// As for `espgcm_outbound_seal_burst`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_inbound_open_burst(
    sa: *const espgcm_inbound,
    pkts: *mut espgcm_packet,
    n: usize,
) -> c_int {
    guard(|| {
        // SAFETY: sa is a live handle (this function's contract).
        let sa = unsafe { object(sa) }?;
        // SAFETY: the packets are as burst needs (this function's contract).
        unsafe { burst(Direction::Open(&sa.0), pkts, n) }
    })
}

/// Per-SA counters: one for every outcome (they only grow).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct espgcm_esp_counters {
    /// Packets sealed or opened successfully.
    pub packets: u64,
    /// Bytes of IP packets sealed (outbound) or delivered (inbound).
    pub bytes: u64,
    /// `ESPGCM_ERR_ESP_TRUNCATED`.
    pub truncated: u64,
    /// `ESPGCM_ERR_ESP_MALFORMED`.
    pub malformed: u64,
    /// `ESPGCM_ERR_ESP_FRAGMENT`.
    pub fragments: u64,
    /// `ESPGCM_ERR_ESP_UNKNOWN_SPI` and `ESPGCM_ERR_ESP_NO_SA`.
    pub unknown_spi: u64,
    /// `ESPGCM_ERR_ESP_REPLAY`.
    pub replayed: u64,
    /// `ESPGCM_ERR_ESP_TOO_OLD`.
    pub too_old: u64,
    /// `ESPGCM_ERR_AUTH` (ICV failures).
    pub auth_failed: u64,
    /// `ESPGCM_ERR_ESP_BAD_PADDING`.
    pub bad_padding: u64,
    /// `ESPGCM_ERR_ESP_CHECKSUM_BEFORE_ENCRYPT`.
    pub checksum_before_encrypt: u64,
    /// `ESPGCM_ERR_ESP_CHECKSUM_AFTER_DECRYPT`.
    pub checksum_after_decrypt: u64,
    /// `ESPGCM_ERR_ESP_UNEXPECTED_NEXT_HEADER`.
    pub unexpected_next_header: u64,
    /// `ESPGCM_ERR_ESP_SEQUENCE_EXHAUSTED`.
    pub sequence_exhausted: u64,
    /// Dummy packets sent or received.
    pub dummies: u64,
    /// NAT-T keepalives received.
    pub keepalives: u64,
    /// Non-ESP (IKE) packets received on the NAT-T port.
    pub non_esp: u64,
    /// `ESPGCM_ERR_ESP_UNSUPPORTED`.
    pub unsupported: u64,
    /// `ESPGCM_ERR_ESP_TOO_LARGE`.
    pub too_large: u64,
    /// `ESPGCM_ERR_ESP_PACKET_TOO_BIG`.
    pub too_big_for_path: u64,
    /// `ESPGCM_ERR_ESP_NOT_COVERED`.
    pub not_covered: u64,
    /// Tunnel-mode inner fragments whose checksum cannot be verified (also
    /// counted in `packets`).
    pub unverifiable_fragments: u64,
    /// Other failures.
    pub other: u64,
    /// Rejections that may point at an attack or a fault (everything but
    /// successes, dummies, keepalives and IKE packets).
    pub rejected: u64,
}

impl From<Counters> for espgcm_esp_counters {
    fn from(c: Counters) -> espgcm_esp_counters {
        espgcm_esp_counters {
            packets: c.packets,
            bytes: c.bytes,
            truncated: c.truncated,
            malformed: c.malformed,
            fragments: c.fragments,
            unknown_spi: c.unknown_spi,
            replayed: c.replayed,
            too_old: c.too_old,
            auth_failed: c.auth_failed,
            bad_padding: c.bad_padding,
            checksum_before_encrypt: c.checksum_before_encrypt,
            checksum_after_decrypt: c.checksum_after_decrypt,
            unexpected_next_header: c.unexpected_next_header,
            sequence_exhausted: c.sequence_exhausted,
            dummies: c.dummies,
            keepalives: c.keepalives,
            non_esp: c.non_esp,
            unsupported: c.unsupported,
            too_large: c.too_large,
            too_big_for_path: c.too_big_for_path,
            not_covered: c.not_covered,
            unverifiable_fragments: c.unverifiable_fragments,
            other: c.other,
            rejected: c.rejected(),
        }
    }
}

/// The outbound SA's counters.
///
/// # Safety
/// `sa` must be a live handle; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_outbound_stats(sa: *const espgcm_outbound, out: *mut espgcm_esp_counters) -> c_int {
    guard(|| {
        // SAFETY: sa is a live handle, out writable (this function's contract).
        unsafe { put(out, object(sa)?.0.stats().into()) }
    })
}

/// The inbound SA's counters.
///
/// # Safety
/// `sa` must be a live handle; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_inbound_stats(sa: *const espgcm_inbound, out: *mut espgcm_esp_counters) -> c_int {
    guard(|| {
        // SAFETY: sa is a live handle, out writable (this function's contract).
        unsafe { put(out, object(sa)?.0.stats().into()) }
    })
}

/// The sequence number the next sealed packet will carry;
/// `ESPGCM_ERR_ESP_SEQUENCE_EXHAUSTED` when none is left (re-key). Save it
/// to resume after a restart with `espgcm_outbound_skip_to_sequence`.
///
/// # Safety
/// `sa` must be a live handle; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_outbound_next_sequence(sa: *const espgcm_outbound, out: *mut u64) -> c_int {
    guard(|| {
        // SAFETY: sa is a live handle (this function's contract).
        let sa = unsafe { object(sa) }?;
        let next = sa.0.next_sequence();
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, next.unwrap_or(0)) }?;
        next.map(|_| ()).ok_or(ESPGCM_ERR_ESP_SEQUENCE_EXHAUSTED)
    })
}

/// Continue from sequence number `next` (restoring an SA after a restart or
/// fail-over from a saved counter). Moving forward never repeats an IV;
/// moving back would, so it is refused (`ESPGCM_ERR_ESP_INVALID`).
///
/// # Safety
/// `sa` must be a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_outbound_skip_to_sequence(sa: *const espgcm_outbound, next: u64) -> c_int {
    guard(|| {
        // SAFETY: sa is a live handle (this function's contract).
        unsafe { object(sa) }?.0.skip_to_sequence(next).map_err(|e| esp_code(&e))
    })
}

/// Treat every sequence number up to `seq` as received (restoring the
/// replay window after a restart). Never moves back.
///
/// # Safety
/// `sa` must be a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_inbound_advance_to(sa: *const espgcm_inbound, seq: u64) -> c_int {
    guard(|| {
        // SAFETY: sa is a live handle (this function's contract).
        unsafe { object(sa) }?.0.advance_to(seq);
        Ok(())
    })
}

/// Selectors the caller passed as an array.
///
/// # Safety
/// `list` must point to `n` valid selectors (or be NULL with `n` 0).
pub(crate) unsafe fn selectors(list: *const espgcm_selector, n: usize) -> Result<Vec<Selector>, c_int> {
    // SAFETY: this function's contract.
    unsafe { array(list, n) }?.iter().map(selector_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_constants_are_the_library_s() {
        assert_eq!(ESPGCM_HEADROOM, espgcm::esp::HEADROOM);
        assert_eq!(ESPGCM_TAILROOM, espgcm::esp::TAILROOM);
    }

    #[test]
    fn addresses_convert() {
        let mut v4 = espgcm_ip { family: 4, addr: [0; 16] };
        v4.addr[..4].copy_from_slice(&[192, 0, 2, 1]);
        assert_eq!(ip_from(&v4), Ok("192.0.2.1".parse().unwrap()));
        let v6 = espgcm_ip { family: 6, addr: "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets() };
        assert_eq!(ip_from(&v6), Ok("2001:db8::1".parse().unwrap()));
        assert_eq!(ip_from(&espgcm_ip { family: 5, addr: [0; 16] }), Err(ESPGCM_ERR_INVALID_ARGUMENT));
    }
}
