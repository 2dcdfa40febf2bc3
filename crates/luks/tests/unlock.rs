//! Unlocking images that cryptsetup made, checked against the master key
//! cryptsetup itself prints: both key sizes, every supported hash, two
//! passphrases in two slots, wrong passphrases and damaged headers.

mod common;

use common::*;
use luks::{unlock, unlock_slot, Header, UnlockError, KEY_SLOTS};

#[test]
fn each_passphrase_opens_its_own_slot_and_gives_the_master_key_cryptsetup_prints() {
    for format in SUPPORTED {
        let scratch = Scratch::new("unlock");
        let image = two_passphrase_image(&scratch, format);
        let disk = read_image(&image);
        let header = Header::parse(&disk).unwrap();
        let expected = cryptsetup_master_key(&image, FIRST_PASSPHRASE);
        assert_eq!(expected.len(), format.key_bits as usize / 8, "{format:?}: cryptsetup's dump");

        for (passphrase, slot) in [(FIRST_PASSPHRASE, 0), (SECOND_PASSPHRASE, SECOND_SLOT)] {
            let mut material = material_buffer();
            let unlocked = unlock(&header, passphrase, &mut material, read_sectors(&disk)).unwrap();
            assert_eq!(unlocked.slot, slot, "{format:?}");
            assert_eq!(unlocked.key.as_bytes(), &expected[..], "{format:?}, slot {slot}");
            assert!(material.iter().all(|&b| b == 0), "{format:?}: the scratch buffer is wiped");
        }
    }
}

#[test]
fn unlock_slot_opens_a_slot_from_material_the_caller_read() {
    let scratch = Scratch::new("unlock-slot");
    let image = two_passphrase_image(&scratch, Format::aes_xts(512, "sha256"));
    let disk = read_image(&image);
    let header = Header::parse(&disk).unwrap();
    let extent = header.material(SECOND_SLOT);
    let start = extent.first_sector as usize * luks::SECTOR_SIZE;
    let mut material = disk[start..start + extent.bytes()].to_vec();

    let key = unlock_slot(&header, SECOND_SLOT, SECOND_PASSPHRASE, &mut material).unwrap();
    assert_eq!(key.as_bytes(), &cryptsetup_master_key(&image, SECOND_PASSPHRASE)[..]);
    assert!(material.iter().all(|&b| b == 0), "the decrypted material is wiped");

    // The other slot's passphrase does not open this slot.
    let mut material = disk[start..start + extent.bytes()].to_vec();
    assert_eq!(
        unlock_slot(&header, SECOND_SLOT, FIRST_PASSPHRASE, &mut material).unwrap_err(),
        UnlockError::WrongPassphrase
    );
}

#[test]
fn a_wrong_passphrase_is_refused_by_every_slot() {
    for format in [Format::aes_xts(512, "sha256"), Format::aes_xts(256, "sha1")] {
        let scratch = Scratch::new("wrong");
        let image = two_passphrase_image(&scratch, format);
        let disk = read_image(&image);
        let header = Header::parse(&disk).unwrap();
        let mut material = material_buffer();
        let error = unlock(&header, b"correct horse battery stapl", &mut material, read_sectors(&disk)).unwrap_err();
        assert_eq!(error, UnlockError::WrongPassphrase, "{format:?}");
        assert_eq!(error.to_string(), "no LUKS key slot opens with this passphrase");
    }
}

#[test]
fn unlock_reads_only_the_sectors_of_the_active_slots_in_order() {
    let scratch = Scratch::new("reads");
    let image = two_passphrase_image(&scratch, Format::aes_xts(512, "sha256"));
    let disk = read_image(&image);
    let header = Header::parse(&disk).unwrap();

    let mut reads = Vec::new();
    let mut material = material_buffer();
    let mut reader = read_sectors(&disk);
    let unlocked = unlock(&header, SECOND_PASSPHRASE, &mut material, |first, sectors, buf| {
        reads.push((first, sectors));
        reader(first, sectors, buf)
    })
    .unwrap();
    assert_eq!(unlocked.slot, SECOND_SLOT);
    // cryptsetup's layout: 500 sectors per slot, 4 KiB aligned (504 apart), from sector 8.
    assert_eq!(reads, [(8, 500), (8 + 504 * SECOND_SLOT as u64, 500)]);
}

