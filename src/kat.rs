//! Known-answer tests: NIST CAVP GCM response files (`.rsp`), parsed and run
//! against any backend.
//!
//! The files are the `gcmEncryptExtIV*.rsp` and `gcmDecrypt*.rsp` sets of the
//! CAVP GCM validation system (see `vectors/README.md` in the repository for
//! where the copies come from). `espgcm check` and the test suite run them on
//! every supported backend; operators can run their own copies too:
//!
//! ```
//! use espgcm::{Backend, kat};
//!
//! let rsp = "\
//! [Keylen = 128]
//! Count = 0
//! Key = 11754cd72aec309bf52f7687212e8957
//! IV = 3c819d9a9bed087615030b65
//! PT =
//! AAD =
//! CT =
//! Tag = 250327c674aaf477aef2675748cf6971
//! ";
//! let cases = kat::parse_rsp(rsp)?;
//! assert_eq!(cases.len(), 1);
//! let tally = kat::run(&cases, Backend::Scalar)?;
//! assert_eq!(tally.passed, 1);
//! assert!(tally.failures.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::{Backend, Error, Gcm};
use core::fmt;

/// One test case of a response file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Line of the `Count = ` that starts the case (1-based).
    pub line: usize,
    /// The `Count` value.
    pub count: u32,
    /// `Key`.
    pub key: Vec<u8>,
    /// `IV` (any length; CAVP includes 8- to 1024-bit IVs).
    pub iv: Vec<u8>,
    /// `AAD`.
    pub aad: Vec<u8>,
    /// `CT`.
    pub ct: Vec<u8>,
    /// `Tag` (possibly truncated: 4 to 16 bytes).
    pub tag: Vec<u8>,
    /// `PT`, or `None` when the file says `FAIL` (the tag must be rejected).
    pub pt: Option<Vec<u8>>,
}

/// A response file that could not be read, with the line at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

fn hex_decode(s: &str, line: usize) -> Result<Vec<u8>, ParseError> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return Err(ParseError { line, reason: format!("odd number of hex digits in {s:?}") });
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(ParseError { line, reason: format!("{:?} is not a hex digit", c as char) }),
    };
    s.as_bytes().chunks_exact(2).map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?)).collect()
}

/// Parse a CAVP GCM response file (encrypt or decrypt direction).
///
/// Section headers (`[Keylen = 128]`) and comments are skipped; each case
/// starts at `Count = ` and needs `Key`, `IV`, `AAD`, `CT`, `Tag` and either
/// `PT` or `FAIL`.
///
/// # Errors
/// A [`ParseError`] naming the line of the first malformed entry or
/// incomplete case.
pub fn parse_rsp(text: &str) -> Result<Vec<Case>, ParseError> {
    #[derive(Default)]
    struct Partial {
        line: usize,
        count: u32,
        key: Option<Vec<u8>>,
        iv: Option<Vec<u8>>,
        aad: Option<Vec<u8>>,
        ct: Option<Vec<u8>>,
        tag: Option<Vec<u8>>,
        pt: Option<Vec<u8>>,
        fail: bool,
    }
    fn finish(p: Partial) -> Result<Case, ParseError> {
        let missing =
            |what: &str| ParseError { line: p.line, reason: format!("case Count = {} has no {what}", p.count) };
        let pt = match (p.pt, p.fail) {
            (Some(_), true) => {
                return Err(ParseError { line: p.line, reason: "case has both PT and FAIL".to_string() });
            }
            (pt, true) => pt,
            (None, false) => return Err(missing("PT (or FAIL)")),
            (pt, false) => pt,
        };
        Ok(Case {
            line: p.line,
            count: p.count,
            key: p.key.ok_or_else(|| missing("Key"))?,
            iv: p.iv.ok_or_else(|| missing("IV"))?,
            aad: p.aad.ok_or_else(|| missing("AAD"))?,
            ct: p.ct.ok_or_else(|| missing("CT"))?,
            tag: p.tag.ok_or_else(|| missing("Tag"))?,
            pt,
        })
    }

    let mut cases = Vec::new();
    let mut current: Option<Partial> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with('[') {
            continue;
        }
        if l == "FAIL" {
            match current.as_mut() {
                Some(p) => p.fail = true,
                None => return Err(ParseError { line, reason: "FAIL outside a case".to_string() }),
            }
            continue;
        }
        let Some((name, value)) = l.split_once('=') else {
            return Err(ParseError { line, reason: format!("expected `Name = value`, found {l:?}") });
        };
        let name = name.trim();
        if name == "Count" {
            if let Some(p) = current.take() {
                cases.push(finish(p)?);
            }
            let count = value
                .trim()
                .parse()
                .map_err(|_| ParseError { line, reason: format!("bad Count {:?}", value.trim()) })?;
            current = Some(Partial { line, count, ..Partial::default() });
            continue;
        }
        let Some(p) = current.as_mut() else {
            return Err(ParseError { line, reason: format!("{name} outside a case") });
        };
        let bytes = hex_decode(value, line)?;
        let slot = match name {
            "Key" => &mut p.key,
            "IV" => &mut p.iv,
            "AAD" => &mut p.aad,
            "CT" => &mut p.ct,
            "Tag" => &mut p.tag,
            "PT" => &mut p.pt,
            other => return Err(ParseError { line, reason: format!("unknown field {other:?}") }),
        };
        *slot = Some(bytes);
    }
    if let Some(p) = current.take() {
        cases.push(finish(p)?);
    }
    Ok(cases)
}

