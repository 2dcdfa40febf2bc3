//! MBR partition tables: the four primary entries of sector 0, so a client
//! can be confined to one partition.

/// A partition, in 512-byte sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub first_sector: u64,
    pub sectors: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MbrError {
    /// Sector 0 does not end with 0x55 0xaa.
    NoSignature,
    /// The entry (1-4) is empty.
    Empty(usize),
    /// Partitions are numbered 1 to 4.
    NoSuchEntry(usize),
    /// The entry starts at sector 0, over the table itself: a client
    /// confined to it could rewrite the table and widen its partition.
    OverlapsTable(usize),
}

/// Primary partition `number` (1-4) of the MBR in `sector0`.
pub fn partition(sector0: &[u8; 512], number: usize) -> Result<Partition, MbrError> {
    if sector0[510] != 0x55 || sector0[511] != 0xaa {
        return Err(MbrError::NoSignature);
    }
    if !(1..=4).contains(&number) {
        return Err(MbrError::NoSuchEntry(number));
    }
    let e = &sector0[446 + 16 * (number - 1)..446 + 16 * number];
    let kind = e[4];
    let first = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64;
    let sectors = u32::from_le_bytes([e[12], e[13], e[14], e[15]]) as u64;
    if kind == 0 || sectors == 0 {
        return Err(MbrError::Empty(number));
    }
    if first == 0 {
        return Err(MbrError::OverlapsTable(number));
    }
    Ok(Partition { first_sector: first, sectors })
}

/// Write an MBR with the given partitions (first sector, sectors) into
/// `sector0` (used by the tool that makes disk images, and by tests).
pub fn write(sector0: &mut [u8; 512], partitions: &[(u64, u64)]) {
    sector0.fill(0);
    for (i, &(first, sectors)) in partitions.iter().take(4).enumerate() {
        let e = &mut sector0[446 + 16 * i..446 + 16 * (i + 1)];
        e[4] = 0x83; // "Linux": any non-zero type marks the entry used
        e[8..12].copy_from_slice(&(first as u32).to_le_bytes());
        e[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    }
    sector0[510] = 0x55;
    sector0[511] = 0xaa;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_partitions_read_back() {
        let mut s = [0u8; 512];
        write(&mut s, &[(2048, 4096), (8192, 1 << 20)]);
        assert_eq!(partition(&s, 1), Ok(Partition { first_sector: 2048, sectors: 4096 }));
        assert_eq!(partition(&s, 2), Ok(Partition { first_sector: 8192, sectors: 1 << 20 }));
        assert_eq!(partition(&s, 3), Err(MbrError::Empty(3)));
        assert_eq!(partition(&s, 5), Err(MbrError::NoSuchEntry(5)));
    }

    #[test]
    fn a_partition_over_the_table_itself_is_refused() {
        let mut s = [0u8; 512];
        write(&mut s, &[(0, 4096), (8, 64)]);
        assert_eq!(partition(&s, 1), Err(MbrError::OverlapsTable(1)));
        assert_eq!(partition(&s, 2), Ok(Partition { first_sector: 8, sectors: 64 }));
    }

    #[test]
    fn a_disk_without_a_signature_has_no_partitions() {
        assert_eq!(partition(&[0; 512], 1), Err(MbrError::NoSignature));
    }
}
