//! The TUN device: one queue per worker, offloads, addresses and routes.

use crate::settings::{Route, Settings};
use std::io;
use std::process::Command;
use tun_rs::{DeviceBuilder, SyncDevice};

/// Create the device with one queue per worker, give it its addresses
/// (with `ip address replace`) and bring it up. The device lives as long as its queues (it is not
/// persistent): closing them on exit removes it and its routes.
///
/// # Errors
/// What the kernel said, with what was being done.
pub fn create(s: &Settings) -> io::Result<Vec<SyncDevice>> {
    // Opening an existing multi-queue device would attach this process's
    // queues to someone else's device.
    if nix::net::if_::if_nametoindex(s.device.as_str()).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "a network device named {} already exists (another espgcm-tunnel?); stop it, remove the device, \
                 or choose another [tunnel] device",
                s.device
            ),
        ));
    }
    let multi_queue = s.workers > 1;
    let first = DeviceBuilder::new()
        .name(&s.device)
        .mtu(s.mtu)
        .with(|b| {
            b.multi_queue(multi_queue).offload(s.offload).tx_queue_len(1000);
        })
        .enable(true)
        .build_sync()
        .map_err(|e| context(e, format!("creating TUN device {}", s.device)))?;
    for &(addr, prefix) in &s.addresses {
        ip(&[
            if addr.is_ipv4() { "-4" } else { "-6" },
            "address",
            "replace",
            &format!("{addr}/{prefix}"),
            "dev",
            &s.device,
        ])?;
    }
    let mut queues = vec![first];
    for i in 1..s.workers {
        let q = queues
            .first()
            .ok_or_else(|| io::Error::other("no first queue"))?
            .try_clone()
            .map_err(|e| context(e, format!("opening queue {i} of {}", s.device)))?;
        queues.push(q);
    }
    for q in &queues {
        q.set_nonblocking(true)?;
    }
    Ok(queues)
}

/// Install the routes through the device (with `ip route replace`, so that
/// a restart finds its own routes harmlessly in place).
///
/// # Errors
/// The `ip` command's own message.
pub fn add_routes(device: &str, routes: &[Route]) -> io::Result<()> {
    for r in routes {
        let family = if r.to.0.is_ipv4() { "-4" } else { "-6" };
        let prefix = format!("{}/{}", r.to.0, r.to.1);
        let src = r.src.map(|s| s.to_string());
        let mut args = vec![family, "route", "replace", &prefix, "dev", device];
        if let Some(src) = &src {
            args.extend(["src", src]);
        }
        ip(&args)?;
    }
    Ok(())
}

/// Run `ip` (iproute2) with `args`.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|e| context(e, "running `ip` (iproute2)".to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
