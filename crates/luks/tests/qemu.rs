//! Payload compatibility, both ways, with QEMU's `luks` block driver on
//! images cryptsetup made: what QEMU writes this crate decrypts, and what
//! this crate encrypts QEMU reads back.

mod common;

use std::path::Path;

use common::*;
use luks::{unlock, Cipher, Header, BLOCK_SIZE, SECTOR_SIZE};

/// qemu-img's secret object and its luks driver over `image`.
fn luks_secret(passphrase: &[u8]) -> String {
    format!("secret,id=sec0,data={}", std::str::from_utf8(passphrase).unwrap())
}

fn luks_driver(image: &Path) -> String {
    format!("driver=luks,key-secret=sec0,file.filename={}", image.display())
}

/// The payload's byte range in the image, and the cipher opened from the
/// image with `passphrase`.
fn open(image: &Path, passphrase: &[u8]) -> (std::ops::Range<usize>, Cipher) {
    let disk = read_image(image);
    let header = Header::parse(&disk).unwrap();
    let mut material = material_buffer();
    let unlocked = unlock(&header, passphrase, &mut material, read_sectors(&disk)).unwrap();
    let start = header.payload_offset() as usize * SECTOR_SIZE;
    (start..disk.len(), Cipher::new(&unlocked.key))
}

#[test]
fn what_qemu_writes_through_its_luks_driver_this_crate_decrypts() {
    for format in [Format::aes_xts(512, "sha256"), Format::aes_xts(256, "sha1")] {
        let scratch = Scratch::new("qemu-writes");
        let image = two_passphrase_image(&scratch, format);
        let (payload, cipher) = open(&image, FIRST_PASSPHRASE);
        let plain = pattern(payload.len());
        let raw = scratch.path("pattern.raw");
        std::fs::write(&raw, &plain).unwrap();

        run(
            qemu_img()
                .args(["convert", "-n", "-f", "raw"])
                .arg(&raw)
                .args(["--object", &luks_secret(SECOND_PASSPHRASE)])
                .args(["--target-image-opts", &luks_driver(&image)]),
            b"",
        );

        let disk = read_image(&image);
        let mut data = disk[payload].to_vec();
        assert_ne!(data, plain, "{format:?}: QEMU wrote ciphertext");
        let (blocks, rest) = data.as_chunks_mut::<BLOCK_SIZE>();
        assert!(rest.is_empty());
        for (number, block) in blocks.iter_mut().enumerate() {
            cipher.decrypt_block(number as u64, block);
        }
        for (number, (ours, theirs)) in data.chunks(SECTOR_SIZE).zip(plain.chunks(SECTOR_SIZE)).enumerate() {
            assert!(ours == theirs, "{format:?}: payload sector {number} decrypts to something else");
        }
    }
}

#[test]
fn what_this_crate_encrypts_qemu_reads_back_through_its_luks_driver() {
    for format in [Format::aes_xts(512, "sha256"), Format::aes_xts(256, "sha1")] {
        let scratch = Scratch::new("qemu-reads");
        let image = two_passphrase_image(&scratch, format);
        let (payload, cipher) = open(&image, SECOND_PASSPHRASE);
        let plain = pattern(payload.len());

        // The first 120 sectors by runs of varying length through the
        // sector API, the rest a 4 KiB block at a time from block 15.
        let mut data = plain.clone();
        let (sectors, _) = data.as_chunks_mut::<SECTOR_SIZE>();
        let mut first = 0;
        for run in [1, 7, 8, 3, 101] {
            cipher.encrypt_sectors(first as u64, &mut sectors[first..first + run]);
            first += run;
        }
        assert_eq!(first, 15 * 8);
        let (blocks, _) = data[first * SECTOR_SIZE..].as_chunks_mut::<BLOCK_SIZE>();
        for (i, block) in blocks.iter_mut().enumerate() {
            cipher.encrypt_block(15 + i as u64, block);
        }

        let mut disk = read_image(&image);
        disk[payload].copy_from_slice(&data);
        std::fs::write(&image, &disk).unwrap();

        let out = scratch.path("out.raw");
        run(
            qemu_img()
                .arg("convert")
                .args(["--object", &luks_secret(FIRST_PASSPHRASE)])
                .args(["--image-opts", &luks_driver(&image)])
                .args(["-O", "raw"])
                .arg(&out),
            b"",
        );
        let read_back = std::fs::read(&out).unwrap();
        assert_eq!(read_back.len(), plain.len(), "{format:?}: QEMU's payload size");
        for (number, (theirs, ours)) in read_back.chunks(SECTOR_SIZE).zip(plain.chunks(SECTOR_SIZE)).enumerate() {
            assert!(theirs == ours, "{format:?}: QEMU reads payload sector {number} as something else");
        }
    }
}
