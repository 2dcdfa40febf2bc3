//! Parsing headers cryptsetup wrote: the fields agree with what
//! `cryptsetup luksDump` says; headers this crate cannot open, and
//! cryptsetup headers damaged field by field, are refused with the reason.

mod common;

use common::*;
use luks::{Hash, Header, HeaderError, HEADER_BYTES, KEY_SLOTS};

/// The value after `label` on the first line that has it.
fn dump_field<'a>(dump: &'a str, label: &str) -> &'a str {
    dump.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("luksDump has no `{label}`:\n{dump}"))
        .trim()
}

/// A key slot as luksDump describes it; it prints the numbers only for
/// enabled slots.
struct DumpedSlot {
    enabled: bool,
    iterations: u32,
    material_offset: u64,
    stripes: u32,
}

fn dump_slots(dump: &str) -> Vec<DumpedSlot> {
    let mut slots = Vec::new();
    let mut lines = dump.lines();
    while let Some(line) = lines.next() {
        let Some((_, state)) = line.strip_prefix("Key Slot ").and_then(|rest| rest.split_once(": ")) else {
            continue;
        };
        let mut slot = DumpedSlot { enabled: state.trim() == "ENABLED", iterations: 0, material_offset: 0, stripes: 0 };
        if slot.enabled {
            let mut value = |label: &str| -> u64 {
                let line = lines.by_ref().find(|l| l.trim_start().starts_with(label)).unwrap();
                line.trim_start()[label.len()..].trim().parse().unwrap()
            };
            slot.iterations = value("Iterations:") as u32;
            slot.material_offset = value("Key material offset:");
            slot.stripes = value("AF stripes:") as u32;
        }
        slots.push(slot);
    }
    slots
}

#[test]
fn every_field_agrees_with_what_cryptsetup_luksdump_prints() {
    for format in SUPPORTED {
        let scratch = Scratch::new("fields");
        let image = two_passphrase_image(&scratch, format);
        let header = header_of(&image);
        let dump = luks_dump(&image);

        assert_eq!(header.payload_offset(), dump_field(&dump, "Payload offset:").parse::<u64>().unwrap());
        assert_eq!(header.key_bytes() * 8, dump_field(&dump, "MK bits:").parse::<usize>().unwrap());
        assert_eq!(header.hash().name(), dump_field(&dump, "Hash spec:"));
        assert_eq!(header.uuid().as_str().unwrap(), dump_field(&dump, "UUID:"));

        let slots = dump_slots(&dump);
        assert_eq!(slots.len(), KEY_SLOTS, "{dump}");
        for (index, dumped) in slots.into_iter().enumerate() {
            let slot = &header.slots()[index];
            assert_eq!(slot.is_active(), dumped.enabled, "{format:?} slot {index}");
            if dumped.enabled {
                assert_eq!(slot.iterations(), dumped.iterations);
                assert_eq!(slot.stripes(), dumped.stripes);
                let extent = header.material(index);
                assert_eq!(extent.first_sector, dumped.material_offset);
                // key-bytes * 4000 stripes: 500 sectors for 64 bytes, 250 for 32.
                assert_eq!(extent.bytes(), header.key_bytes() * 4000);
            }
        }
        assert_eq!(header.active_slots().collect::<Vec<_>>(), [0, SECOND_SLOT], "{format:?}");
    }
}

#[test]
fn the_hash_spec_selects_the_hash() {
    for (spec, hash) in [("sha1", Hash::Sha1), ("sha256", Hash::Sha256), ("sha512", Hash::Sha512)] {
        let scratch = Scratch::new("hash");
        let image = scratch.path("h.img");
        luks_format(&image, Format::aes_xts(512, spec), FIRST_PASSPHRASE);
        assert_eq!(header_of(&image).hash(), hash);
    }
}

/// Formats an image cryptsetup accepts but this crate does not, and
/// returns the parse error.
fn refusal(format: Format, luks_type: &str) -> HeaderError {
    let scratch = Scratch::new("refusal");
    let image = scratch.path("r.img");
    std::fs::File::create(&image).unwrap().set_len(IMAGE_BYTES).unwrap();
    run(
        cryptsetup()
            .args(["luksFormat", "--type", luks_type, "--batch-mode", "--cipher", format.cipher])
            .args(["--key-size", &format.key_bits.to_string(), "--hash", format.hash])
            .args(["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file=-"])
            .arg(&image),
        FIRST_PASSPHRASE,
    );
    Header::parse(&read_image(&image)).unwrap_err()
}

