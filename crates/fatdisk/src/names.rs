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
    let forbidden = |c: char| c < ' ' || matches!(c, '\u{7f}' | '"' | '*' | '/' | ':' | '<' | '>' | '?' | '\\' | '|');
    if let Some(c) = name.chars().find(|&c| forbidden(c)) {
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

/// `name` in UTF-16 units into `out`, as far as it holds them; how many
/// were put. (An ASCII name, the common case, widened byte by byte: the
/// content disk does this for every name of every directory block it
/// synthesizes, and decoding UTF-8 cost about six instructions a
/// character.)
pub fn utf16_units(name: &str, out: &mut [u16]) -> usize {
    let mut len = 0;
    if name.is_ascii() {
        for (unit, &b) in out.iter_mut().zip(name.as_bytes()) {
            (*unit, len) = (u16::from(b), len + 1);
        }
    } else {
        for (unit, u) in out.iter_mut().zip(name.encode_utf16()) {
            (*unit, len) = (u, len + 1);
        }
    }
    len
}

/// A character as FAT's case-blind comparison sees it: its uppercase form
/// when that is one character (a few, like `ß`, uppercase to two; those
/// stay as they are).
fn fold(c: char) -> char {
    // (Names are mostly ASCII; Unicode's tables cost tens of instructions.)
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
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
#[cfg(test)]
const SHORT_SPECIALS: &[u8] = b"!#$%&()-@^_`{}";

fn short_char_ok(b: u8) -> bool {
    SHORT_CHARS[b as usize]
}

/// Which bytes a short name may hold: `A`-`Z`, `0`-`9` and
/// `!#$%&()-@^_\`{}` (`~` is left out on purpose: only generated tails
/// carry one). A table: the content disk asks this of every character of
/// every name of every directory block it synthesizes.
const SHORT_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let specials = b"!#$%&()-@^_`{}";
    let mut i = 0;
    while i < specials.len() {
        table[specials[i] as usize] = true;
        i += 1;
    }
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            table[b] = true;
        }
        b += 1;
    }
    table
};
/// Base names DOS reserves for devices; a short name must not be one.
const DEVICES: &[&[u8]] = &[
    b"CON", b"PRN", b"AUX", b"NUL", b"COM1", b"COM2", b"COM3", b"COM4", b"COM5", b"COM6", b"COM7", b"COM8", b"COM9", b"LPT1", b"LPT2",
    b"LPT3", b"LPT4", b"LPT5", b"LPT6", b"LPT7", b"LPT8", b"LPT9",
];

/// The short name an entry gets: 11 bytes, base and extension padded with
/// spaces. `ordinal` is the entry's 1-based place among its siblings.
pub fn short_name(name: &str, ordinal: u32) -> [u8; 11] {
    short_name_and_needs_long(name, ordinal).0
}

/// [`short_name`] and [`needs_long_name`] at once (the content disk's
/// directory blocks want both of every name).
pub fn short_name_and_needs_long(name: &str, ordinal: u32) -> ([u8; 11], bool) {
    match plain_short_name(name) {
        Some((short, lowered)) => (short, lowered),
        None => (mangled_short_name(name, ordinal), true),
    }
}

/// Whether `name` needs long-name entries: it does unless it is its own
/// short name exactly.
pub fn needs_long_name(name: &str) -> bool {
    plain_short_name(name).is_none_or(|(_, lowered)| lowered)
}

/// The name uppercased, if that is already a valid 8.3 name, and whether
/// uppercasing changed it (then it is not its own short name: it needs a
/// long name to keep its case). One pass over at most 12 bytes: the
/// content disk asks this of every name of every directory block.
fn plain_short_name(name: &str) -> Option<([u8; 11], bool)> {
    let bytes = name.as_bytes();
    if bytes.len() > 12 {
        return None;
    }
    let (base, ext) = match bytes.iter().position(|&b| b == b'.') {
        Some(dot) => (&bytes[..dot], &bytes[dot + 1..]),
        None => (bytes, &bytes[bytes.len()..]),
    };
    let has_dot = base.len() < bytes.len();
    if base.is_empty() || base.len() > 8 || ext.len() > 3 || (has_dot && ext.is_empty()) {
        return None;
    }
    let mut short = [b' '; 11];
    let (to_base, to_ext) = short.split_at_mut(8);
    // (A second period fails here, as any character a short name cannot
    // hold.)
    let lowered = upper_into(base, to_base)? | upper_into(ext, to_ext)?;
    if (3..=4).contains(&base.len()) && DEVICES.contains(&&short[..base.len()]) {
        return None;
    }
    Some((short, lowered))
}

/// `part` uppercased into `out`, if a short name can hold each of its
/// characters; whether uppercasing changed any.
fn upper_into(part: &[u8], out: &mut [u8]) -> Option<bool> {
    let mut lowered = false;
    for (o, &b) in out.iter_mut().zip(part) {
        let upper = b.to_ascii_uppercase();
        if !short_char_ok(upper) {
            return None;
        }
        lowered |= upper != b;
        *o = upper;
    }
    Some(lowered)
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
    fn units_are_utf16_for_ascii_and_other_names_alike() {
        for name in ["plain name.txt", "café 語 😀.txt", ""] {
            let mut out = [0u16; MAX_NAME_UNITS];
            let len = utf16_units(name, &mut out);
            assert_eq!(out[..len], name.encode_utf16().collect::<Vec<_>>()[..], "{name}");
        }
        let mut short = [0u16; 3];
        assert_eq!(utf16_units("abcdef", &mut short), 3);
    }

    #[test]
    fn the_special_characters_of_a_short_name_are_those_listed() {
        for b in 0..=255u8 {
            let listed = b.is_ascii_uppercase() || b.is_ascii_digit() || SHORT_SPECIALS.contains(&b);
            assert_eq!(short_char_ok(b), listed, "{b:#x}");
        }
        for (name, ordinal) in [("README.TXT", 1), ("readme.txt", 2), ("a long name.txt", 3), ("CON", 4)] {
            assert_eq!(short_name_and_needs_long(name, ordinal), (short_name(name, ordinal), needs_long_name(name)), "{name}");
        }
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