/// A case that gave the wrong answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The case's line in its file.
    pub line: usize,
    /// The case's `Count`.
    pub count: u32,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} (Count = {}): {}", self.line, self.count, self.reason)
    }
}

/// What running a set of cases on one backend gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Cases whose every check passed.
    pub passed: usize,
    /// Of those, cases that expected the tag to be rejected (`FAIL`).
    pub rejected_as_expected: usize,
    /// Cases that gave a wrong answer.
    pub failures: Vec<Failure>,
}

impl Tally {
    /// Cases run.
    pub fn total(&self) -> usize {
        self.passed + self.failures.len()
    }
}

/// Run every case on `backend`.
///
/// A case with a plaintext is checked both ways: encryption must give `CT`
/// and a tag starting with `Tag`, and decryption with `Tag` must give `PT`. A
/// `FAIL` case must be refused with [`Error::Auth`] and leave the buffer
/// zeroed.
///
/// # Errors
/// [`Error::Unsupported`] if the backend cannot run here. Wrong answers are
/// not errors: they are listed in [`Tally::failures`].
pub fn run(cases: &[Case], backend: Backend) -> Result<Tally, Error> {
    if !backend.is_supported() {
        return Err(Error::Unsupported(backend));
    }
    let mut tally = Tally::default();
    for case in cases {
        match check_case(case, backend) {
            Ok(()) => {
                tally.passed += 1;
                if case.pt.is_none() {
                    tally.rejected_as_expected += 1;
                }
            }
            Err(reason) => tally.failures.push(Failure { line: case.line, count: case.count, reason }),
        }
    }
    Ok(tally)
}

/// Run every case with a 96-bit IV through the batch path
/// ([`Gcm::encrypt_batch`] and [`Gcm::decrypt_batch`]) on `backend`, each in
/// a batch of its own key beside other jobs of varied lengths.
///
/// The case sits at a position that moves from case to case, in batches of
/// 1 to 16 jobs, half of whose other messages have the case's lengths and
/// half lengths of 0 to 300 bytes, all from a fixed generator, so that
/// whatever a backend interleaves, the case's answer must come out the
/// same: `CT` and a tag starting with `Tag` when
/// encrypting, `PT` when decrypting, and for a `FAIL` case [`Error::Auth`]
/// with the data zeroed for that job alone. Cases with other IV lengths
/// (which a [`Job`](crate::Job) cannot carry) are counted in the returned
/// second value and not run.
///
/// # Errors
/// [`Error::Unsupported`] if the backend cannot run here.
pub fn run_batched(cases: &[Case], backend: Backend) -> Result<(Tally, usize), Error> {
    if !backend.is_supported() {
        return Err(Error::Unsupported(backend));
    }
    let mut tally = Tally::default();
    let mut other_iv = 0;
    for (n, case) in cases.iter().enumerate() {
        let Ok(iv) = <[u8; 12]>::try_from(case.iv.as_slice()) else {
            other_iv += 1;
            continue;
        };
        match check_case_batched(case, iv, n, backend) {
            Ok(()) => {
                tally.passed += 1;
                if case.pt.is_none() {
                    tally.rejected_as_expected += 1;
                }
            }
            Err(reason) => tally.failures.push(Failure { line: case.line, count: case.count, reason }),
        }
    }
    Ok((tally, other_iv))
}

