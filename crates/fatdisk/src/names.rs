//! Names: which long names a FAT volume can hold, the order siblings are
//! kept in, the 8.3 short name each entry gets, and the checksum that ties
//! a short name to its long-name entries.
//!
//! # Long names
//!
//! A long name ([`check_long_name`]) is 1 to [`MAX_NAME_UNITS`] UTF-16 code
//! units of any characters except controls (below U+0020, and U+007F) and
//! `" * / : < > ? \ |`; it may not end in a space or a period (FAT
//! implementations drop those, so the name would not survive), which also
//! rules out `.` and `..`. Spaces elsewhere, leading periods and any
//! non-ASCII character are fine.
//!
//! # Sibling order
//!
//! FAT compares names ignoring case, so two siblings must differ ignoring
//! case. The manifest keeps siblings sorted strictly by [`fold_cmp`]
//! (characters compared by their uppercase form, then by code point): a
//! reader proves there are no duplicates by comparing neighbours, with no
//! memory and no sorting.
//!
//! # Short names
//!
//! Every entry needs an 8.3 short name, unique in its directory. We do not
//! search for a free `~N` as a FAT driver does; the tail is the entry's
//! ordinal among its siblings, so uniqueness follows from the construction
//! ([`short_name`]):
//!
//! - a name that is already a valid 8.3 name once uppercased (ASCII letters,
//!   digits and `! # $ % & ( ) - @ ^ _ ` { }`, no `~`, one optional period,
//!   not a DOS device name) keeps it, uppercased: no two siblings share it,
//!   because siblings differ ignoring case;
//! - any other name becomes `BASIS~N.EXT` with `N` its 1-based ordinal in the
//!   directory: the only `~` in the base is the one before `N`, so two such
//!   names differ where their ordinals do, and neither kind can equal the
//!   other (one has a `~`, the other has none).
//!
//! A long-name entry sequence is written for every name that is not exactly
//! its short name (so `README.TXT` has none and `readme.txt` has one).

use core::cmp::Ordering;

/// The longest long name, in UTF-16 code units (so at most 765 UTF-8
/// bytes: three per unit at worst).
pub const MAX_NAME_UNITS: usize = 255;

/// The longest long name in UTF-8 bytes that can hold [`MAX_NAME_UNITS`]
/// units.
pub const MAX_NAME_BYTES: usize = 3 * MAX_NAME_UNITS;

/// UTF-16 code units per long-name directory entry.
pub const UNITS_PER_LFN_ENTRY: usize = 13;

/// Why a long name cannot be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    /// More than [`MAX_NAME_UNITS`] UTF-16 units.
    TooLong,
    /// Not UTF-8 (in a manifest).
    NotUtf8,
    /// A control character or one of `" * / : < > ? \ |`.
    ForbiddenChar(char),
    /// Ends in a space or a period.
    TrailingSpaceOrPeriod,
}

impl core::fmt::Display for NameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NameError::Empty => write!(f, "the name is empty"),
            NameError::TooLong => write!(f, "the name is longer than {MAX_NAME_UNITS} UTF-16 units"),
            NameError::NotUtf8 => write!(f, "the name is not UTF-8"),
            NameError::ForbiddenChar(c) => write!(f, "the name holds {c:?}, which FAT names cannot"),
            NameError::TrailingSpaceOrPeriod => write!(f, "the name ends in a space or a period, which FAT drops"),
        }
    }
}

/// Check that `name` can be a FAT long name (see the module docs).
pub fn check_long_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name.chars().find(|&c| c < ' ' || c == '\u{7f}' || "\"*/:<>?\\|".contains(c)) {
        return Err(NameError::ForbiddenChar(c));
    }
    if name.ends_with(' ') || name.ends_with('.') {
        return Err(NameError::TrailingSpaceOrPeriod);
    }
    if utf16_len(name) > MAX_NAME_UNITS {
        return Err(NameError::TooLong);
    }
    Ok(())
}

/// The length of `name` in UTF-16 code units.
pub fn utf16_len(name: &str) -> usize {
    name.chars().map(char::len_utf16).sum()
}

