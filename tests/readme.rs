//! The README's tables of deliberate differences from hyper are the ones in the code.

fn assert_readme_has(name: &str, rows: &[(&str, &str, &str)]) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut table = String::from("| input | issuerd | hyper |\n|---|---|---|\n");
    for (input, issuerd, hyper) in rows {
        table.push_str(&format!("| {input} | {issuerd} | {hyper} |\n"));
    }
    assert!(
        readme.contains(&table),
        "README.md must contain this table (from {name}):\n\n{table}"
    );
}

#[test]
fn readme_lists_every_deliberate_difference_from_hyper() {
    assert_readme_has(
        "DELIBERATE_DIFFERENCES",
        issuerd::server::DELIBERATE_DIFFERENCES,
    );
}

#[test]
fn readme_lists_every_deliberate_http2_difference_from_hyper() {
    assert_readme_has(
        "H2_DELIBERATE_DIFFERENCES",
        issuerd::server::H2_DELIBERATE_DIFFERENCES,
    );
}
