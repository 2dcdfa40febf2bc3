//! The header's fixed-size text fields (cipher name and mode, hash spec,
//! UUID): NUL-padded ASCII, kept as raw bytes so that a damaged field can
//! still be shown in an error message without an allocator.

use core::fmt;

/// A NUL-terminated text field of `N` bytes, as the header stores it. The
/// text is the bytes before the first NUL (all `N` if there is none).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text<const N: usize> {
    bytes: [u8; N],
}

impl<const N: usize> Text<N> {
    pub(crate) fn new(bytes: [u8; N]) -> Self {
        Text { bytes }
    }

    /// The text without its NUL padding.
    pub fn as_bytes(&self) -> &[u8] {
        let end = self.bytes.iter().position(|&b| b == 0).unwrap_or(N);
        &self.bytes[..end]
    }

    /// The text, if it is UTF-8 (cryptsetup writes ASCII).
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }
}

/// Printable ASCII as is, anything else as `\xNN`: a header from a hostile
/// disk must not put control characters on the console.
impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.as_bytes() {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn text_stops_at_the_first_nul_and_escapes_what_is_not_printable() {
        let mut raw = [0u8; 8];
        raw[..4].copy_from_slice(b"a\x1bb\xff");
        let text = Text::new(raw);
        assert_eq!(text.as_bytes(), b"a\x1bb\xff");
        assert_eq!(format!("{text}"), "a\\x1bb\\xff");
        assert_eq!(Text::new(*b"full").as_bytes(), b"full");
    }
}