#[test]
fn a_flipped_byte_in_the_master_key_digest_fails_cleanly() {
    let scratch = Scratch::new("digest");
    let image = two_passphrase_image(&scratch, Format::aes_xts(512, "sha256"));
    let mut disk = read_image(&image);
    disk[112 + 7] ^= 0x01; // mk-digest is bytes 112..132
    let header = Header::parse(&disk).unwrap();
    for passphrase in [FIRST_PASSPHRASE, SECOND_PASSPHRASE] {
        let mut material = material_buffer();
        assert_eq!(
            unlock(&header, passphrase, &mut material, read_sectors(&disk)).unwrap_err(),
            UnlockError::WrongPassphrase
        );
    }
}

#[test]
fn a_flipped_byte_in_a_slots_key_material_fails_that_slot_only() {
    let scratch = Scratch::new("material");
    let image = two_passphrase_image(&scratch, Format::aes_xts(512, "sha1"));
    let mut disk = read_image(&image);
    let header = Header::parse(&disk).unwrap();
    let extent = header.material(0);
    // Somewhere in the middle of slot 0's material: one stripe damaged.
    disk[extent.first_sector as usize * luks::SECTOR_SIZE + 100_000] ^= 0x80;

    let mut material = material_buffer();
    assert_eq!(
        unlock(&header, FIRST_PASSPHRASE, &mut material, read_sectors(&disk)).unwrap_err(),
        UnlockError::WrongPassphrase
    );
    let unlocked = unlock(&header, SECOND_PASSPHRASE, &mut material, read_sectors(&disk)).unwrap();
    assert_eq!(unlocked.slot, SECOND_SLOT);
    assert_eq!(unlocked.key.as_bytes(), &cryptsetup_master_key(&image, SECOND_PASSPHRASE)[..]);
}

#[test]
fn a_read_error_stops_the_search_and_names_the_slot() {
    let scratch = Scratch::new("read-error");
    let image = two_passphrase_image(&scratch, Format::aes_xts(512, "sha256"));
    let disk = read_image(&image);
    let header = Header::parse(&disk).unwrap();
    let mut material = material_buffer();
    let mut reader = read_sectors(&disk);
    let error = unlock(&header, SECOND_PASSPHRASE, &mut material, |first, sectors, buf| {
        if first == 8 {
            reader(first, sectors, buf)
        } else {
            Err("device error".to_string())
        }
    })
    .unwrap_err();
    assert_eq!(error, UnlockError::Read { slot: SECOND_SLOT, error: "device error".to_string() });
    assert_eq!(error.to_string(), "LUKS key slot 5: reading key material: device error");
}

#[test]
fn a_scratch_buffer_too_small_for_the_material_is_refused_before_reading() {
    let scratch = Scratch::new("small-scratch");
    let image = two_passphrase_image(&scratch, Format::aes_xts(512, "sha256"));
    let disk = read_image(&image);
    let header = Header::parse(&disk).unwrap();
    assert_eq!(header.largest_material_bytes(), 256_000);
    let mut material = vec![0; 255_999];
    let error =
        unlock(&header, FIRST_PASSPHRASE, &mut material, |_, _, _| -> Result<(), String> { panic!("nothing is read") })
            .unwrap_err();
    assert_eq!(error, UnlockError::ScratchTooSmall { needed: 256_000, got: 255_999 });
}

