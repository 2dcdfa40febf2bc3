//! Every file in `tests/malformed/` breaks exactly one rule. Its first line
//! is `<!-- expect: LINE -->`, where LINE is the one error the file must
//! produce, with `{file}` standing for the file's path.

use std::fs;
use std::path::{Path, PathBuf};

/// There must be at least this many files: one per rule and error kind.
const MIN_FILES: usize = 183;

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

/// Write `bytes` to a file of its own and return its path.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sdf-malformed-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

// A file that is not UTF-8 cannot carry its expectation as a comment the
// way the files in `tests/malformed/` do, so these are written here.

#[test]
fn a_file_that_is_not_utf8_gives_its_first_bad_byte_with_line_and_column() {
    // A Latin-1 'é' (0xe9) after a UTF-8 'ü': the column counts characters.
    let mut xml = b"<system>\n    <protection_domain name=\"a\">\n        <!-- \xc3\xbcber ".to_vec();
    xml.extend_from_slice(b"caf\xe9 -->\n        <program_image path=\"a.elf\" />\n");
    xml.extend_from_slice(b"    </protection_domain>\n</system>\n");
    let path = temp_file("latin1.xml", &xml);
    let file = path.display().to_string();
    let expected = format!(
        "error: the file is not UTF-8: byte 0xe9 here is not part of a UTF-8 character; save the \
         system description as UTF-8 at {file}:3:22"
    );
    for (phase, result) in [("parse", sdf::parse_file(&path)), ("read", sdf::read_file(&path))] {
        let errors = result.expect_err(phase);
        let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(got, [expected.clone()], "{phase}");
    }
}

#[test]
fn a_file_cut_inside_a_character_points_at_its_first_byte() {
    let path = temp_file("cut.xml", b"<system>\r\n\xc3");
    let errors = sdf::parse_file(&path).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "the file is not UTF-8: the file ends inside a character (byte 0xc3 here starts it); save \
         the system description as UTF-8"
    );
    assert_eq!((errors[0].line, errors[0].col), (2, 1));
}

#[test]
fn a_utf16_file_is_not_utf8_at_its_first_byte() {
    let utf16: Vec<u8> = "\u{feff}<system/>".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let errors = sdf::parse_file(&temp_file("utf16.xml", &utf16)).unwrap_err();
    assert_eq!((errors.len(), errors[0].line, errors[0].col), (1, 1, 1), "{errors:?}");
    assert!(errors[0].message.starts_with("the file is not UTF-8: byte 0xff here"), "{}", errors[0]);
}
