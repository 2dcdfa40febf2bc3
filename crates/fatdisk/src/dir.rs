//! Directory entries as FAT stores them: the 32-byte short entry, the
//! long-name entries before it, `.`/`..`, and the volume label.
//!
//! A short entry (offsets in bytes):
//!
//! | offset | size | field | what we write |
//! |---:|---:|---|---|
//! | 0 | 11 | name, 8 + 3, space-padded | [`crate::names::short_name`] |
//! | 11 | 1 | attributes | directory `0x10`; file `0x21` (read-only, archive); label `0x08` |
//! | 12 | 1 | reserved (NT case bits) | 0 |
//! | 13 | 1 | creation time, tenths of a second | 0 |
//! | 14 | 2 | creation time | its [`Stamp`]'s time |
//! | 16 | 2 | creation date | its [`Stamp`]'s date |
//! | 18 | 2 | last access date | its [`Stamp`]'s date |
//! | 20 | 2 | first cluster, high 16 bits | |
//! | 22 | 2 | write time | its [`Stamp`]'s time |
//! | 24 | 2 | write date | its [`Stamp`]'s date |
//! | 26 | 2 | first cluster, low 16 bits | 0 for an empty file |
//! | 28 | 4 | size in bytes | 0 for a directory |
//!
//! A long-name entry holds 13 UTF-16 units of the name: units 0-4 at offset
//! 1, 5-10 at 14, 11-12 at 28; offset 0 is its ordinal (1 for the part
//! holding the name's start, `| 0x40` on the last part), 11 the attribute
//! `0x0F`, 12 zero, 13 the short name's checksum, 26 a zero cluster. The
//! parts are stored last first, just before the short entry. After the
//! name's last unit comes one `0x0000` if the part has room, then `0xFFFF`
//! to the end of the part.
//!
//! Files are marked read-only: the content disk refuses writes, and this
//! tells a client before it tries.

use crate::names::UNITS_PER_LFN_ENTRY;

/// Bytes of one directory entry.
pub const DIR_ENTRY_SIZE: usize = 32;

pub const ATTR_READ_ONLY: u8 = 0x01;
pub const ATTR_VOLUME_ID: u8 = 0x08;
pub const ATTR_DIRECTORY: u8 = 0x10;
pub const ATTR_ARCHIVE: u8 = 0x20;
/// Read-only, hidden, system and volume-id together: a long-name part.
pub const ATTR_LONG_NAME: u8 = 0x0F;
/// Marks the long-name part that holds the end of the name.
pub const LAST_LONG_ENTRY: u8 = 0x40;

/// The timestamp of an entry that has none of its own (the application
/// disk does not say; the label has the root folder's): 2025-01-01, fixed
/// so that the same application disk always gives the same content disk. FAT
/// dates count years from 1980 in bits 15-9, the month in 8-5, the day in
/// 4-0.
pub const DATE: u16 = ((2025 - 1980) << 9) | (1 << 5) | 1;
/// Midnight (hours in bits 15-11, minutes 10-5, seconds / 2 in 4-0).
pub const TIME: u16 = 0;

/// A FAT timestamp (see [`DATE`] and [`TIME`] for the bits), to the even
/// second, in UTC: FAT has no time zone, and the content disk must not
/// depend on the host's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub date: u16,
    pub time: u16,
}

impl Stamp {
    pub const DEFAULT: Stamp = Stamp { date: DATE, time: TIME };

    /// The stamp of `secs` seconds after 1970-01-01 00:00 UTC; `None`
    /// outside the years FAT can hold (1980 to 2107).
    pub fn from_unix(secs: i64) -> Option<Stamp> {
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Days to a civil date (proleptic Gregorian), by eras of 400 years.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        if !(1980..=2107).contains(&year) {
            return None;
        }
        let date = ((year - 1980) << 9 | month << 5 | day) as u16;
        let time = ((rem / 3600) << 11 | (rem / 60 % 60) << 5 | (rem % 60) / 2) as u16;
        Some(Stamp { date, time })
    }

    /// Whether its fields name a real date (a day its month has, in its
    /// year) and time of day.
    pub fn is_valid(self) -> bool {
        let (year, month, day) = (1980 + (self.date >> 9), (self.date >> 5) & 0xf, self.date & 0x1f);
        let (hours, minutes, halves) = (self.time >> 11, (self.time >> 5) & 0x3f, self.time & 0x1f);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        (1..=12).contains(&month) && (1..=days).contains(&day) && hours < 24 && minutes < 60 && halves < 30
    }
}

/// The volume label, in the boot sector and as the root's first entry.
pub const LABEL: [u8; 11] = *b"STRATA APPS";

/// The name of the `.` entry.
pub const DOT: [u8; 11] = *b".          ";
/// The name of the `..` entry.
pub const DOTDOT: [u8; 11] = *b"..         ";

/// Where in a long-name entry each of its 13 UTF-16 units goes.
const LFN_UNIT_OFFSETS: [usize; UNITS_PER_LFN_ENTRY] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