/// A character as FAT's case-blind comparison sees it: its uppercase form
/// when that is one character (a few, like `ß`, uppercase to two; those
/// stay as they are).
fn fold(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// The order siblings are kept in: names compared character by character
/// ignoring case. `Equal` means FAT could not tell the two names apart.
pub fn fold_cmp(a: &str, b: &str) -> Ordering {
    a.chars().map(fold).cmp(b.chars().map(fold))
}

/// Characters a short name may hold besides `A`-`Z` and `0`-`9` (`~` is
/// left out on purpose: only generated tails carry one).
const SHORT_SPECIALS: &[u8] = b"!#$%&()-@^_`{}";

fn short_char_ok(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || SHORT_SPECIALS.contains(&b)
}

/// Base names DOS reserves for devices; a short name must not be one.
const DEVICES: &[&[u8]] = &[
    b"CON", b"PRN", b"AUX", b"NUL", b"COM1", b"COM2", b"COM3", b"COM4", b"COM5", b"COM6", b"COM7", b"COM8", b"COM9", b"LPT1", b"LPT2",
    b"LPT3", b"LPT4", b"LPT5", b"LPT6", b"LPT7", b"LPT8", b"LPT9",
];

/// The short name an entry gets: 11 bytes, base and extension padded with
/// spaces. `ordinal` is the entry's 1-based place among its siblings.
pub fn short_name(name: &str, ordinal: u32) -> [u8; 11] {
    plain_short_name(name).unwrap_or_else(|| mangled_short_name(name, ordinal))
}

/// Whether `name` needs long-name entries: it does unless it is its own
/// short name exactly.
pub fn needs_long_name(name: &str) -> bool {
    match plain_short_name(name) {
        Some(short) => !name.bytes().eq(display_form(&short)),
        None => true,
    }
}

/// `BASE.EXT` (or `BASE`) as the bytes of an 8.3 name read back.
fn display_form(short: &[u8; 11]) -> impl Iterator<Item = u8> + '_ {
    let base = short[..8].iter().copied().take_while(|&b| b != b' ');
    let ext_len = short[8..].iter().take_while(|&&b| b != b' ').count();
    let dot = (ext_len > 0).then_some(b'.');
    base.chain(dot).chain(short[8..8 + ext_len].iter().copied())
}

/// The name uppercased, if that is already a valid 8.3 name.
fn plain_short_name(name: &str) -> Option<[u8; 11]> {
    let bytes = name.as_bytes();
    let (base, ext) = match bytes.iter().position(|&b| b == b'.') {
        Some(dot) => (&bytes[..dot], &bytes[dot + 1..]),
        None => (bytes, &bytes[bytes.len()..]),
    };
    let has_dot = base.len() < bytes.len();
    if base.is_empty() || base.len() > 8 || ext.len() > 3 || (has_dot && ext.is_empty()) {
        return None;
    }
    let mut short = [b' '; 11];
    for (i, &b) in base.iter().enumerate() {
        short[i] = b.to_ascii_uppercase();
    }
    for (i, &b) in ext.iter().enumerate() {
        short[8 + i] = b.to_ascii_uppercase();
    }
    let (upper_base, upper_ext) = (&short[..base.len()], &short[8..8 + ext.len()]);
    let chars_ok = upper_base.iter().chain(upper_ext).all(|&b| short_char_ok(b));
    if !chars_ok || DEVICES.contains(&upper_base) {
        return None;
    }
    Some(short)
}

