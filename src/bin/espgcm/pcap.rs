//! Captures for `espgcm seal` and `espgcm open`: pcap and pcapng in and out
//! (with the pcap-file crate), and where the IP packet sits in each frame.
//!
//! Link types read: Ethernet (with any number of 802.1Q/802.1ad VLAN tags),
//! raw IP, and Linux cooked captures (SLL and SLL2, what `tcpdump -i any`
//! writes). The output has the input's format, link types, timestamps,
//! timestamp resolution, byte order and every other pcapng block; only the
//! IP part of each frame changes (and the EtherType / protocol field when
//! the IP version changes, as tunnel mode can do).

use pcap_file::DataLink;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// The smallest snapshot length written: sealing makes packets longer, and
/// a reader may cut a packet to the snapshot length. An input with a larger
/// one (or pcapng's 0, no limit) keeps its own, so that a capture sealed and
/// opened again comes back identical.
const OUTPUT_SNAPLEN: u32 = 65_535;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

/// pcap or pcapng.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The classic libpcap format.
    Pcap,
    /// pcapng.
    PcapNg,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        }
    }
}

/// A link-layer name for messages.
pub fn link_name(link: DataLink) -> String {
    match link {
        DataLink::ETHERNET => "Ethernet".to_string(),
        DataLink::RAW => "raw IP".to_string(),
        DataLink::LINUX_SLL => "Linux cooked (SLL)".to_string(),
        DataLink::LINUX_SLL2 => "Linux cooked v2 (SLL2)".to_string(),
        other => format!("link type {}", u32::from(other)),
    }
}

/// Whether espgcm can find the IP packet in this link type's frames.
pub fn link_supported(link: DataLink) -> bool {
    matches!(link, DataLink::ETHERNET | DataLink::RAW | DataLink::LINUX_SLL | DataLink::LINUX_SLL2)
}

fn unsupported_link(link: DataLink) -> String {
    format!(
        "the capture's {} is not supported: espgcm reads Ethernet (1), raw IP (101) and Linux cooked \
         (SLL 113, SLL2 276) captures; convert it first, e.g. `editcap -T rawip in.pcap out.pcap`",
        link_name(link)
    )
}

/// Where the IP packet sits in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The IP packet runs from `start` for `len` bytes (link-layer padding
    /// after it excluded); `protocol_at` is where the link layer names the
    /// IP version (a 16-bit EtherType), if it does.
    Ip { start: usize, len: usize, protocol_at: Option<usize> },
    /// Not IPv4 or IPv6 (ARP, LLDP, a frame too short for its link header).
    NotIp,
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Find the IP packet in `frame` of link type `link`.
pub fn locate(link: DataLink, frame: &[u8]) -> Frame {
    let (start, protocol_at) = match link {
        DataLink::RAW => (0, None),
        DataLink::LINUX_SLL => (16, Some(14)),
        DataLink::LINUX_SLL2 => (20, Some(0)),
        DataLink::ETHERNET => {
            let mut at = 12;
            loop {
                match be16(frame, at) {
                    Some(ETHERTYPE_VLAN | ETHERTYPE_QINQ) => at += 4,
                    Some(_) => break,
                    None => return Frame::NotIp,
                }
            }
            (at + 2, Some(at))
        }
        _ => return Frame::NotIp,
    };
    if let Some(p) = protocol_at
        && !matches!(be16(frame, p), Some(ETHERTYPE_IPV4 | ETHERTYPE_IPV6))
    {
        return Frame::NotIp;
    }
    let Some(ip) = frame.get(start..) else { return Frame::NotIp };
    let version = ip.first().map(|b| b >> 4);
    // The length the IP header states, when it is there and fits: what
    // follows it is link-layer padding (Ethernet pads to 60 bytes).
    let stated = match version {
        Some(4) => be16(ip, 2).map(usize::from),
        Some(6) => be16(ip, 4).filter(|&p| p != 0).map(|p| 40 + usize::from(p)),
        _ => return Frame::NotIp,
    };
    let len = match stated {
        Some(n) if n <= ip.len() && n > 0 => n,
        _ => ip.len(),
    };
    Frame::Ip { start, len, protocol_at }
}

