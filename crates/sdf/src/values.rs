//! The textual forms of attribute values: integers, booleans and bytes.

/// Why an integer did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntError {
    /// Not a decimal or `0x` hexadecimal number.
    Syntax,
    /// A number, but it does not fit in 64 bits.
    TooLarge,
}

/// Parse a decimal or `0x`-prefixed hexadecimal integer; `_` may separate
/// digits (`0x20_0000`), as in the Microkit. Signs and spaces are refused.
pub(crate) fn parse_int(s: &str) -> Result<u64, IntError> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    let mut digits = digits.chars().filter(|&c| c != '_').peekable();
    if digits.peek().is_none() || digits.clone().any(|c| !c.is_digit(radix)) {
        return Err(IntError::Syntax);
    }
    digits.try_fold(0u64, |value, c| {
        let digit = c.to_digit(radix).ok_or(IntError::Syntax)?;
        value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(IntError::TooLarge)
    })
}

/// Parse `true` or `false`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parse bytes written as hexadecimal digits, two per byte, most
/// significant digit first (`0a0b` is `[0x0a, 0x0b]`); either case. No
/// prefix, no separators, at least one byte.
pub(crate) fn parse_hex_bytes(s: &str) -> Option<Vec<u8>> {
    let digits = s.as_bytes();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16);
    digits
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect()
}

/// The text [`parse_hex_bytes`] reads back as `bytes`: two lowercase
/// hexadecimal digits per byte.
pub(crate) fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_hex_integers_parse() {
        assert_eq!(parse_int("4096"), Ok(4096));
        assert_eq!(parse_int("0x1000"), Ok(0x1000));
        assert_eq!(parse_int("0XfF"), Ok(255));
        assert_eq!(parse_int("0"), Ok(0));
    }

    #[test]
    fn underscores_separate_digits() {
        assert_eq!(parse_int("0x20_0000"), Ok(0x20_0000));
        assert_eq!(parse_int("1_000"), Ok(1000));
    }

    #[test]
    fn malformed_integers_are_rejected() {
        for s in ["", "_", "0x", "0x_", "-1", "+1", " 1", "1 ", "12a", "0xg", "1.0", "0b1"] {
            assert_eq!(parse_int(s), Err(IntError::Syntax), "{s:?}");
        }
    }

    #[test]
    fn integers_beyond_64_bits_are_too_large() {
        assert_eq!(parse_int("0xffff_ffff_ffff_ffff"), Ok(u64::MAX));
        assert_eq!(parse_int("0x1_0000_0000_0000_0000"), Err(IntError::TooLarge));
        assert_eq!(parse_int("18446744073709551616"), Err(IntError::TooLarge));
        assert_eq!(parse_int("99999999999999999999z"), Err(IntError::Syntax));
    }

    #[test]
    fn hex_bytes_parse_two_digits_per_byte() {
        assert_eq!(parse_hex_bytes("0a0B"), Some(vec![0x0a, 0x0b]));
        assert_eq!(parse_hex_bytes("ff00"), Some(vec![0xff, 0x00]));
        for s in ["", "a", "abc", "0x0a", "0g", "0a 0b", "+a", "é0"] {
            assert_eq!(parse_hex_bytes(s), None, "{s:?}");
        }
    }

    #[test]
    fn hex_strings_read_back() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(parse_hex_bytes(&hex_string(&bytes)), Some(bytes));
        assert_eq!(hex_string(&[0x0a, 0xff]), "0aff");
    }

    #[test]
    fn only_true_and_false_are_booleans() {
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("True"), None);
        assert_eq!(parse_bool("1"), None);
    }
}
