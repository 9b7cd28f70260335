//! Write the seed inputs of `espgcm_fuzz::seeds()` into `corpus/<target>/`
//! (run from `fuzz/`: `cargo run --example make_seeds`). The fuzzer grows the
//! corpora from these; `cargo fuzz cmin` then keeps what adds coverage.

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut count = std::collections::BTreeMap::<&str, usize>::new();
    for (target, input) in espgcm_fuzz::seeds() {
        let n = count.entry(target).or_default();
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("seed-{n:03}")), &input)?;
        *n += 1;
    }
    for (target, n) in count {
        println!("{target}: {n} seeds");
    }
    Ok(())
}