#[test]
fn unlock_slot_refuses_missing_and_inactive_slots_and_short_material() {
    let scratch = Scratch::new("slot-errors");
    let image = two_passphrase_image(&scratch, Format::aes_xts(256, "sha256"));
    let disk = read_image(&image);
    let header = Header::parse(&disk).unwrap();
    let mut material = vec![0; 128_000];
    assert_eq!(
        unlock_slot(&header, KEY_SLOTS, FIRST_PASSPHRASE, &mut material).unwrap_err(),
        UnlockError::NoSuchSlot { slot: 8 }
    );
    assert_eq!(
        unlock_slot(&header, 1, FIRST_PASSPHRASE, &mut material).unwrap_err(),
        UnlockError::SlotInactive { slot: 1 }
    );
    let mut short = vec![0; 127_999];
    let error = unlock_slot(&header, 0, FIRST_PASSPHRASE, &mut short).unwrap_err();
    assert_eq!(error, UnlockError::MaterialTooShort { slot: 0, needed: 128_000, got: 127_999 });
    assert_eq!(error.to_string(), "LUKS key slot 0: 127999 bytes of key material given, 128000 needed");
}

#[test]
fn a_header_with_every_slot_killed_has_no_active_slot() {
    let scratch = Scratch::new("no-slot");
    let image = scratch.path("killed.img");
    luks_format(&image, Format::aes_xts(512, "sha256"), FIRST_PASSPHRASE);
    run(cryptsetup().args(["luksKillSlot", "--batch-mode"]).arg(&image).arg("0"), b"");
    let disk = read_image(&image);
    let header = Header::parse(&disk).unwrap();
    assert_eq!(header.active_slots().count(), 0);
    let mut material = material_buffer();
    assert_eq!(
        unlock(&header, FIRST_PASSPHRASE, &mut material, read_sectors(&disk)).unwrap_err(),
        UnlockError::NoActiveSlot
    );
}

/// Open `slot` with a [`luks::SlotOpener`], feeding the material a sector
/// at a time from `disk`, in slices of `slice` iterations.
fn open_in_steps(header: &Header, disk: &[u8], slot: usize, passphrase: &[u8], slice: u32) -> (Result<luks::MasterKey, UnlockError>, usize) {
    let mut opener = luks::SlotOpener::new(header, slot, passphrase).unwrap();
    let mut calls = 0;
    while !opener.derive(slice) {
        calls += 1;
    }
    let extent = opener.material();
    for i in 0..extent.sectors {
        let at = (extent.first_sector as usize + i as usize) * luks::SECTOR_SIZE;
        let mut sector: [u8; luks::SECTOR_SIZE] = disk[at..at + luks::SECTOR_SIZE].try_into().unwrap();
        opener.feed(i, &mut sector);
        assert!(sector.iter().all(|&b| b == 0), "each fed sector is wiped");
    }
    assert!(opener.fed());
    loop {
        calls += 1;
        if let Some(result) = opener.check(slice) {
            return (result, calls);
        }
    }
}

#[test]
fn a_slot_opened_in_steps_gives_the_key_cryptsetup_prints() {
    for format in [Format::aes_xts(512, "sha256"), Format::aes_xts(256, "sha1"), Format::aes_xts(512, "sha512")] {
        let scratch = Scratch::new("steps");
        let image = two_passphrase_image(&scratch, format);
        let disk = read_image(&image);
        let header = Header::parse(&disk).unwrap();
        let expected = cryptsetup_master_key(&image, SECOND_PASSPHRASE);
        let (key, calls) = open_in_steps(&header, &disk, SECOND_SLOT, SECOND_PASSPHRASE, 100);
        assert_eq!(key.unwrap().as_bytes(), &expected[..], "{format:?}");
        assert!(calls > 10, "{format:?}: the work came in slices ({calls} calls)");
        let (wrong, _) = open_in_steps(&header, &disk, 0, SECOND_PASSPHRASE, 1 << 20);
        assert_eq!(wrong.unwrap_err(), UnlockError::WrongPassphrase, "{format:?}: slot 0 holds the other passphrase");
    }
}
