//! The header's hash-spec and the one thing LUKS1 derives with it here,
//! PBKDF2-HMAC (the anti-forensic diffuser, the other use, is in `af`).

use sha1::Sha1;
use sha2::{Sha256, Sha512};

/// A hash LUKS1 may name in its hash-spec that this crate supports. The
/// same hash keys PBKDF2 for the slots and the master-key digest, and
/// drives the anti-forensic diffuser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha512,
}

impl Hash {
    /// The hash a hash-spec names (`sha1`, `sha256`, `sha512`, as
    /// cryptsetup writes them), if supported.
    pub(crate) fn from_spec(spec: &[u8]) -> Option<Hash> {
        match spec {
            b"sha1" => Some(Hash::Sha1),
            b"sha256" => Some(Hash::Sha256),
            b"sha512" => Some(Hash::Sha512),
            _ => None,
        }
    }

    /// The name as a hash-spec spells it.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "sha1",
            Hash::Sha256 => "sha256",
            Hash::Sha512 => "sha512",
        }
    }

    /// PBKDF2-HMAC with this hash: fills `out` from `password`, `salt` and
    /// `iterations` (at least 1; the header check guarantees it).
    pub(crate) fn pbkdf2(self, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        match self {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, out),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, out),
            Hash::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6070, test case 2 (PBKDF2-HMAC-SHA1, 2 iterations).
    #[test]
    fn pbkdf2_sha1_matches_rfc_6070() {
        let mut out = [0u8; 20];
        Hash::Sha1.pbkdf2(b"password", b"salt", 2, &mut out);
        assert_eq!(
            out,
            [
                0xea, 0x6c, 0x01, 0x4d, 0xc7, 0x2d, 0x6f, 0x8c, 0xcd, 0x1e, 0xd9, 0x2a, 0xce, 0x1d, 0x41, 0xf0, 0xd8,
                0xde, 0x89, 0x57
            ]
        );
    }

    #[test]
    fn only_the_three_supported_hash_specs_are_recognised() {
        assert_eq!(Hash::from_spec(b"sha256"), Some(Hash::Sha256));
        assert_eq!(Hash::from_spec(b"SHA256"), None);
        assert_eq!(Hash::from_spec(b"ripemd160"), None);
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha512] {
            assert_eq!(Hash::from_spec(hash.name().as_bytes()), Some(hash));
        }
    }
}
