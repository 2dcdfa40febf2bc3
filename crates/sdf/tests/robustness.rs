//! Damaged input never panics, every error points into the file, and what
//! parses writes back to the same model.

use proptest::prelude::*;

const VALID: &str = include_str!("fixtures/valid.xml");
const STORAGE: &str = include_str!("fixtures/storage.xml");
const CHAIN: &str = include_str!("fixtures/chain.xml");

/// Bytes likely to make interesting damage in XML, plus any byte at all.
fn damage_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => proptest::sample::select(b"<>/=\"' \n\t-!?&;#x0123456789abcdefrwx_".to_vec()),
        1 => any::<u8>(),
    ]
}

#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), damage_byte()).prop_map(|(at, b)| Edit::Replace(at, b)),
        (any::<usize>(), damage_byte()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Delete),
    ]
}

fn apply(text: &str, edits: &[Edit], cut: Option<usize>) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        let len = bytes.len().max(1);
        match *edit {
            Edit::Replace(at, b) if !bytes.is_empty() => bytes[at % len] = b,
            Edit::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Edit::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            _ => {}
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Parse `xml` (must not panic) and check every error's position; a mutant
/// that parses is written out and must read back to the same model.
fn check_errors(xml: &str) -> Result<(), TestCaseError> {
    match sdf::parse("mutant.xml", xml) {
        Ok(sd) => {
            let written = sdf::to_xml(&sd);
            match sdf::parse("mutant.xml", &written) {
                Ok(again) => {
                    prop_assert_eq!(again.without_positions(), sd.without_positions(), "{}", written)
                }
                Err(errors) => prop_assert!(false, "written mutant does not parse: {errors:?}\n{written}"),
            }
        }
        Err(errors) => check_positions(xml, &errors)?,
    }
    Ok(())
}

/// Every error points into `xml`, and they come sorted.
fn check_positions(xml: &str, errors: &[sdf::Error]) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "Err with no errors");
    let line_count = xml.lines().count().max(1) as u32 + 1;
    for e in errors {
        prop_assert!(e.line >= 1 && e.col >= 1, "bad position: {e}");
        prop_assert!(e.line <= line_count, "line beyond the text: {e}");
        prop_assert!(!e.message.is_empty());
    }
    let positions: Vec<_> = errors.iter().map(|e| (e.line, e.col)).collect();
    prop_assert!(positions.windows(2).all(|w| w[0] <= w[1]), "errors not sorted: {positions:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn byte_damage_and_truncation_never_panic(
        edits in proptest::collection::vec(edit(), 0..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        check_errors(&apply(VALID, &edits, cut))?;
    }

    #[test]
    fn damaged_storage_declarations_never_panic(
        edits in proptest::collection::vec(edit(), 0..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        check_errors(&apply(STORAGE, &edits, cut))?;
    }

    #[test]
    fn damaged_lends_and_chains_never_panic(
        edits in proptest::collection::vec(edit(), 0..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        check_errors(&apply(CHAIN, &edits, cut))?;
    }

    /// Replace attribute values with other plausible values, so the damage
    /// reaches value checks and validation rather than the XML parser.
    #[test]
    fn replaced_attribute_values_never_panic(
        replacements in proptest::collection::vec(
            (any::<usize>(), "(0x)?[0-9a-f_]{0,18}|true|false|edge|level|[rwx]{0,4}|server|client|dma|shared|"),
            1..6,
        ),
    ) {
        check_errors(&replace_values(VALID, &replacements))?;
    }

    /// The same for storage declarations, with values that reach their
    /// checks: slots, capacities, sizes, names the expansion reserves,
    /// filter priorities, data access, faults and params.
    #[test]
    fn replaced_storage_values_never_panic(
        replacements in proptest::collection::vec(
            (any::<usize>(), "[0-9]{1,3}|0x[0-9a-f_]{1,9}|true|false|disk[01]|app|blk_driver|blk_server|blk_app_(queue|data)|virtio_mmio_a003000|[0-9a-f]{0,9}|24[0-9]|25[0-5]|none|read|read-write|fail|restart|audit0|ro0|rule|blk_ro0_(calls|bounce)|"),
            1..6,
        ),
    ) {
        check_errors(&replace_values(STORAGE, &replacements))?;
    }

    /// The same for lends, call budgets and chains: perms, channel ids,
    /// the PDs and regions a via and a stage name.
    #[test]
    fn replaced_chain_values_never_panic(
        replacements in proptest::collection::vec(
            (any::<usize>(), "[0-9]{1,3}|0x[0-9a-f_]{1,9}|r|rw|rx|w|true|false|disk0|direct|blk_server|verify0|audit0|ro0|blk_(verify0|ro0|audit0)_(data|queue|calls)|"),
            1..6,
        ),
    ) {
        check_errors(&replace_values(CHAIN, &replacements))?;
    }
}

/// `text` with the values of some attributes replaced: each replacement
/// picks an attribute by number (modulo their count).
fn replace_values(text: &str, replacements: &[(usize, String)]) -> String {
    let mut xml = text.to_string();
    for (which, value) in replacements {
        let quotes: Vec<usize> = xml.match_indices('"').map(|(i, _)| i).collect();
        let pairs = quotes.len() / 2;
        if pairs == 0 {
            break;
        }
        let pair = which % pairs;
        let (open, close) = (quotes[2 * pair], quotes[2 * pair + 1]);
        xml.replace_range(open + 1..close, value);
    }
    xml
}

#[test]
fn empty_and_tiny_inputs_give_errors_not_panics() {
    for xml in ["", " ", "<", "<system", "<system/>", "<system></system>", "\u{feff}", "<?xml?>"] {
        let errors = sdf::parse("tiny.xml", xml).unwrap_err();
        assert!(errors.iter().all(|e| e.line >= 1 && e.col >= 1), "{xml:?}: {errors:?}");
    }
}

#[test]
fn deeply_nested_protection_domains_do_not_overflow_the_stack() {
    let depth = 10_000;
    let mut xml = String::from("<system>");
    for i in 0..depth {
        let id = if i == 0 { String::new() } else { " id=\"0\"".to_string() };
        xml.push_str(&format!("<protection_domain name=\"p{i}\"{id}><program_image path=\"p\"/>"));
    }
    xml.push_str(&"</protection_domain>".repeat(depth));
    xml.push_str("</system>");
    let errors = sdf::parse("deep.xml", &xml).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.starts_with("too many protection domains"), "{}", errors[0]);
}
