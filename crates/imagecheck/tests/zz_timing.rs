mod support;
use support::*;
#[test]
fn timing() {
    for name in ["default", "devices"] {
        let f = Fixture::load(name);
        let t = std::time::Instant::now();
        for _ in 0..20 { f.check(); }
        eprintln!("{name}: {:?} per check", t.elapsed() / 20);
        let img = Image::new(&f.image);
        let (pool, size) = img.pool();
        let mut valid = 0; let mut tables = 0;
        for t in 0..size/PAGE { tables += 1; for i in 0..512 { if img.read_u64(pool + t*PAGE + i*8) & 1 != 0 { valid += 1; } } }
        eprintln!("{name}: {tables} tables, {valid} valid entries");
    }
}
