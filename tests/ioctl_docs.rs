//! `docs/ioctl.md`'s control-code table must match the code table in `src/ioctl/codes.rs`.

use tdinal::ioctl::codes::{ctl_fields, FILE_READ_ACCESS, FILE_WRITE_ACCESS};
use tdinal::ioctl::CODES;

const DOC: &str = include_str!("../docs/ioctl.md");

#[test]
fn code_table_matches_codes_rs() {
    let mut rows = 0;
    for line in DOC.lines() {
        let cells: Vec<&str> = line
            .split(" | ")
            .map(|c| c.trim_matches(['|', ' ', '`']))
            .collect();
        if cells.len() != 6 || !cells[4].starts_with("0x8065") {
            continue;
        }
        rows += 1;
        let name = cells[0];
        let code = u32::from_str_radix(cells[4].trim_start_matches("0x"), 16).unwrap();
        let info = CODES
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} is documented but not in CODES"));
        assert_eq!(info.code, code, "{name}");
        let nr: u32 = cells[1].split(' ').next().unwrap().parse().unwrap();
        assert_eq!(info.nr, nr, "{name}");
        let function = u32::from_str_radix(cells[2].trim_start_matches("0x"), 16).unwrap();
        assert_eq!(ctl_fields(code).function, function, "{name}");
        let access = match cells[3] {
            "READ" => FILE_READ_ACCESS,
            "WRITE" => FILE_WRITE_ACCESS,
            "READ \\| WRITE" => FILE_READ_ACCESS | FILE_WRITE_ACCESS,
            other => panic!("{name}: access {other:?}"),
        };
        assert_eq!(info.access, access, "{name}");
        assert_eq!(info.supported, cells[5] == "yes", "{name}");
    }
    assert_eq!(rows, CODES.len(), "every code is documented exactly once");
}
