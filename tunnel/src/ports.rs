//! The outer sockets: UDP for ESP in UDP (RFC 3948), raw IP protocol 50 for
//! plain ESP.
//!
//! UDP: every worker has its own socket on the NAT-T port, all in one
//! `SO_REUSEPORT` group, so the kernel spreads peers' flows over the
//! workers by their addresses and ports (one flow always reaches the same
//! worker, so its packets stay in order). `quinn-udp` does the batched I/O:
//! `recvmmsg` with UDP GRO and the destination address of each datagram on
//! the way in, UDP GSO (one `sendmsg` for a run of equal-sized datagrams) on
//! the way out.
//!
//! Raw ESP: the kernel gives every raw socket for protocol 50 a copy of
//! every ESP packet, so only one worker receives on it; the others' raw
//! sockets only send, and a filter that accepts nothing keeps copies from
//! piling up in them. Use ESP in UDP to spread one host's ESP over cores.

use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use std::io::{self, IoSliceMut, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// IP protocol number of ESP.
const ESP: i32 = 50;

/// Options every outer socket gets.
#[derive(Clone, Debug, Default)]
pub struct SocketOptions {
    /// `SO_BINDTODEVICE`: send and receive only through this device.
    pub device: Option<String>,
    /// `SO_MARK` for policy routing.
    pub mark: Option<u32>,
    /// Receive and send buffer size (forced past the sysctl limits, which
    /// root may do).
    pub buffer: usize,
}

fn apply(sock: &Socket, o: &SocketOptions) -> io::Result<()> {
    if let Some(dev) = &o.device {
        sock.bind_device(Some(dev.as_bytes()))
            .map_err(|e| io::Error::new(e.kind(), format!("binding to underlay device {dev}: {e}")))?;
    }
    if let Some(mark) = o.mark {
        sock.set_mark(mark)?;
    }
    // The forced variants need CAP_NET_ADMIN (which the tunnel has); fall
    // back to the ordinary ones, capped by net.core.[rw]mem_max.
    if nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::RcvBufForce, &o.buffer).is_err() {
        sock.set_recv_buffer_size(o.buffer)?;
    }
    if nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::SndBufForce, &o.buffer).is_err() {
        sock.set_send_buffer_size(o.buffer)?;
    }
    sock.set_nonblocking(true)
}

/// One worker's UDP socket on the NAT-T port.
#[derive(Debug)]
pub struct UdpPort {
    sock: UdpSocket,
    state: quinn_udp::UdpSocketState,
    v4: bool,
}

impl UdpPort {
    /// Open and bind a socket of one family on `port`, in the port's
    /// `SO_REUSEPORT` group.
    ///
    /// # Errors
    /// The system call's error, with what was being done.
    pub fn open(v4: bool, port: u16, o: &SocketOptions) -> io::Result<UdpPort> {
        let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
        let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if !v4 {
            sock.set_only_v6(true)?;
        }
        sock.set_reuse_port(true)?;
        apply(&sock, o)?;
        let any: IpAddr = if v4 { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
        sock.bind(&SockAddr::from(SocketAddr::new(any, port)))
            .map_err(|e| io::Error::new(e.kind(), format!("binding UDP port {port}: {e}")))?;
        let sock: UdpSocket = sock.into();
        let state = quinn_udp::UdpSocketState::new((&sock).into())?;
        Ok(UdpPort { sock, state, v4 })
    }

    /// Whether this is the IPv4 socket.
    pub fn is_v4(&self) -> bool {
        self.v4
    }

    /// Receive a batch of datagrams (see `quinn_udp::UdpSocketState::recv`).
    ///
    /// # Errors
    /// `WouldBlock` when nothing is waiting; other errors of `recvmmsg`.
    pub fn recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [quinn_udp::RecvMeta]) -> io::Result<usize> {
        self.state.recv((&self.sock).into(), bufs, meta)
    }

    /// Send one datagram, or a run of equal-sized ones with GSO.
    ///
    /// # Errors
    /// `WouldBlock` when the socket buffer is full; other errors of `sendmsg`.
    pub fn send(&self, transmit: &quinn_udp::Transmit<'_>) -> io::Result<()> {
        self.state.try_send((&self.sock).into(), transmit)
    }

