//! The C tests of the C ABI: each program in `tests/c/` is compiled with the
//! system C compiler against `libespgcm_ffi.a` and `espgcm.h`, under
//! AddressSanitizer and UndefinedBehaviorSanitizer with every finding fatal,
//! and run; it must exit 0 and end with "NAME: N passed, 0 failed". The same
//! programs run once more under valgrind (memcheck) where it is installed
//! (`ESPGCM_REQUIRE_VALGRIND=1` makes its absence a failure).

use espgcm::kat;
use flate2::read::GzDecoder;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../tests/known_answers/gcm_spec.rs"]
#[allow(dead_code)]
mod gcm_spec;

/// The C programs, in `tests/c/`.
const PROGRAMS: [&str; 4] = ["gcm_known_answers", "gcm_api", "esp_loop", "esp_table"];

/// The NIST CAVP response files (see vectors/README.md).
const CAVP: [&str; 6] = [
    "gcmEncryptExtIV128.rsp",
    "gcmEncryptExtIV192.rsp",
    "gcmEncryptExtIV256.rsp",
    "gcmDecrypt128.rsp",
    "gcmDecrypt192.rsp",
    "gcmDecrypt256.rsp",
];

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `libespgcm_ffi.a`, which cargo builds with the library this test
/// depends on, beside this test's own binary (`target/<profile>/deps/`,
/// whatever the target directory is).
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("tests run from target/<profile>/deps");
    let lib = deps.join("libespgcm_ffi.a");
    assert!(lib.is_file(), "{} is missing: cargo builds it with the espgcm-ffi library", lib.display());
    lib
}

/// Compile one program; `sanitize` adds ASan and UBSan.
fn compile(name: &str, sanitize: bool) -> PathBuf {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let exe = out_dir.join(format!("{name}{}", if sanitize { "-asan-ubsan" } else { "" }));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let mut cmd = Command::new(&cc);
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-g", "-O1"])
        .arg("-I")
        .arg(crate_dir())
        .arg(crate_dir().join("tests/c").join(format!("{name}.c")));
    if sanitize {
        cmd.args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]);
    }
    cmd.arg(static_library()).args(["-lpthread", "-ldl", "-lm", "-o"]).arg(&exe);
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(output.status.success(), "compiling {name}.c failed:\n{}", String::from_utf8_lossy(&output.stderr));
    exe
}

/// Check a program's exit status and closing line.
fn assert_passed(name: &str, how: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let closing = stdout.lines().rev().find(|l| l.starts_with(&format!("{name}: ")));
    let passed = closing
        .and_then(|l| l.strip_suffix(" passed, 0 failed"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        output.status.success() && passed.is_some_and(|n| n > 0),
        "{name} ({how}) failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    println!("{how}: {}", closing.unwrap_or_default());
}

/// The vector file gcm_known_answers.c reads: the specification's 18 cases
/// and every CAVP case, one per line (key iv aad pt ct tag, `-` for empty,
/// `FAIL` as pt for a tag to reject).
fn vector_file() -> PathBuf {
    let hex = |b: &[u8]| if b.is_empty() { "-".to_string() } else { b.iter().map(|x| format!("{x:02x}")).collect() };
    let mut text = String::new();
    for c in &gcm_spec::CASES {
        let _ =
            writeln!(text, "{} {} {} {} {} {}", hex(c.key), hex(c.iv), hex(c.aad), hex(c.pt), hex(c.ct), hex(&c.tag));
    }
    let mut cases = gcm_spec::CASES.len();
    for file in CAVP {
        let path = crate_dir().join("../vectors/nist-cavp").join(format!("{file}.gz"));
        let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut rsp = String::new();
        GzDecoder::new(&gz[..]).read_to_string(&mut rsp).unwrap_or_else(|e| panic!("{file}: {e}"));
        let parsed = kat::parse_rsp(&rsp).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(parsed.len(), 7875, "{file}: vectors/README.md gives 7875 cases per file");
        for c in parsed {
            let pt = c.pt.as_deref().map_or_else(|| "FAIL".to_string(), hex);
            let _ =
                writeln!(text, "{} {} {} {pt} {} {}", hex(&c.key), hex(&c.iv), hex(&c.aad), hex(&c.ct), hex(&c.tag));
        }
        cases += 7875;
    }
    assert_eq!(cases, 18 + 6 * 7875);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gcm_vectors.txt");
    std::fs::write(&path, text).expect("the target directory is writable");
    path
}

fn args_for(name: &str) -> Vec<PathBuf> {
    if name == "gcm_known_answers" { vec![vector_file()] } else { Vec::new() }
}

#[test]
fn c_programs_pass_under_asan_and_ubsan() {
    for name in PROGRAMS {
        let exe = compile(name, true);
        let output = Command::new(&exe)
            .args(args_for(name))
            .env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1")
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
            .output()
            .expect("the compiled test runs");
        assert_passed(name, "asan+ubsan", &output);
    }
}

#[test]
fn c_programs_pass_under_valgrind() {
    let have_valgrind = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have_valgrind {
        assert!(
            std::env::var_os("ESPGCM_REQUIRE_VALGRIND").is_none(),
            "ESPGCM_REQUIRE_VALGRIND is set but valgrind is not installed (Debian: apt-get install valgrind)"
        );
        eprintln!("valgrind is not installed: skipping the valgrind run of the C tests");
        return;
    }
    // The known-answer program runs its built-in cases only: 47,268 cases
    // on every backend under memcheck would take minutes, and ASan has run
    // them all.
    for name in PROGRAMS {
        let exe = compile(name, false);
        let output = Command::new("valgrind")
            .args([
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-possibly-lost=no",
                "--quiet",
            ])
            .arg(&exe)
            .output()
            .expect("valgrind runs");
        assert_passed(name, "valgrind", &output);
    }
}

/// The code block of `lang` that follows `heading` in the README.
fn readme_block(heading: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(crate_dir().join("../README.md")).expect("README.md reads");
    let section = readme.split_once(heading).map(|(_, rest)| rest).expect("the README has the heading");
    let (_, code) = section.split_once(&format!("```{lang}\n")).expect("the section has the code block");
    code.split_once("```\n").map(|(code, _)| code.to_string()).expect("the code block ends")
}

#[test]
fn readme_c_example_compiles_and_runs() {
    let source = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme_example.c");
    std::fs::write(&source, readme_block("### C\n", "c")).expect("the target directory is writable");
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme_example");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let output = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
        .arg(&source)
        .arg("-I")
        .arg(crate_dir())
        .arg(static_library())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .expect("the C compiler runs");
    assert!(
        output.status.success(),
        "the README's C example does not compile:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = Command::new(&exe).output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the README's C example failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The output the README shows (the backend line depends on the CPU).
    let shown = readme_block("cc example.c -I ffi", "text");
    for line in shown.lines().skip(1) {
        assert!(stdout.lines().any(|l| l == line), "the README shows {line:?}; the example printed:\n{stdout}");
    }
    assert!(stdout.starts_with("backend: "), "{stdout}");
}
