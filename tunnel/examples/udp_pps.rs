//! Small UDP datagrams as fast as one core can send them, and a receiver
//! that counts them: the packet-rate load for `bench/compare.sh`, where
//! iperf3's 64-byte UDP test measures iperf3 itself (its receiver falls
//! behind even on the bare veth).
//!
//! ```text
//! udp_pps recv --bind 198.51.100.2:9000 --secs 5
//! udp_pps send --to 198.51.100.2:9000 --len 64 --secs 6 [--batch 64]
//! ```
//!
//! The sender hands the kernel `--batch` datagrams of `--len` bytes at a
//! time as one UDP GSO send (`UDP_SEGMENT`), as QUIC stacks do; each
//! datagram is still its own UDP packet on every path (the kernel, a TUN
//! device without offloads, or a tunnel splits them), so what is counted
//! is packets. `--batch 1` sends one datagram per system call. The
//! receiver takes them with GRO (`UDP_GRO`: a run of datagrams of one
//! flow in one receive, its segment size in a control message), counts
//! datagrams from the first one for `--secs` seconds and prints one JSON
//! line: `{"datagrams": N, "seconds": S, "pps": N/S}`. Both stop by
//! themselves: the sender after `--secs`, the receiver `--secs` after its
//! first datagram (or after 10 s without one, with zero).
//!
//! Benchmark load only: it sends to the address it is given, which the
//! script sets to one inside its own network namespaces.

use clap::{Parser, Subcommand};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "UDP packet-rate load: a GSO sender and a GRO receiver")]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Send datagrams to one address for a number of seconds.
    Send {
        #[arg(long)]
        to: SocketAddr,
        /// UDP payload bytes per datagram.
        #[arg(long, default_value_t = 64)]
        len: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Datagrams per system call (UDP GSO when more than one).
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Count the datagrams that arrive, from the first for `--secs`.
    Recv {
        #[arg(long)]
        bind: SocketAddr,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
}

fn main() -> std::io::Result<()> {
    let role = Args::parse().role;
    let (Role::Send { secs, .. } | Role::Recv { secs, .. }) = role;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(std::io::Error::other(format!("--secs {secs}: a positive number of seconds")));
    }
    match role {
        Role::Send { to, len, secs, batch } => send(to, len, secs, batch),
        Role::Recv { bind, secs } => recv(bind, secs),
    }
}

fn send(to: SocketAddr, len: usize, secs: f64, batch: usize) -> std::io::Result<()> {
    if !(1..=1400).contains(&len) {
        return Err(std::io::Error::other(format!("--len {len}: a datagram of 1 to 1400 bytes")));
    }
    let any: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(std::io::Error::other)?;
    let sock = UdpSocket::bind(any)?;
    let state = UdpSocketState::new((&sock).into())?;
    let batch = batch.clamp(1, state.max_gso_segments().max(1)).min(65_000 / len).max(1);
    let payload = vec![0x5au8; len * batch];
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let (mut sent, mut failed) = (0u64, 0u64);
    while Instant::now() < end {
        for _ in 0..64 {
            let t = Transmit {
                destination: to,
                ecn: None,
                contents: &payload,
                segment_size: (batch > 1).then_some(len),
                src_ip: None,
            };
            match state.try_send((&sock).into(), &t) {
                Ok(()) => sent += batch as u64,
                // A full queue or an unreachable port (before the receiver
                // is up): count and go on.
                Err(_) => failed += 1,
            }
        }
    }
    eprintln!("udp_pps send: {sent} datagrams of {len} bytes in batches of {batch}, {failed} sends refused");
    Ok(())
}

fn recv(bind: SocketAddr, secs: f64) -> std::io::Result<()> {
    let sock = UdpSocket::bind(bind)?;
    let state = UdpSocketState::new((&sock).into())?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    const BUFS: usize = 32;
    let mut storage = vec![[0u8; 65_536]; BUFS];
    let mut meta = [RecvMeta::default(); BUFS];
    let mut bufs: Vec<IoSliceMut<'_>> = storage.iter_mut().map(|b| IoSliceMut::new(&mut b[..])).collect();
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut datagrams = 0u64;
    loop {
        let now = Instant::now();
        match first {
            Some(t) if now.duration_since(t).as_secs_f64() >= secs => break,
            None if now.duration_since(started) > Duration::from_secs(10) => break,
            _ => {}
        }
        match state.recv((&sock).into(), &mut bufs, &mut meta) {
            Ok(n) => {
                // The clock starts when the first datagrams are in, not
                // when the receive that waited for them began.
                first.get_or_insert_with(Instant::now);
                for m in meta.iter().take(n) {
                    datagrams += m.len.div_ceil(m.stride.max(1)) as u64;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    // From the first datagram to the end of the last receive (which may
    // end a little past `secs`: what it brought is counted, so is its time).
    let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let pps = if seconds > 0.0 { datagrams as f64 / seconds } else { 0.0 };
    println!("{{\"datagrams\": {datagrams}, \"seconds\": {seconds:.3}, \"pps\": {pps:.0}}}");
    Ok(())
}
