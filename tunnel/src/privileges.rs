//! What the tunnel needs from the kernel, checked before anything is set
//! up so that a missing capability is one clear sentence, not an `EPERM`
//! from somewhere in the middle.

/// `CAP_NET_ADMIN`: create the TUN device, set addresses and routes, force
/// socket buffer sizes.
const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`: raw sockets for ESP without UDP.
const CAP_NET_RAW: u32 = 13;

/// The effective capability set of this process (from `/proc/self/status`),
/// or `None` if it cannot be read.
fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// Check the capabilities the tunnel needs: CAP_NET_ADMIN always, and
/// CAP_NET_RAW when an SA sends ESP without UDP.
///
/// # Errors
/// A message saying what is missing and how to grant it.
pub fn check(raw_esp: bool) -> Result<(), String> {
    let Some(caps) = effective() else {
        // Not Linux's procfs: let the system calls speak for themselves.
        return Ok(());
    };
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN (to create the TUN device, its addresses and routes)");
    }
    if raw_esp && !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW (for the raw socket of ESP without UDP encapsulation)");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "espgcm-tunnel lacks {}; run it as root, or grant them with \
         `setcap cap_net_admin,cap_net_raw+ep $(command -v espgcm-tunnel)`",
        missing.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_effective_set_is_read_from_procfs() {
        // Whoever runs the tests, the line exists and parses on Linux.
        if cfg!(target_os = "linux") {
            assert!(super::effective().is_some());
        }
    }
}