    /// How many datagrams one GSO send may carry (1 without GSO).
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// How many datagrams one received buffer may hold (GRO).
    pub fn gro_segments(&self) -> usize {
        self.state.gro_segments()
    }

    /// The local port (to check the SAs' source ports against).
    pub fn local_port(&self) -> u16 {
        self.sock.local_addr().map_or(0, |a| a.port())
    }
}

/// Whether UDP `port` is free for this process's `SO_REUSEPORT` group: a
/// socket bound without `SO_REUSEPORT` fails if anyone (another tunnel, an
/// IKE daemon) holds the port. Checked before the workers' sockets bind,
/// since sockets of one user with `SO_REUSEPORT` would silently share the
/// port's traffic with another process.
///
/// # Errors
/// `AddrInUse` with a message naming the port.
pub fn check_udp_port_free(v4: bool, port: u16) -> io::Result<()> {
    let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if !v4 {
        sock.set_only_v6(true)?;
    }
    let any: IpAddr = if v4 { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    sock.bind(&SockAddr::from(SocketAddr::new(any, port))).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(
                e.kind(),
                format!(
                    "UDP port {port} ({}) is in use by another program (another espgcm-tunnel, an IKE daemon?); \
                     stop it or choose another [tunnel] nat_t_port",
                    if v4 { "IPv4" } else { "IPv6" }
                ),
            )
        } else {
            e
        }
    })
}

impl AsFd for UdpPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// A raw socket for IP protocol 50 (ESP) of one family.
#[derive(Debug)]
pub struct RawEsp {
    sock: Socket,
    v4: bool,
}

impl RawEsp {
    /// Open a raw ESP socket. A socket that does not `receive` gets a filter
    /// that accepts nothing (it only sends).
    ///
    /// # Errors
    /// The system call's error (`EPERM` without CAP_NET_RAW).
    pub fn open(v4: bool, receive: bool, o: &SocketOptions) -> io::Result<RawEsp> {
        let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
        let sock = Socket::new(domain, Type::RAW, Some(Protocol::from(ESP)))?;
        apply(&sock, o)?;
        if receive {
            if !v4 {
                nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Ipv6RecvPacketInfo, &true)?;
            }
        } else {
            // BPF_RET | BPF_K with 0: keep no bytes of any packet.
            sock.attach_filter(&[SockFilter::new(0x06, 0, 0, 0)])?;
        }
        Ok(RawEsp { sock, v4 })
    }

    /// Whether this is the IPv4 socket.
    pub fn is_v4(&self) -> bool {
        self.v4
    }

    /// Send bare ESP to `dst`; the kernel writes the IP header.
    ///
    /// # Errors
    /// The error of `sendto`.
    pub fn send(&self, esp: &[u8], dst: IpAddr) -> io::Result<usize> {
        self.sock.send_to(esp, &SockAddr::from(SocketAddr::new(dst, 0)))
    }

    /// Receive one packet into `buf`: for IPv4 the whole IP packet (the
    /// kernel hands raw IPv4 sockets the header too) and `None`; for IPv6
    /// the ESP bytes and `Some((source, destination))`, for the caller to
    /// put an IPv6 header back in front.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is waiting; other errors of `recvmsg`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<(IpAddr, IpAddr)>)> {
        if self.v4 {
            return (&self.sock).read(buf).map(|n| (n, None));
        }
        let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = nix::sys::socket::recvmsg::<nix::sys::socket::SockaddrIn6>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )?;
        let src = msg.address.map(|a| IpAddr::V6(a.ip()));
        let mut dst = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let nix::sys::socket::ControlMessageOwned::Ipv6PacketInfo(info) = c {
                    dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
            }
        }
        match (src, dst) {
            (Some(s), Some(d)) => Ok((msg.bytes, Some((s, d)))),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "raw IPv6 packet without its addresses")),
        }
    }
}

impl AsFd for RawEsp {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
