//! The master key: the volume's aes-xts key, wiped when dropped.

use core::fmt;

use zeroize::Zeroize;

/// A 32-byte (AES-128-XTS) or 64-byte (AES-256-XTS) key: the first half
/// keys the data, the second half the tweak. Its bytes are overwritten
/// with zeros when it is dropped, and `Debug` does not show them.
pub struct MasterKey {
    bytes: [u8; 64],
    len: usize,
}

impl MasterKey {
    /// A key from its bytes (32 or 64 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, KeySizeError> {
        if bytes.len() != 32 && bytes.len() != 64 {
            return Err(KeySizeError { len: bytes.len() });
        }
        let mut key = MasterKey { bytes: [0; 64], len: bytes.len() };
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(key)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({} bytes)", self.len)
    }
}

/// A key of a length aes-xts does not take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySizeError {
    pub len: usize,
}

impl fmt::Display for KeySizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an aes-xts key is 32 or 64 bytes, not {}", self.len)
    }
}