/// `BASIS~N.EXT`: the name's characters that a short name can hold
/// (uppercased; others become `_`; spaces and extra periods dropped),
/// the base cut short to make room for the tail.
fn mangled_short_name(name: &str, ordinal: u32) -> [u8; 11] {
    let trimmed = name.trim_start_matches(['.', ' ']);
    let (base, ext) = match trimmed.rfind('.') {
        Some(dot) => (&trimmed[..dot], &trimmed[dot + 1..]),
        None => (trimmed, ""),
    };
    fn short_chars(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.chars().filter(|&c| c != ' ' && c != '.').map(|c| {
            let b = if c.is_ascii() { (c as u8).to_ascii_uppercase() } else { b'_' };
            if short_char_ok(b) {
                b
            } else {
                b'_'
            }
        })
    }
    let mut tail = [0u8; 11];
    let mut tail_len = 0;
    let mut n = ordinal;
    loop {
        tail[tail_len] = b'0' + (n % 10) as u8;
        tail_len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    tail[tail_len] = b'~';
    tail_len += 1;
    tail[..tail_len].reverse();

    let mut short = [b' '; 11];
    let room = 8 - tail_len;
    let mut len = 0;
    for b in short_chars(base).take(room) {
        short[len] = b;
        len += 1;
    }
    short[len..len + tail_len].copy_from_slice(&tail[..tail_len]);
    for (i, b) in short_chars(ext).take(3).enumerate() {
        short[8 + i] = b;
    }
    short
}

/// The checksum each long-name entry carries of its short name: a byte
/// sum rotated right by one bit before each add.
pub fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short.iter().fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// Long-name entries a name needs: 13 UTF-16 units each.
pub fn lfn_entries(name: &str) -> usize {
    if needs_long_name(name) {
        utf16_len(name).div_ceil(UNITS_PER_LFN_ENTRY)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(short: &[u8; 11]) -> &str {
        core::str::from_utf8(short).unwrap()
    }

    #[test]
    fn an_uppercase_8_3_name_is_its_own_short_name_without_long_entries() {
        assert_eq!(s(&short_name("README.TXT", 4)), "README  TXT");
        assert!(!needs_long_name("README.TXT"));
        assert!(!needs_long_name("A"));
        assert_eq!(lfn_entries("KERNEL"), 0);
    }

    #[test]
    fn a_lowercase_8_3_name_keeps_its_short_form_but_gets_a_long_entry() {
        assert_eq!(s(&short_name("readme.txt", 4)), "README  TXT");
        assert!(needs_long_name("readme.txt"));
        assert_eq!(lfn_entries("readme.txt"), 1);
    }

    #[test]
    fn other_names_get_the_ordinal_as_tail() {
        assert_eq!(s(&short_name("My Document.txt", 1)), "MYDOCU~1TXT");
        assert_eq!(s(&short_name("My Document.txt", 123)), "MYDO~123TXT");
        assert_eq!(s(&short_name("archive.tar.gz", 7)), "ARCHIV~7GZ ");
        assert_eq!(s(&short_name(".bashrc", 2)), "BASHRC~2   ");
        assert_eq!(s(&short_name("日本語.txt", 3)), "___~3   TXT");
        assert_eq!(s(&short_name("a+b;c", 65534)), "A_~65534   ");
        assert_eq!(s(&short_name("a~1", 9)), "A_1~9      ");
        assert_eq!(s(&short_name("con.txt", 5)), "CON~5   TXT");
        assert_eq!(s(&short_name("x.html", 5)), "X~5     HTM");
        assert_eq!(s(&short_name("zz after.bin", 2)), "ZZAFTE~2BIN");
        assert_eq!(s(&short_name("A B", 2)), "AB~2       ");
    }

    #[test]
    fn long_names_reject_what_fat_cannot_hold() {
        assert_eq!(check_long_name(""), Err(NameError::Empty));
        assert_eq!(check_long_name("."), Err(NameError::TrailingSpaceOrPeriod));
        assert_eq!(check_long_name(".."), Err(NameError::TrailingSpaceOrPeriod));
        assert_eq!(check_long_name("a "), Err(NameError::TrailingSpaceOrPeriod));
        assert_eq!(check_long_name("a:b"), Err(NameError::ForbiddenChar(':')));
        assert_eq!(check_long_name("a\nb"), Err(NameError::ForbiddenChar('\n')));
        assert_eq!(check_long_name(&"x".repeat(256)), Err(NameError::TooLong));
        assert_eq!(check_long_name(&"😀".repeat(128)), Err(NameError::TooLong));
        assert_eq!(check_long_name(&"é".repeat(255)), Ok(()));
        assert_eq!(check_long_name(" leading space, [brackets] & +plus+"), Ok(()));
    }

    #[test]
    fn sibling_order_ignores_case() {
        assert_eq!(fold_cmp("readme", "README"), Ordering::Equal);
        assert_eq!(fold_cmp("Émile", "émile"), Ordering::Equal);
        assert_eq!(fold_cmp("a", "B"), Ordering::Less);
        assert_eq!(fold_cmp("ab", "a"), Ordering::Greater);
    }

    #[test]
    fn the_checksum_rotates_before_each_add() {
        // Worked by hand: each step is (sum >> 1 | sum << 7) + byte.
        let mut sum = 0u8;
        for &b in b"README  TXT" {
            sum = ((sum & 1) << 7).wrapping_add(sum >> 1).wrapping_add(b);
        }
        assert_eq!(lfn_checksum(b"README  TXT"), sum);
    }
}
