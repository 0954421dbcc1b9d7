//! The documentation's tables of deliberate differences from hyper are the ones in the code,
//! every relative link in README.md and docs/ resolves, and README.md stays a short front door.

fn assert_readme_has(name: &str, rows: &[(&str, &str, &str)]) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/http.md")).unwrap();
    let mut table = String::from("| input | issuerd | hyper |\n|---|---|---|\n");
    for (input, issuerd, hyper) in rows {
        table.push_str(&format!("| {input} | {issuerd} | {hyper} |\n"));
    }
    assert!(
        readme.contains(&table),
        "docs/http.md must contain this table (from {name}):\n\n{table}"
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

/// The Markdown files of the documentation: README.md and everything under docs/.
fn documents() -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![root.join("README.md")];
    walk(&root.join("docs"), &mut out);
    out
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_documentation_resolves() {
    let files = documents();
    assert!(files.len() > 5, "found only {files:?}");
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let linked = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            checked += 1;
            if !linked.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
            } else if !fragment.is_empty() && linked.extension().is_some_and(|e| e == "md") {
                let headings = anchors(&std::fs::read_to_string(&linked).unwrap());
                if !headings.iter().any(|h| h == fragment) {
                    broken.push(format!("{}: {target} (no such heading)", file.display()));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "checked only {checked} links: is the scan broken?"
    );
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_readme_is_a_short_front_door() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 350,
        "README.md has {lines} lines: move the long parts to docs/"
    );
}

/// The figures (`N MiB`, `N µs`) of every sentence that starts at the word `figures` in
/// `text`: each up to its first "(", ", so" or ". ".
fn quoted_figures(text: &str) -> Vec<String> {
    let mut figures = Vec::new();
    for (start, _) in text.match_indices("figures") {
        let rest = &text[start..];
        let end = ["(", ", so", ". "]
            .iter()
            .filter_map(|stop| rest.find(stop))
            .min()
            .unwrap_or(rest.len());
        let words: Vec<&str> = rest[..end].split_whitespace().collect();
        for pair in words.windows(2) {
            let unit = pair[1].trim_end_matches([',', ';', '.']);
            if (unit == "MiB" || unit == "µs") && pair[0].parse::<f64>().is_ok() {
                figures.push(format!("{} {unit}", pair[0]));
            }
        }
    }
    figures
}

#[test]
fn figures_quoted_from_the_performance_page_agree_with_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let performance = std::fs::read_to_string(root.join("docs/performance.md")).unwrap();
    for quoting in ["README.md", "deploy/kubernetes/deployment.yaml"] {
        let text = std::fs::read_to_string(root.join(quoting)).unwrap();
        // Comments and wrapped lines read as one text.
        let text = text
            .lines()
            .map(|line| line.trim().trim_start_matches('#').trim())
            .collect::<Vec<_>>()
            .join(" ");
        let figures = quoted_figures(&text);
        assert!(
            figures.len() >= 3,
            "{quoting}: no figures found: {figures:?}"
        );
        for figure in figures {
            assert!(
                performance.contains(&figure),
                "{quoting} quotes {figure:?}, which docs/performance.md does not state"
            );
        }
    }
}

#[test]
fn quoted_figures_are_read_from_their_sentence() {
    assert_eq!(
        quoted_figures(
            "x figures are 10.7 MiB idle, 24.7 MiB with 1,000 and 6.6 µs of CPU (so 32 MiB)"
        ),
        ["10.7 MiB", "24.7 MiB", "6.6 µs"]
    );
    assert!(quoted_figures("no such sentence, 3 MiB").is_empty());
}

#[test]
fn every_readme_section_is_in_its_table_of_contents() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let contents = readme
        .lines()
        .skip_while(|line| !line.starts_with("**Contents:**"))
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!contents.is_empty(), "README.md has no **Contents:** line");
    for heading in readme
        .lines()
        .filter(|line| line.starts_with("## ") || line.starts_with("### "))
    {
        let target = format!("(#{})", anchor(heading.trim_start_matches('#').trim()));
        assert!(
            contents.contains(&target),
            "{heading:?} is not in README.md's contents ({target})"
        );
    }
}
