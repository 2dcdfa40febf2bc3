//! Reading costs time linear in the size of the file, however its lines
//! are laid out: positions are looked up in constant time, not by
//! rescanning the line (a 4 MB system on one line once took 25 s to check,
//! against 0.16 s on separate lines).

use std::time::{Duration, Instant};

/// A system of one PD and `regions` memory regions, the regions separated
/// by `separator`, and the last one broken (`size="0x0"`) so that reading
/// also reports an error from the end of the file.
fn system(regions: usize, separator: &str) -> String {
    let mut xml = String::from("<system>");
    xml.push_str(separator);
    xml.push_str(r#"<protection_domain name="app"><program_image path="app.elf"/></protection_domain>"#);
    for i in 0..regions {
        xml.push_str(separator);
        let size = if i + 1 == regions { "0x0" } else { "0x1000" };
        xml.push_str(&format!(r#"<memory_region name="region_{i}" size="{size}"/>"#));
    }
    xml.push_str(separator);
    xml.push_str("</system>\n");
    xml
}

/// How long `sdf::parse` takes on `xml`, and its errors.
fn timed_parse(xml: &str) -> (Duration, Vec<sdf::Error>) {
    let start = Instant::now();
    let errors = sdf::parse("big.xml", xml).expect_err("the last region is broken");
    (start.elapsed(), errors)
}

#[test]
fn a_system_on_one_line_reads_about_as_fast_as_on_many_lines() {
    const REGIONS: usize = 100_000;
    let one_line = system(REGIONS, "");
    let many_lines = system(REGIONS, "\n");
    assert!(one_line.len() > 4_000_000, "{} bytes", one_line.len());

    let (many, many_errors) = timed_parse(&many_lines);
    let (one, one_errors) = timed_parse(&one_line);

    // The error points at the broken attribute on either layout.
    let col = |xml: &str| {
        let at = xml.find(r#"size="0x0""#).unwrap();
        let line_start = xml[..at].rfind('\n').map_or(0, |i| i + 1);
        xml[line_start..at].chars().count() as u32 + 1
    };
    let (one_error, many_error) = (&one_errors[0], &many_errors[0]);
    assert_eq!((one_errors.len(), one_error.line, one_error.col), (1, 1, col(&one_line)));
    assert_eq!((many_errors.len(), many_error.line, many_error.col), (1, REGIONS as u32 + 2, col(&many_lines)));
    assert!(one_error.col > 4_000_000 && many_error.col == 36, "{one_error}, {many_error}");
    assert_eq!(one_errors[0].message, many_errors[0].message);

    // Quadratic position lookups took minutes here in a debug build;
    // linear ones take about as long as the many-line file. The slack
    // keeps a busy machine from failing the test.
    assert!(
        one < many * 4 + Duration::from_secs(2),
        "one line: {one:?}, many lines: {many:?}"
    );
}