#[test]
fn cryptsetup_headers_with_other_ciphers_hashes_or_versions_are_refused_saying_what_they_use() {
    let cbc = refusal(Format { cipher: "aes-cbc-essiv:sha256", key_bits: 256, hash: "sha256" }, "luks1");
    assert!(matches!(cbc, HeaderError::UnsupportedCipher { .. }), "{cbc:?}");
    assert_eq!(cbc.to_string(), "LUKS cipher aes-cbc-essiv:sha256 is not supported (only aes-xts-plain64)");

    // plain (32-bit sector numbers) is not plain64.
    let plain = refusal(Format { cipher: "aes-xts-plain", key_bits: 512, hash: "sha256" }, "luks1");
    assert_eq!(plain.to_string(), "LUKS cipher aes-xts-plain is not supported (only aes-xts-plain64)");

    let ripemd = refusal(Format::aes_xts(512, "ripemd160"), "luks1");
    assert!(matches!(ripemd, HeaderError::UnsupportedHash(_)), "{ripemd:?}");
    assert_eq!(ripemd.to_string(), "LUKS hash ripemd160 is not supported (only sha1, sha256, sha512)");

    let luks2 = refusal(Format::aes_xts(512, "sha256"), "luks2");
    assert_eq!(luks2, HeaderError::UnsupportedVersion(2));
    assert_eq!(luks2.to_string(), "LUKS version 2 is not supported (only LUKS1)");
}

#[test]
fn a_disk_without_the_magic_or_too_short_is_refused() {
    assert_eq!(Header::parse(&[0; 1024]).unwrap_err(), HeaderError::BadMagic);
    assert_eq!(Header::parse(&[0; 100]).unwrap_err(), HeaderError::TooShort { len: 100 });
    assert_eq!(Header::parse(&[0; 100]).unwrap_err().to_string(), "LUKS header: 100 bytes given, 592 needed");
}

/// A good cryptsetup header (512-bit key, sha256, slots 0 and 5 active),
/// to damage.
fn good_header() -> [u8; HEADER_BYTES] {
    let scratch = Scratch::new("good");
    let image = two_passphrase_image(&scratch, Format::aes_xts(512, "sha256"));
    read_image(&image)[..HEADER_BYTES].try_into().unwrap()
}

fn put_be32(header: &mut [u8], at: usize, value: u32) {
    header[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Where slot `slot`'s field at `offset` (0 active, 4 iterations, 40
/// material offset, 44 stripes) is.
fn slot_field(slot: usize, offset: usize) -> usize {
    208 + 48 * slot + offset
}

#[test]
fn damaged_fields_are_refused_naming_the_field_and_slot() {
    let good = good_header();
    assert!(Header::parse(&good).is_ok());
    let damaged = |change: &dyn Fn(&mut [u8; HEADER_BYTES])| {
        let mut header = good;
        change(&mut header);
        Header::parse(&header).unwrap_err()
    };

    assert_eq!(damaged(&|h| h[6..8].copy_from_slice(&[0, 3])), HeaderError::UnsupportedVersion(3));
    assert_eq!(damaged(&|h| put_be32(h, 108, 48)), HeaderError::UnsupportedKeySize(48));
    assert_eq!(damaged(&|h| put_be32(h, 164, 0)), HeaderError::ZeroDigestIterations);

    // A slot whose state is neither in use nor free holds no key to try
    // (cryptsetup skips it too); the others still open.
    let mut header = good;
    put_be32(&mut header, slot_field(2, 0), 0x1234);
    assert!(!Header::parse(&header).unwrap().slots()[2].is_active());

    assert_eq!(damaged(&|h| put_be32(h, slot_field(5, 4), 0)), HeaderError::ZeroIterations { slot: 5 });
    assert_eq!(damaged(&|h| put_be32(h, slot_field(3, 44), 0)), HeaderError::ZeroStripes { slot: 3 });
    assert_eq!(damaged(&|h| put_be32(h, slot_field(0, 40), 1)), HeaderError::MaterialOverlapsHeader { slot: 0 });

    // Slot 2's material moved onto slot 1's.
    let overlap = damaged(&|h| put_be32(h, slot_field(2, 40), 8 + 504 + 100));
    assert_eq!(overlap, HeaderError::MaterialsOverlap { slot: 2, other: 1 });
    assert_eq!(overlap.to_string(), "LUKS header: key slots 1 and 2 share key material sectors");

    // The payload moved into slot 7's material (which ends at 8 + 7 * 504 + 500 = 4036).
    let past = damaged(&|h| put_be32(h, 104, 4000));
    assert_eq!(past, HeaderError::MaterialPastPayload { slot: 7, end: 4036, payload: 4000 });
    assert_eq!(past.to_string(), "LUKS header: key slot 7 material ends at sector 4036, past the payload at 4000");

    // So many stripes that the material runs past the payload.
    let stripes = damaged(&|h| put_be32(h, slot_field(5, 44), u32::MAX));
    assert!(matches!(stripes, HeaderError::MaterialPastPayload { slot: 5, .. }), "{stripes:?}");

    // Control characters in a name are escaped, not printed.
    let name = damaged(&|h| h[8..12].copy_from_slice(b"a\x1b[m"));
    assert_eq!(name.to_string(), "LUKS cipher a\\x1b[m-xts-plain64 is not supported (only aes-xts-plain64)");
}
