//! The README's rustls example is the crate documentation's example (which
//! `cargo test` runs as a doc test): the two must not drift apart.

#[test]
fn readme_example_is_the_crate_doc_example() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(dir.join("../README.md")).expect("README.md reads");
    let section = readme.split_once("### rustls\n").expect("the README has a rustls section").1;
    let readme_example = section
        .split_once("```rust,ignore\n")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .expect("the section has the example")
        .0;
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("src/lib.rs reads");
    let doc: Vec<&str> =
        lib.lines().take_while(|l| l.starts_with("//!")).map(|l| l.strip_prefix("//! ").unwrap_or("")).collect();
    let start = doc.iter().position(|l| *l == "```").expect("the crate docs have an example") + 1;
    let len = doc[start..].iter().position(|l| *l == "```").expect("the example ends");
    let doc_example: String = doc[start..start + len].iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(readme_example, doc_example, "README.md's rustls example and src/lib.rs's have drifted apart");
}
