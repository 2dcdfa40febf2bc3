//! Every file in `tests/malformed/` breaks exactly one rule. Its first line
//! is `<!-- expect: LINE -->`, where LINE is the one error the file must
//! produce, with `{file}` standing for the file's path.

use std::fs;
use std::path::{Path, PathBuf};

/// There must be at least this many files: one per rule and error kind.
const MIN_FILES: usize = 161;

fn malformed_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    files.sort();
    files
}

/// The expected error line of `xml`, with `{file}` replaced by `shown`.
fn expectation(xml: &str, shown: &str) -> Option<String> {
    let first = xml.lines().next()?;
    let expect = first.strip_prefix("<!-- expect: ")?.strip_suffix(" -->")?;
    Some(expect.replace("{file}", shown))
}

/// Check one file; `Err` describes the mismatch.
fn check(path: &Path) -> Result<(), String> {
    let name = path.file_name().unwrap().to_string_lossy();
    let shown = format!("tests/malformed/{name}");
    let xml = fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let expected = expectation(&xml, &shown)
        .ok_or_else(|| format!("{shown}: first line is not <!-- expect: ... -->"))?;
    let errors = match sdf::parse(&shown, &xml) {
        Ok(_) => return Err(format!("{shown}: parsed without error\n  expected: {expected}")),
        Err(errors) => errors,
    };
    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if got != [expected.clone()] {
        let got = got.join("\n            ");
        return Err(format!("{shown}:\n  expected: {expected}\n  got:      {got}"));
    }
    Ok(())
}

#[test]
fn each_malformed_file_gives_exactly_its_expected_error() {
    let files = malformed_files();
    assert!(
        files.len() >= MIN_FILES,
        "tests/malformed has {} files, at least {MIN_FILES} are required",
        files.len()
    );
    let failures: Vec<String> = files.iter().filter_map(|path| check(path).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
