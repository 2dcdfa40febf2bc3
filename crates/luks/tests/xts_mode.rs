//! Our batched XTS against the `xts-mode` crate's block-at-a-time one
//! (over the same `aes` crate), on many sectors and sector numbers far
//! beyond the IEEE vectors, both key sizes, both directions.

use aes::cipher::KeyInit;
use aes::{Aes128, Aes256};
use luks::{Cipher, MasterKey, SECTOR_SIZE};
use xts_mode::{get_tweak_default, Xts128};

const SECTORS: usize = 64;

fn data() -> Vec<u8> {
    (0..SECTORS * SECTOR_SIZE).map(|i| (i * 31 + i / 512) as u8).collect()
}

fn reference_encrypt(key: &[u8], first: u64, area: &mut [u8]) {
    let (k1, k2) = key.split_at(key.len() / 2);
    if key.len() == 32 {
        Xts128::new(Aes128::new(k1.into()), Aes128::new(k2.into())).encrypt_area(
            area,
            SECTOR_SIZE,
            first.into(),
            get_tweak_default,
        );
    } else {
        Xts128::new(Aes256::new(k1.into()), Aes256::new(k2.into())).encrypt_area(
            area,
            SECTOR_SIZE,
            first.into(),
            get_tweak_default,
        );
    }
}

#[test]
fn our_sectors_match_the_xts_mode_crate_for_any_sector_number() {
    for key_len in [32, 64] {
        let key: Vec<u8> = (0..key_len).map(|i| (i * 7 + 1) as u8).collect();
        let cipher = Cipher::new(&MasterKey::from_bytes(&key).unwrap());
        for first in [0, 1, 4095, 0x1_0000_0000 - 3, u64::MAX - SECTORS as u64 + 1] {
            let mut expected = data();
            reference_encrypt(&key, first, &mut expected);

            let mut ours = data();
            let (sectors, _) = ours.as_chunks_mut::<SECTOR_SIZE>();
            cipher.encrypt_sectors(first, sectors);
            assert!(ours == expected, "{key_len}-byte key, sectors from {first:#x}");

            cipher.decrypt_sectors(first, ours.as_chunks_mut::<SECTOR_SIZE>().0);
            assert!(ours == data(), "{key_len}-byte key, sectors from {first:#x}: decrypts back");
        }
    }
}

#[repr(C, align(16))]
struct Aligned([u8; SECTORS * SECTOR_SIZE + 16]);

#[test]
fn aligned_and_unaligned_buffers_give_the_same_ciphertext() {
    // The fast path needs 16-byte aligned sectors; anything else goes
    // through an aligned copy. Both must agree with the reference.
    let key: Vec<u8> = (0..64).map(|i| (i * 5 + 3) as u8).collect();
    let cipher = Cipher::new(&MasterKey::from_bytes(&key).unwrap());
    let mut expected = data();
    reference_encrypt(&key, 77, &mut expected);

    let mut buffer = Aligned([0; SECTORS * SECTOR_SIZE + 16]);
    for offset in [0, 1, 8, 15, 16] {
        let bytes = &mut buffer.0[offset..offset + SECTORS * SECTOR_SIZE];
        bytes.copy_from_slice(&data());
        cipher.encrypt_sectors(77, bytes.as_chunks_mut::<SECTOR_SIZE>().0);
        assert!(*bytes == expected[..], "buffer at offset {offset} from 16-byte alignment");
        cipher.decrypt_sectors(77, bytes.as_chunks_mut::<SECTOR_SIZE>().0);
        assert!(*bytes == data()[..], "buffer at offset {offset}: decrypts back");
    }
}