fn check_case_batched(case: &Case, iv: [u8; 12], n: usize, backend: Backend) -> Result<(), String> {
    use crate::Job;
    let gcm = Gcm::with_backend(&case.key, backend).map_err(|e| format!("key setup: {e}"))?;
    let jobs_len = 1 + n % 16;
    let at = (n * 7) % jobs_len;
    // Neighbours: every other one of the case's own lengths (so that a
    // backend that runs messages of one shape together runs the case among
    // them), the rest of lengths 0..=300 and AAD 0..=20 from a fixed
    // sequence.
    let mut fill: Vec<(Vec<u8>, Vec<u8>)> = (0..jobs_len)
        .map(|i| {
            let x = (n * 31 + i * 17) % 301;
            let (len, aad_len) = if i % 2 == 0 { (case.ct.len(), case.aad.len()) } else { (x, x % 21) };
            ((0..len).map(|b| (b * 13 + i) as u8).collect(), vec![i as u8; aad_len])
        })
        .collect();
    let neighbours: Vec<Vec<u8>> = fill.iter().map(|(d, _)| d.clone()).collect();
    let mut data = case.ct.clone();
    let failing = case.pt.is_none();
    {
        let mut jobs: Vec<Job<'_>> = Vec::with_capacity(jobs_len);
        let mut own = Some(&mut data);
        for (i, (d, aad)) in fill.iter_mut().enumerate() {
            if i == at {
                let mut job = Job::new(iv, &case.aad, own.take().map(|v| v.as_mut_slice()).unwrap_or_default());
                job.tag[..case.tag.len()].copy_from_slice(&case.tag);
                job.tag_len = case.tag.len();
                jobs.push(job);
            } else {
                jobs.push(Job::new([i as u8; 12], aad, d));
            }
        }
        // Encrypt the neighbours so that they open again.
        let mut neighbour_tags = Vec::with_capacity(jobs_len);
        for (i, job) in jobs.iter_mut().enumerate() {
            if i != at {
                neighbour_tags.push(gcm.encrypt(&job.iv, job.aad, job.data).map_err(|e| format!("{e}"))?);
            } else {
                neighbour_tags.push([0; 16]);
            }
        }
        for (i, job) in jobs.iter_mut().enumerate() {
            if i != at {
                job.tag = neighbour_tags[i];
            }
        }
        gcm.decrypt_batch(&mut jobs);
        for (i, job) in jobs.iter().enumerate() {
            let expected = if i == at && failing { Err(Error::Auth) } else { Ok(()) };
            if job.result != expected {
                return Err(format!("batch decrypt, job {i} of {jobs_len}: {:?} instead of {expected:?}", job.result));
            }
        }
    }
    for (i, (d, _)) in fill.iter().enumerate() {
        if i != at && *d != neighbours[i] {
            return Err(format!("batch decrypt changed neighbour job {i} of {jobs_len}"));
        }
    }
    match &case.pt {
        None if data.iter().all(|&b| b == 0) => return Ok(()),
        None => return Err("batch decrypt rejected the tag but the job's data was not zeroed".to_string()),
        Some(pt) if data != *pt => {
            return Err(format!("batch decrypt gave {} instead of {}", hex(&data), hex(pt)));
        }
        Some(_) => {}
    }
    // Now the other way: the case's plaintext among the same neighbours.
    let mut jobs: Vec<Job<'_>> = Vec::with_capacity(jobs_len);
    let mut own = Some(&mut data);
    for (i, (d, aad)) in fill.iter_mut().enumerate() {
        if i == at {
            jobs.push(Job::new(iv, &case.aad, own.take().map(|v| v.as_mut_slice()).unwrap_or_default()));
        } else {
            jobs.push(Job::new([i as u8; 12], aad, d));
        }
    }
    gcm.encrypt_batch(&mut jobs);
    let job = &jobs[at];
    if job.result.is_err() || !job.tag.starts_with(&case.tag) {
        return Err(format!(
            "batch encrypt gave tag {} ({:?}) instead of {}",
            hex(&job.tag),
            job.result,
            hex(&case.tag)
        ));
    }
    drop(jobs);
    if data != case.ct {
        return Err(format!("batch encrypt gave CT {} instead of {}", hex(&data), hex(&case.ct)));
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn check_case(case: &Case, backend: Backend) -> Result<(), String> {
    let gcm = Gcm::with_backend(&case.key, backend).map_err(|e| format!("key setup: {e}"))?;
    let mut buf = case.ct.clone();
    let opened = gcm.decrypt(&case.iv, &case.aad, &mut buf, &case.tag);
    match (&case.pt, opened) {
        (None, Err(Error::Auth)) if buf.iter().all(|&b| b == 0) => Ok(()),
        (None, Err(Error::Auth)) => Err("tag rejected but the buffer was not zeroed".to_string()),
        (None, other) => Err(format!("expected the tag to be rejected, got {other:?}")),
        (Some(pt), Ok(())) => {
            if buf != *pt {
                return Err(format!("decrypt gave {} instead of {}", hex(&buf), hex(pt)));
            }
            let mut ct = pt.clone();
            let tag = gcm.encrypt(&case.iv, &case.aad, &mut ct).map_err(|e| format!("encrypt: {e}"))?;
            if ct != case.ct {
                return Err(format!("encrypt gave CT {} instead of {}", hex(&ct), hex(&case.ct)));
            }
            if !tag.starts_with(&case.tag) {
                return Err(format!("encrypt gave tag {} instead of {}", hex(&tag), hex(&case.tag)));
            }
            Ok(())
        }
        (Some(_), Err(e)) => Err(format!("decrypt refused a valid case: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_reports_the_line_of_a_bad_entry() {
        let err = parse_rsp("Count = 0\nKey = 0g\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse_rsp("Count = 0\nKey = 00\nIV = 00\nAAD =\nCT =\nTag = 00\n").unwrap_err();
        assert!(err.reason.contains("PT (or FAIL)"), "{err}");
        let err = parse_rsp("Key = 00\n").unwrap_err();
        assert!(err.reason.contains("outside a case"), "{err}");
    }

    #[test]
    fn a_wrong_expected_answer_is_reported_as_a_failure() {
        let good = "Count = 7\nKey = 11754cd72aec309bf52f7687212e8957\nIV = 3c819d9a9bed087615030b65\n\
                    PT =\nAAD =\nCT =\nTag = 250327c674aaf477aef2675748cf6971\n";
        let cases = parse_rsp(good).unwrap();
        assert_eq!(run(&cases, Backend::Scalar).unwrap().passed, 1);
        let bad = good.replace("Tag = 25", "Tag = 26");
        let tally = run(&parse_rsp(&bad).unwrap(), Backend::Scalar).unwrap();
        assert_eq!(tally.passed, 0);
        assert_eq!(tally.failures.len(), 1);
        assert_eq!(tally.failures[0].count, 7);
        // The same case marked FAIL is a pass: the wrong tag is refused.
        let fail = format!("{}FAIL\n", bad.replace("PT =\n", ""));
        let tally = run(&parse_rsp(&fail).unwrap(), Backend::Scalar).unwrap();
        assert_eq!((tally.passed, tally.rejected_as_expected), (1, 1));
    }
}
