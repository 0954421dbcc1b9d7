//! The changes of a plan as people read them: one `+` (create), `~` (update) or `-` (delete)
//! line per IAM call, and policies as a line diff of their pretty-printed JSON (keys sorted, so
//! only what changed shows).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

use super::{Change, Thumbprints};

/// The plan as text: every change, then a summary line.
pub fn render(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        out.push_str(&describe(change));
    }
    out.push_str(&summary(changes));
    out.push('\n');
    out
}

/// `N to create, N to update, N to delete`, or `no changes`.
pub fn summary(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "No changes: IAM matches the map.".into();
    }
    let (mut create, mut update, mut delete) = (0, 0, 0);
    for change in changes {
        match change {
            Change::CreateProvider(_) | Change::CreateRole(_) => create += 1,
            Change::DeleteRole { .. } => delete += 1,
            _ => update += 1,
        }
    }
    format!(
        "Plan: {} IAM call{}: {create} to create, {update} to update, {delete} to delete.",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" }
    )
}

/// One change: its headline and, for documents, their content or diff.
pub fn describe(change: &Change) -> String {
    let mut out = String::new();
    match change {
        Change::CreateProvider(p) => {
            let _ = writeln!(out, "+ OIDC provider {}", p.arn);
            let _ = writeln!(out, "    url:         {}", p.url);
            let _ = writeln!(out, "    client IDs:  {}", list(&p.client_ids));
            let _ = match &p.thumbprints {
                Thumbprints::Listed(t) => writeln!(out, "    thumbprints: {}", list(t)),
                Thumbprints::LeftOut => writeln!(
                    out,
                    "    thumbprints: none (the issuer's chain ends in a publicly trusted CA: AWS \
                     verifies it with its own CAs and does not use a thumbprint)"
                ),
            };
            let _ = writeln!(out, "    tags:        {}", tags(&p.tags));
        }
        Change::SetThumbprints { arn, from, to } => {
            let _ = writeln!(out, "~ OIDC provider {arn}: thumbprints");
            let _ = writeln!(out, "    - {}", list(from));
            let _ = writeln!(out, "    + {}", list(to));
        }
        Change::AddClientId { arn, client_id } => {
            let _ = writeln!(out, "~ OIDC provider {arn}: add client ID {client_id}");
        }
        Change::RemoveClientId { arn, client_id } => {
            let _ = writeln!(out, "~ OIDC provider {arn}: remove client ID {client_id}");
        }
        Change::TagProvider { arn, tags: set } => {
            let _ = writeln!(out, "~ OIDC provider {arn}: tag {}", tags(set));
        }
        Change::CreateRole(role) => {
            let from = role
                .entry
                .as_deref()
                .map(|e| format!(" (map entry {e})"))
                .unwrap_or_default();
            let _ = writeln!(out, "+ role {}{from}", role.name);
            let _ = writeln!(out, "    tags: {}", tags(&role.tags));
            let _ = writeln!(out, "    trust policy:");
            out.push_str(&diff_lines(None, &role.trust_policy));
        }
        Change::SetTrustPolicy { role, from, to } => {
            let _ = writeln!(out, "~ role {role}: trust policy");
            out.push_str(&diff_lines(Some(from), to));
        }
        Change::TagRole { role, tags: set } => {
            let _ = writeln!(out, "~ role {role}: tag {}", tags(set));
        }
        Change::Attach { role, policy_arn } => {
            let _ = writeln!(out, "~ role {role}: attach {policy_arn}");
        }
        Change::Detach { role, policy_arn } => {
            let _ = writeln!(out, "~ role {role}: detach {policy_arn}");
        }
        Change::PutInline {
            role,
            name,
            from,
            to,
        } => {
            let verb = if from.is_some() { "update" } else { "put" };
            let _ = writeln!(out, "~ role {role}: {verb} inline policy {name}");
            out.push_str(&diff_lines(from.as_ref(), to));
        }
        Change::DeleteInline { role, name, .. } => {
            let _ = writeln!(out, "~ role {role}: delete inline policy {name}");
        }
        Change::DeleteRole { role } => {
            let _ = writeln!(
                out,
                "- role {role} (tagged for this cluster, not in the map)"
            );
        }
    }
    out
}

fn list(items: &BTreeSet<String>) -> String {
    if items.is_empty() {
        return "(none)".into();
    }
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn tags(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pretty JSON of `to` (keys sorted), each line marked against `from`'s: `+` added, `-`
/// removed, ` ` kept; indented by 6.
pub fn diff_lines(from: Option<&Value>, to: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).expect("a JSON value serializes");
    let new = pretty(to);
    let old = from.map(pretty).unwrap_or_default();
    let new: Vec<&str> = new.lines().collect();
    let old: Vec<&str> = old.lines().collect();
    let mut out = String::new();
    for (mark, line) in line_diff(&old, &new) {
        let _ = writeln!(out, "    {mark} {line}");
    }
    out
}

/// A longest-common-subsequence diff of two line lists: (`' '`, `'-'` or `'+'`, line).
fn line_diff<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(char, &'a str)> {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j]: the LCS length of old[i..] and new[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(n.max(m));
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            out.push((' ', old[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals first, on a tie: `- old` then `+ new`, as diff prints a replaced line.
            out.push(('-', old[i]));
            i += 1;
        } else {
            out.push(('+', new[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_diff_marks_only_what_changed() {
        let old = ["a", "b", "c", "d"];
        let new = ["a", "x", "c", "d", "e"];
        let diff = line_diff(&old, &new);
        assert_eq!(
            diff,
            [
                (' ', "a"),
                ('-', "b"),
                ('+', "x"),
                (' ', "c"),
                (' ', "d"),
                ('+', "e")
            ]
        );
        assert!(line_diff(&old, &old).iter().all(|(mark, _)| *mark == ' '));
    }

    #[test]
    fn key_order_is_no_difference() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": [1, 2]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": [1, 2], "b": 1}"#).unwrap();
        assert_eq!(a, b);
        let text = diff_lines(Some(&a), &b);
        assert!(
            !text.contains("    + ") && !text.contains("    - "),
            "{text}"
        );
    }
}
