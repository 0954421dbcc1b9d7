//! Whether a request field's name and value may appear in HTTP/2 (RFC 9113 section 8.2.1),
//! judged once per field: for a dynamic table entry when it is inserted, so that a reference to
//! it costs nothing more however often it is used.

/// What RFC 9113 section 8.2.1 says of a field (a pseudo-header's name is judged by its use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Validity {
    /// Well-formed.
    Valid,
    /// A name with uppercase or other characters a name may not have, or an empty one.
    BadName,
    /// A value with NUL, CR or LF, or starting or ending with white space.
    BadValue,
}

impl Validity {
    /// The validity of a field whose name and value were judged apart (a name may come from
    /// the dynamic table, judged when it was inserted).
    pub(crate) fn of(name_valid: bool, value_valid: bool) -> Self {
        if !name_valid {
            Self::BadName
        } else if !value_valid {
            Self::BadValue
        } else {
            Self::Valid
        }
    }

    /// Whether the name was well-formed.
    pub(crate) fn name_valid(self) -> bool {
        self != Self::BadName
    }
}

/// A pseudo-header's name (judged by its use), or a name of `tchar`s, lowercase only.
pub(crate) fn name_is_valid(name: &[u8]) -> bool {
    name.starts_with(b":") || !name.is_empty() && name.iter().all(|&b| is_name_byte(b))
}

/// A field name byte (RFC 9110 `tchar`, lowercase only, RFC 9113 section 8.2.1).
fn is_name_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*'
        | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// No NUL, CR or LF, and no white space at either end.
pub(crate) fn value_is_valid(value: &[u8]) -> bool {
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    !(edge(value.first())
        || edge(value.last())
        || value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validity(name: &[u8], value: &[u8]) -> Validity {
        Validity::of(name_is_valid(name), value_is_valid(value))
    }

    #[test]
    fn names_and_values_are_judged() {
        assert_eq!(validity(b"accept", b"*/*"), Validity::Valid);
        assert_eq!(validity(b":path", b"/"), Validity::Valid);
        assert_eq!(validity(b"Accept", b"x"), Validity::BadName);
        assert_eq!(validity(b"", b"x"), Validity::BadName);
        assert_eq!(validity(b"a b", b"x"), Validity::BadName);
        assert_eq!(validity(b"accept", b" x"), Validity::BadValue);
        assert_eq!(validity(b"accept", b"x\t"), Validity::BadValue);
        assert_eq!(validity(b"accept", b"a\nb"), Validity::BadValue);
        assert_eq!(validity(b":path", b"/\0"), Validity::BadValue);
        assert_eq!(validity(b"accept", b""), Validity::Valid);
    }
}
