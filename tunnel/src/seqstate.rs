//! The sequence-number state file: for each outbound SA, the first sequence
//! number that no packet under its key can have carried.
//!
//! With manually set keys, an SA's sequence number is its IV, and an IV used
//! twice under one AES-GCM key gives away the authentication key. A restart
//! that began again at 1 would do exactly that. So the tunnel writes ahead:
//! before it lets an SA use numbers below `N`, it records `N` here (written
//! to a temporary file, flushed to the disk, renamed over the old one, and
//! the folder flushed), and after a restart it resumes each SA at the
//! recorded `N`. A crash loses at most the unused part of one block.
//!
//! Entries are keyed by SPI and a fingerprint of the key material (a
//! truncated SHA-256 under a label; it identifies the key without
//! revealing it), so a new key under an old SPI is told apart from the old
//! one. Entries for SAs that are no longer configured are kept: the SA may
//! come back with its old key.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

const HEADER: &str = "# espgcm-tunnel sequence reservations: SPI, key fingerprint, first sequence number never used.\n\
                      # Written ahead of use; deleting or editing this file can make the tunnel repeat IVs.\n";
const VERSION_LINE: &str = "espgcm-tunnel-sequence-state 1";

/// The fingerprint of an SA's key material in the state file.
pub fn key_id(keymat: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"espgcm-tunnel sequence state key id\0");
    h.update(keymat);
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The state file's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
    entries: BTreeMap<(u32, String), u64>,
}

