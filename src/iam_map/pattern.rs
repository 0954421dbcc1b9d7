//! IAM's `StringLike` operator: `*` matches any run of characters (the empty one too), `?`
//! exactly one character, and every other character itself, case-sensitively; the pattern must
//! match the whole value.
//!
//! kOps writes `StringLike` into a role's trust policy when the namespace of the entry holds a
//! `*`; `Entry::matches` evaluates the condition that way.

/// Whether `value` matches `pattern` as IAM's `StringLike` compares them.
///
/// Linear backtracking on the last `*` seen: at most `pattern` x `value` steps, no recursion.
pub fn string_like(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    // The last `*` (its index in the pattern) and where in the value its run now ends.
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, vi));
                pi += 1;
            }
            Some(&c) if c == '?' || c == v[vi] => {
                pi += 1;
                vi += 1;
            }
            _ => match star {
                // Let the last `*` take one more character, and retry after it.
                Some((at, end)) => {
                    star = Some((at, end + 1));
                    pi = at + 1;
                    vi = end + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_any_run_including_the_empty_one() {
        for (pattern, value) in [
            ("*", ""),
            ("*", "anything"),
            ("team-*", "team-"),
            ("team-*", "team-a"),
            ("team-*", "team-a-b"),
            ("*-prod", "web-prod"),
            ("a*b*c", "abc"),
            ("a*b*c", "aXXbYYc"),
            ("a**b", "ab"),
            ("*a*", "bab"),
        ] {
            assert!(string_like(pattern, value), "{pattern} ~ {value}");
        }
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(string_like("team-?", "team-a"));
        assert!(string_like("team-?", "team-é"));
        assert!(!string_like("team-?", "team-"));
        assert!(!string_like("team-?", "team-ab"));
        assert!(string_like("?*", "x"));
        assert!(!string_like("?*", ""));
    }

    #[test]
    fn everything_else_is_literal_and_whole() {
        for (pattern, value) in [
            ("team-*", "team"),
            ("team-*", "xteam-a"),
            ("*-prod", "web-prod2"),
            ("a*b", "ac"),
            ("abc", "ab"),
            ("ab", "abc"),
            ("Team-*", "team-a"),
            ("a.b", "axb"),
            ("[ab]", "a"),
            ("", "a"),
        ] {
            assert!(!string_like(pattern, value), "{pattern} !~ {value}");
        }
        assert!(string_like("", ""));
        assert!(string_like("a.b", "a.b"));
    }

    #[test]
    fn backtracking_finds_the_later_split() {
        // The first `b` after the star is not the one that lets the rest match.
        assert!(string_like("*bc", "abbbc"));
        assert!(string_like("a*bcd*e", "abcXbcdYe"));
        assert!(!string_like("a*bcd*e", "abcXbcdY"));
    }

    #[test]
    fn a_subject_claim_pattern_matches_as_iam_would() {
        let pattern = "system:serviceaccount:test-*:myserviceaccount";
        assert!(string_like(
            pattern,
            "system:serviceaccount:test-1:myserviceaccount"
        ));
        assert!(!string_like(pattern, "system:serviceaccount:test-1:other"));
        assert!(!string_like(
            pattern,
            "system:serviceaccount:prod:myserviceaccount"
        ));
    }
}