/// The frame to write: `frame`'s link-layer header (with its protocol field
/// set to `packet`'s IP version) followed by `packet`.
pub fn rebuild(frame: &[u8], start: usize, protocol_at: Option<usize>, packet: &[u8]) -> Vec<u8> {
    let header = frame.get(..start).unwrap_or(&[]);
    let mut out = Vec::with_capacity(header.len() + packet.len());
    out.extend_from_slice(header);
    if let Some(p) = protocol_at {
        let ethertype = if packet.first().map(|b| b >> 4) == Some(6) { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
        if let Some(field) = out.get_mut(p..p + 2) {
            field.copy_from_slice(&ethertype.to_be_bytes());
        }
    }
    out.extend_from_slice(packet);
    out
}

/// What a capture held.
#[derive(Debug, Default)]
pub struct CaptureInfo {
    /// Format of the input (and output).
    pub format: Option<Format>,
    /// Link types seen, in order.
    pub links: Vec<DataLink>,
    /// Packets read.
    pub packets: u64,
    /// Packets written.
    pub written: u64,
    /// pcapng obsolete Packet Blocks (type 2), not processed and not written.
    pub obsolete_blocks: u64,
}

fn format_of(path: &Path, reader: &mut BufReader<File>) -> Result<Format, String> {
    let head = reader.fill_buf().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match head.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => Ok(Format::PcapNg),
        Some(
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] | [0x4d, 0x3c, 0xb2, 0xa1],
        ) => Ok(Format::Pcap),
        Some(_) => Err(format!(
            "{} is neither a pcap nor a pcapng capture (its first bytes are not a capture file's magic number)",
            path.display()
        )),
        None => Err(format!("{} is empty or too short to be a capture", path.display())),
    }
}

/// What [`transform`] does to one frame: given its link type, its packet
/// number (from 1) and its bytes, the frame to write, or `None` to drop it.
pub type FrameFn<'a> = dyn FnMut(DataLink, u64, &[u8]) -> Option<Vec<u8>> + 'a;

/// Read `input`, hand every frame to `f` with its link type and packet
/// number (from 1), and write what `f` returns to `output` (`None` drops
/// the frame) in the input's format.
///
/// The output is written to a temporary file beside `output` and renamed
/// into place only when everything succeeded, so a failure leaves any earlier
/// `output` as it was; an `output` that is the input file itself (by device
/// and inode, whatever the path says) is refused before anything is read.
pub fn transform(input: &Path, output: &Path, f: &mut FrameFn<'_>) -> Result<CaptureInfo, String> {
    refuse_same_file(input, "--in", output, "--out")?;
    let file = File::open(input)
        .map_err(|e| format!("cannot open the input capture {}: {e}; check the path given to --in", input.display()))?;
    let mut reader = BufReader::new(file);
    let format = format_of(input, &mut reader)?;
    let folder = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".espgcm-").suffix(".part");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let temporary = builder.tempfile_in(folder).map_err(|e| {
        format!(
            "cannot create a temporary file in {} for the output capture {}: {e}; check the path given to --out",
            folder.display(),
            output.display()
        )
    })?;
    let info = write_transformed(input, reader, format, output, temporary.as_file(), f)?;
    temporary
        .persist(output)
        .map_err(|e| format!("cannot move the finished output into place as {}: {}", output.display(), e.error))?;
    Ok(info)
}

/// Refuse `second` when it names the same file as `first` (a hard link or
/// another path to it included). A `second` that does not exist yet is
/// never the same file.
pub fn refuse_same_file(first: &Path, first_flag: &str, second: &Path, second_flag: &str) -> Result<(), String> {
    if same_file::is_same_file(first, second).unwrap_or(false) {
        return Err(format!(
            "{second_flag} {} is the same file as {first_flag} {}: writing it would destroy what is being read; \
             give another path",
            second.display(),
            first.display()
        ));
    }
    Ok(())
}