impl StateFile {
    /// Read the state file at `path`. A missing file is an empty state only
    /// when `new_keys` says that no SA's key has been used before.
    ///
    /// # Errors
    /// A missing file without `new_keys`, an unreadable or damaged file: a
    /// message saying what to do.
    pub fn load(path: &Path, new_keys: bool) -> Result<StateFile, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if new_keys {
                    return Ok(StateFile { path: path.to_path_buf(), entries: BTreeMap::new() });
                }
                return Err(format!(
                    "no sequence state at {}: if the configured keys ever sent packets, starting their sequence \
                     numbers at 1 again would repeat IVs under them. Restore the state file, or re-key; if every \
                     key in the configuration is new, start once with --new-keys",
                    path.display()
                ));
            }
            Err(e) => return Err(format!("cannot read the sequence state {}: {e}", path.display())),
        };
        let state = parse(&text).map_err(|e| {
            format!(
                "the sequence state {} is damaged ({e}); refusing to guess where the SAs' sequence numbers \
                 stand: restore it from a backup, or re-key",
                path.display()
            )
        })?;
        Ok(StateFile { path: path.to_path_buf(), entries: state })
    }

    /// The first unused sequence number recorded for this SA and key.
    pub fn resume_at(&self, spi: u32, key_id: &str) -> Option<u64> {
        self.entries.get(&(spi, key_id.to_string())).copied()
    }

    /// Record the first unused sequence number for this SA and key (in
    /// memory; [`save`](Self::save) writes it).
    pub fn set(&mut self, spi: u32, key_id: &str, resume_at: u64) {
        self.entries.insert((spi, key_id.to_string()), resume_at);
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the state durably: a temporary file beside the real one,
    /// flushed to the disk, renamed over it, and the folder flushed so the
    /// rename itself survives a crash.
    ///
    /// # Errors
    /// The failing step, with the path.
    pub fn save(&self) -> Result<(), String> {
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut text = String::from(HEADER);
        text.push_str(VERSION_LINE);
        text.push('\n');
        for ((spi, id), at) in &self.entries {
            text.push_str(&format!("{spi:#010x} {id} {at}\n"));
        }
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp"));
        let fail = |what: &str, e: std::io::Error| format!("sequence state {}: {what}: {e}", self.path.display());
        {
            let mut f = File::create(&tmp).map_err(|e| fail("creating the temporary file", e))?;
            f.write_all(text.as_bytes()).map_err(|e| fail("writing", e))?;
            f.sync_all().map_err(|e| fail("flushing to disk", e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| fail("renaming into place", e))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail("flushing the folder", e))?;
        Ok(())
    }
}

fn parse(text: &str) -> Result<BTreeMap<(u32, String), u64>, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    match lines.next() {
        Some((_, l)) if l.trim() == VERSION_LINE => {}
        Some((n, _)) => return Err(format!("line {}: not a version line this build reads", n + 1)),
        None => return Err("no version line".into()),
    }
    let mut entries = BTreeMap::new();
    for (n, line) in lines {
        let bad = || format!("line {}: expected `SPI KEY-ID NEXT-SEQUENCE`", n + 1);
        let mut words = line.split_whitespace();
        let (Some(spi), Some(id), Some(at), None) = (words.next(), words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let spi = spi.strip_prefix("0x").and_then(|h| u32::from_str_radix(h, 16).ok()).ok_or_else(bad)?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let at: u64 = at.parse().map_err(|_| bad())?;
        if entries.insert((spi, id.to_string()), at).is_some() {
            return Err(format!("line {}: a second entry for SPI {spi:#010x} and this key", n + 1));
        }
    }
    Ok(entries)
}

/// An exclusive lock on a state file, held while the tunnel runs: two
/// processes sending under the same keys would repeat each other's IVs,
/// and each would overwrite the other's reservations. (The lock is on a
/// file beside the state file, which is replaced on every write.)
#[derive(Debug)]
pub struct StateLock {
    _lock: nix::fcntl::Flock<File>,
}

/// Take the lock on `state`'s lock file (`<state>.lock`).
///
/// # Errors
/// Another process holds it, or the file cannot be made.
pub fn lock(state: &Path) -> Result<StateLock, String> {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open the state lock {}: {e}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map(|l| StateLock { _lock: l }).map_err(
        |(_, e)| {
            format!(
                "the sequence state {} is in use by another process ({e}): two tunnels sending under the same keys \
                 would repeat IVs; stop the other one",
                state.display()
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("espgcm-tunnel-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn a_missing_file_needs_new_keys() {
        let d = temp_dir("missing");
        let path = d.join("x.seq");
        let err = StateFile::load(&path, false).unwrap_err();
        assert!(err.contains("--new-keys") && err.contains("repeat IVs"), "{err}");
        assert!(StateFile::load(&path, true).is_ok());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn entries_survive_a_save_and_load() {
        let d = temp_dir("roundtrip");
        let path = d.join("x.seq");
        let mut s = StateFile::load(&path, true).expect("empty");
        let (a, b) = (key_id(&[1; 20]), key_id(&[2; 20]));
        assert_ne!(a, b);
        s.set(0x1000, &a, 1 << 20);
        s.set(0x1000, &b, 7);
        s.set(0x2000, &a, u64::from(u32::MAX));
        s.save().expect("saved");
        let back = StateFile::load(&path, false).expect("loads");
        assert_eq!(back, s);
        assert_eq!(back.resume_at(0x1000, &a), Some(1 << 20));
        assert_eq!(back.resume_at(0x1000, &key_id(&[3; 20])), None);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_state_file_is_locked_by_one_holder_at_a_time() {
        let d = temp_dir("lock");
        let path = d.join("x.seq");
        let first = lock(&path).expect("first");
        let second = lock(&path).unwrap_err();
        assert!(second.contains("in use by another process"), "{second}");
        drop(first);
        assert!(lock(&path).is_ok(), "free again");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let d = temp_dir("damaged");
        let path = d.join("x.seq");
        std::fs::write(&path, format!("{VERSION_LINE}\n0x00001000 {} notanumber\n", key_id(&[1; 20]))).expect("w");
        let err = StateFile::load(&path, true).unwrap_err();
        assert!(err.contains("damaged") && err.contains("line 2"), "{err}");
        std::fs::write(&path, "").expect("w");
        assert!(StateFile::load(&path, true).unwrap_err().contains("no version line"));
        let _ = std::fs::remove_dir_all(d);
    }
}
