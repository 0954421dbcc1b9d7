//! The README's table of deliberate differences from hyper is the one in the code.

#[test]
fn readme_lists_every_deliberate_difference_from_hyper() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut table = String::from("| input | issuerd | hyper |\n|---|---|---|\n");
    for (input, issuerd, hyper) in issuerd::server::DELIBERATE_DIFFERENCES {
        table.push_str(&format!("| {input} | {issuerd} | {hyper} |\n"));
    }
    assert!(
        readme.contains(&table),
        "README.md must contain this table (from DELIBERATE_DIFFERENCES):\n\n{table}"
    );
}