/// [`transform`]'s work: read the capture in `reader` (of `format`) and
/// write the result to `out` (`output` names it in messages).
fn write_transformed(
    input: &Path,
    reader: BufReader<File>,
    format: Format,
    output: &Path,
    out: &File,
    f: &mut FrameFn<'_>,
) -> Result<CaptureInfo, String> {
    let out = BufWriter::new(out);
    let bad_in = |e: pcap_file::PcapError| format!("{} is damaged or cut short: {e}", input.display());
    let bad_out = |e: pcap_file::PcapError| format!("cannot write {}: {e}", output.display());
    let mut info = CaptureInfo { format: Some(format), ..CaptureInfo::default() };
    match format {
        Format::Pcap => {
            let mut r = PcapReader::new(reader).map_err(bad_in)?;
            let mut header = r.header();
            let link = header.datalink;
            if !link_supported(link) {
                return Err(unsupported_link(link));
            }
            info.links.push(link);
            header.snaplen = header.snaplen.max(OUTPUT_SNAPLEN);
            let mut w = PcapWriter::with_header(out, header).map_err(bad_out)?;
            while let Some(packet) = r.next_packet() {
                let packet = packet.map_err(bad_in)?;
                info.packets += 1;
                if let Some(data) = f(link, info.packets, &packet.data) {
                    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    w.write_packet(&PcapPacket::new(packet.timestamp, len, &data)).map_err(bad_out)?;
                    info.written += 1;
                }
            }
            w.into_writer().flush().map_err(|e| format!("cannot write {}: {e}", output.display()))?;
        }
        Format::PcapNg => {
            let mut r = PcapNgReader::new(reader).map_err(bad_in)?;
            let mut w = PcapNgWriter::with_section_header(out, r.section().clone()).map_err(bad_out)?;
            let mut interfaces: Vec<DataLink> = Vec::new();
            while let Some(block) = r.next_block() {
                let block = block.map_err(bad_in)?;
                match block {
                    Block::SectionHeader(shb) => {
                        interfaces.clear();
                        w.write_block(&Block::SectionHeader(shb)).map_err(bad_out)?;
                    }
                    Block::InterfaceDescription(idb) => {
                        if !link_supported(idb.linktype) {
                            return Err(unsupported_link(idb.linktype));
                        }
                        interfaces.push(idb.linktype);
                        if !info.links.contains(&idb.linktype) {
                            info.links.push(idb.linktype);
                        }
                        let snaplen = if idb.snaplen == 0 { 0 } else { idb.snaplen.max(OUTPUT_SNAPLEN) };
                        let idb = InterfaceDescriptionBlock { snaplen, ..idb };
                        w.write_block(&Block::InterfaceDescription(idb)).map_err(bad_out)?;
                    }
                    Block::EnhancedPacket(epb) => {
                        info.packets += 1;
                        let Some(&link) = interfaces.get(epb.interface_id as usize) else {
                            return Err(format!(
                                "{}: packet {} names interface {} which the capture never described",
                                input.display(),
                                info.packets,
                                epb.interface_id
                            ));
                        };
                        if let Some(data) = f(link, info.packets, &epb.data) {
                            let options: Vec<EnhancedPacketOption> = epb
                                .options
                                .into_iter()
                                .filter(|o| !matches!(o, EnhancedPacketOption::Hash(_)))
                                .collect();
                            let out = EnhancedPacketBlock {
                                interface_id: epb.interface_id,
                                timestamp: epb.timestamp,
                                original_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
                                data: data.into(),
                                options,
                            };
                            w.write_block(&Block::EnhancedPacket(out)).map_err(bad_out)?;
                            info.written += 1;
                        }
                    }
                    Block::SimplePacket(spb) => {
                        info.packets += 1;
                        let Some(&link) = interfaces.first() else {
                            return Err(format!(
                                "{}: a simple packet block comes before any interface description",
                                input.display()
                            ));
                        };
                        if let Some(data) = f(link, info.packets, &spb.data) {
                            let original_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                            let out = pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock {
                                original_len,
                                data: data.into(),
                            };
                            w.write_block(&Block::SimplePacket(out)).map_err(bad_out)?;
                            info.written += 1;
                        }
                    }
                    Block::Packet(_) => {
                        // The obsolete Packet Block: never written by
                        // current tools. Not passed through: it would carry
                        // unprocessed packets into the output.
                        info.packets += 1;
                        info.obsolete_blocks += 1;
                    }
                    other => {
                        w.write_block(&other).map_err(bad_out)?;
                    }
                }
            }
            w.into_inner().flush().map_err(|e| format!("cannot write {}: {e}", output.display()))?;
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(total: u16) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(total)];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p
    }

    #[test]
    fn ethernet_with_vlan_tags_and_padding_is_located() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x88, 0xa8, 0x00, 0x06, 0x08, 0x00]);
        frame.extend_from_slice(&ipv4(28));
        frame.extend_from_slice(&[0u8; 12]); // padding to 60 bytes
        assert_eq!(locate(DataLink::ETHERNET, &frame), Frame::Ip { start: 22, len: 28, protocol_at: Some(20) });
    }

    #[test]
    fn arp_and_short_frames_are_not_ip() {
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0u8; 28]);
        assert_eq!(locate(DataLink::ETHERNET, &arp), Frame::NotIp);
        assert_eq!(locate(DataLink::ETHERNET, &[0u8; 5]), Frame::NotIp);
        assert_eq!(locate(DataLink::RAW, &[]), Frame::NotIp);
        assert_eq!(locate(DataLink::LINUX_SLL, &[0u8; 15]), Frame::NotIp);
    }

    #[test]
    fn linux_cooked_headers_are_located() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x86, 0xdd]);
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[4..6].copy_from_slice(&8u16.to_be_bytes());
        sll.extend_from_slice(&v6);
        assert_eq!(locate(DataLink::LINUX_SLL, &sll), Frame::Ip { start: 16, len: 48, protocol_at: Some(14) });
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ipv4(20));
        assert_eq!(locate(DataLink::LINUX_SLL2, &sll2), Frame::Ip { start: 20, len: 20, protocol_at: Some(0) });
    }

    #[test]
    fn rebuild_sets_the_ethertype_to_the_new_ip_version() {
        let mut frame = vec![0xaa; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ipv4(20));
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        let out = rebuild(&frame, 14, Some(12), &v6);
        assert_eq!(&out[..12], &[0xaa; 12]);
        assert_eq!(&out[12..14], &[0x86, 0xdd]);
        assert_eq!(&out[14..], &v6[..]);
    }
}