fn put16(out: &mut [u8], off: usize, v: u16) {
    out[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Write a short entry.
pub fn short_entry(out: &mut [u8; DIR_ENTRY_SIZE], name: &[u8; 11], attr: u8, cluster: u32, size: u32, stamp: Stamp) {
    out.fill(0);
    out[..11].copy_from_slice(name);
    out[11] = attr;
    // Created, accessed and written: all when it was last written.
    put16(out, 14, stamp.time);
    put16(out, 16, stamp.date);
    put16(out, 18, stamp.date);
    put16(out, 20, (cluster >> 16) as u16);
    put16(out, 22, stamp.time);
    put16(out, 24, stamp.date);
    put16(out, 26, cluster as u16);
    out[28..32].copy_from_slice(&size.to_le_bytes());
}

/// Write long-name part `ordinal` (1-based: part 1 holds units 0-12) of
/// the name whose UTF-16 units are `name`, which has `parts` parts in all.
/// (Units, not a `str`: a part is then 13 units wherever it is in the
/// name, and a name of 255 units costs its 20 parts once each, not 20
/// walks along it.)
pub fn long_entry(out: &mut [u8; DIR_ENTRY_SIZE], name: &[u16], ordinal: usize, parts: usize, checksum: u8) {
    out.fill(0);
    let first = (ordinal - 1) * UNITS_PER_LFN_ENTRY;
    out[0] = ordinal as u8 | if ordinal == parts { LAST_LONG_ENTRY } else { 0 };
    out[11] = ATTR_LONG_NAME;
    out[13] = checksum;
    let mut units = name.get(first..).unwrap_or(&[]).iter().copied();
    let mut ended = false;
    for off in LFN_UNIT_OFFSETS {
        let unit = match (ended, units.next()) {
            (false, Some(u)) => u,
            (false, None) => {
                ended = true;
                0x0000
            }
            (true, _) => 0xFFFF,
        };
        put16(out, off, unit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(name: &str) -> Vec<u16> {
        name.encode_utf16().collect()
    }

    fn units(e: &[u8; 32]) -> Vec<u16> {
        LFN_UNIT_OFFSETS.iter().map(|&o| u16::from_le_bytes([e[o], e[o + 1]])).collect()
    }

    #[test]
    fn a_long_name_part_ends_with_one_nul_then_ffff_padding() {
        let mut e = [0u8; 32];
        long_entry(&mut e, &utf16("abcdefghijklmnop"), 2, 2, 0x5a);
        assert_eq!(e[0], 2 | LAST_LONG_ENTRY);
        assert_eq!(e[11], ATTR_LONG_NAME);
        assert_eq!(e[13], 0x5a);
        let want: Vec<u16> = "nop".encode_utf16().chain([0]).chain([0xFFFF; 9]).collect();
        assert_eq!(units(&e), want);
        long_entry(&mut e, &utf16("abcdefghijklmnop"), 1, 2, 0x5a);
        assert_eq!(e[0], 1);
        assert_eq!(units(&e), "abcdefghijklm".encode_utf16().collect::<Vec<_>>());
    }

    #[test]
    fn a_name_of_exactly_13_units_has_no_terminator() {
        let mut e = [0u8; 32];
        long_entry(&mut e, &utf16("abcdefghijklm"), 1, 1, 0);
        assert_eq!(units(&e), "abcdefghijklm".encode_utf16().collect::<Vec<_>>());
    }

    #[test]
    fn a_short_entry_splits_the_cluster_in_two_halves() {
        let mut e = [0u8; 32];
        short_entry(&mut e, b"README  TXT", ATTR_ARCHIVE, 0x0012_3456, 4097, Stamp { date: 0x5a21, time: 0x6e3d });
        assert_eq!(&e[20..22], &[0x12, 0x00]);
        assert_eq!(&e[26..28], &[0x56, 0x34]);
        assert_eq!(&e[28..32], &4097u32.to_le_bytes());
        assert_eq!([&e[14..18], &e[22..26]], [[0x3d, 0x6e, 0x21, 0x5a], [0x3d, 0x6e, 0x21, 0x5a]], "written and created");
        assert_eq!(&e[18..20], &[0x21, 0x5a], "accessed");
    }

    #[test]
    fn unix_time_becomes_a_fat_stamp_in_utc_to_the_even_second() {
        let stamp = |y: u16, mo: u16, d: u16, h: u16, mi: u16, s: u16| Stamp { date: (y - 1980) << 9 | mo << 5 | d, time: h << 11 | mi << 5 | s / 2 };
        assert_eq!(Stamp::from_unix(315_532_800), Some(stamp(1980, 1, 1, 0, 0, 0)), "FAT's first day");
        assert_eq!(Stamp::from_unix(946_684_799), Some(stamp(1999, 12, 31, 23, 59, 58)));
        assert_eq!(Stamp::from_unix(951_782_400), Some(stamp(2000, 2, 29, 0, 0, 0)), "a leap day");
        assert_eq!(Stamp::from_unix(1_733_582_861), Some(stamp(2024, 12, 7, 14, 47, 41)));
        assert_eq!(Stamp::from_unix(4_354_819_199), Some(stamp(2107, 12, 31, 23, 59, 58)), "FAT's last second");
        assert_eq!(Stamp::from_unix(315_532_799), None, "before 1980");
        assert_eq!(Stamp::from_unix(4_354_819_200), None, "after 2107");
        assert_eq!(Stamp::from_unix(-1), None);
        assert!(Stamp::DEFAULT.is_valid() && stamp(2024, 12, 7, 14, 47, 41).is_valid());
        assert!(stamp(2024, 2, 29, 0, 0, 0).is_valid() && stamp(2000, 2, 29, 0, 0, 0).is_valid());
        for bad in [
            Stamp { date: 0, time: 0 },
            stamp(2024, 13, 1, 0, 0, 0),
            stamp(2024, 2, 30, 0, 0, 0),
            stamp(2100, 2, 29, 0, 0, 0),
            stamp(2023, 4, 31, 0, 0, 0),
            stamp(2024, 1, 1, 24, 0, 0),
            stamp(2024, 1, 1, 0, 60, 0),
            Stamp { date: DATE, time: 30 },
        ] {
            assert!(!bad.is_valid(), "{bad:?}");
        }
    }
}
