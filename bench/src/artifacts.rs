//! The `artifacts` benchmark: the arm64 zips `cargo lambda build` left behind, against Lambda's
//! limit, and the x86-64 release binaries beside them.

use std::path::Path;

use crate::stats::verdict;

/// Runs the `artifacts` benchmark and prints its figures (nothing to fail: a zip not built is reported).
pub(crate) fn artifacts(target_dir: &Path) {
    println!("\n[artifacts] artifacts: arm64 Lambda zips (Lambda's limit: 50 MB zipped)");
    for function in ["question-api", "question-generator"] {
        let zip = target_dir.join("lambda").join(function).join("bootstrap.zip");
        match std::fs::metadata(&zip) {
            Ok(meta) => println!(
                "    {function:<19} {:>6.2} MB zipped  ({})   target <= 50 MB   {}",
                meta.len() as f64 / 1_048_576.0,
                zip.display(),
                verdict(meta.len() <= 50 * 1_048_576)
            ),
            Err(_) => println!("    {function:<19} not built, run scripts/check-deploy"),
        }
        let native = target_dir.join("release").join(function);
        if let Ok(meta) = std::fs::metadata(&native) {
            println!(
                "    {function:<19} {:>6.2} MB x86-64 release binary (stripped, unzipped)",
                meta.len() as f64 / 1_048_576.0
            );
        }
    }
}
