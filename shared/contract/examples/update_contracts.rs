//! Writes `contracts/` from the Rust types: run by `scripts/update-contracts` after a change to
//! the contract, then commit. The contracts test only compares, so it cannot pass by rewriting.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    for (path, document) in qgen_contract::contracts::documents() {
        let file = dir.join(&path);
        std::fs::create_dir_all(file.parent().expect("a file under contracts/"))?;
        std::fs::write(&file, qgen_contract::contracts::to_file_text(&document))?;
        println!("wrote contracts/{path}");
    }
    Ok(())
}
