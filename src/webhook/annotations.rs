//! A ServiceAccount's own IRSA annotations, as the EKS pod identity webhook reads them:
//! `eks.amazonaws.com/role-arn` (the role; without it the ServiceAccount asks for nothing),
//! `audience`, `sts-regional-endpoints` and `token-expiration`. Where a map file names the same
//! ServiceAccount, the annotations win (the ServiceAccount's owner said so last); the fields
//! they leave out fall back to the flags, not to the map entry, so one ServiceAccount is never
//! wired half from each.
//!
//! Read as the EKS webhook reads them (`pkg/cache`): `sts-regional-endpoints` is Go's
//! `strconv.ParseBool` (`true`, `1`, `t`, `TRUE`, ...); a `token-expiration` that is not a number
//! falls back to the flag. Unlike the EKS webhook, a role ARN with no ARN shape is not wired into
//! pods (the SDK would fail in the pod, far from the cause): the pod is admitted from the map
//! with a warning that names the annotation.

use std::collections::BTreeMap;

use super::mapping::Mapped;
use crate::arn::RoleArn;

/// The role the ServiceAccount's pods assume.
pub const ROLE_ARN: &str = "eks.amazonaws.com/role-arn";
/// The projected token's audience.
pub const AUDIENCE: &str = "eks.amazonaws.com/audience";
/// `"true"`: point the SDK at the regional STS endpoint.
pub const STS_REGIONAL_ENDPOINTS: &str = "eks.amazonaws.com/sts-regional-endpoints";
/// The projected token's lifetime in seconds.
pub const TOKEN_EXPIRATION: &str = "eks.amazonaws.com/token-expiration";
/// The annotations kept of a ServiceAccount (the rest is dropped where they are cached).
pub const ALL: [&str; 4] = [ROLE_ARN, AUDIENCE, STS_REGIONAL_ENDPOINTS, TOKEN_EXPIRATION];
/// The longest value used (a role ARN is at most 2048 characters with a 512-character path,
/// an audience is a URL or name): longer ones make the role annotation unusable.
pub const MAX_VALUE_LEN: usize = 1024;

/// What a ServiceAccount's annotations say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Annotated {
    /// No role annotation: the map decides.
    Nothing,
    /// A role and its settings.
    Role(Mapped),
    /// A role annotation that cannot be used; the warning names it and why.
    Unusable(String),
}

/// Reads the annotations of ServiceAccount `namespace`/`name`.
pub fn read(namespace: &str, name: &str, annotations: &BTreeMap<String, String>) -> Annotated {
    let Some(role_arn) = annotations.get(ROLE_ARN).map(|v| v.trim()) else {
        return Annotated::Nothing;
    };
    if role_arn.is_empty() {
        return Annotated::Nothing;
    }
    if let Some(key) = ALL.iter().find(|key| {
        annotations
            .get(**key)
            .is_some_and(|v| v.len() > MAX_VALUE_LEN)
    }) {
        return Annotated::Unusable(format!(
            "issuerd webhook: ServiceAccount {namespace}/{name}: annotation {key} is over \
             {MAX_VALUE_LEN} bytes; the role annotation is not used"
        ));
    }
    if let Err(error) = role_arn.parse::<RoleArn>() {
        return Annotated::Unusable(format!(
            "issuerd webhook: ServiceAccount {namespace}/{name}: annotation {ROLE_ARN} is not a \
             role ARN ({error}); it is not used"
        ));
    }
    Annotated::Role(Mapped {
        role_arn: role_arn.to_owned(),
        audience: annotations
            .get(AUDIENCE)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        regional_sts: annotations
            .get(STS_REGIONAL_ENDPOINTS)
            .and_then(|v| go_parse_bool(v.trim())),
        token_expiration: annotations
            .get(TOKEN_EXPIRATION)
            .and_then(|v| v.trim().parse::<u32>().ok()),
    })
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_role_with_every_setting() {
        let read = read(
            "ns",
            "sa",
            &annotations(&[
                (ROLE_ARN, "arn:aws:iam::111122223333:role/app"),
                (AUDIENCE, "vault"),
                (STS_REGIONAL_ENDPOINTS, "TRUE"),
                (TOKEN_EXPIRATION, "3600"),
                ("other/annotation", "x"),
            ]),
        );
        assert_eq!(
            read,
            Annotated::Role(Mapped {
                role_arn: "arn:aws:iam::111122223333:role/app".into(),
                audience: Some("vault".into()),
                regional_sts: Some(true),
                token_expiration: Some(3600),
            })
        );
    }

    #[test]
    fn settings_that_do_not_parse_fall_back_to_the_flags() {
        let read = read(
            "ns",
            "sa",
            &annotations(&[
                (ROLE_ARN, " arn:aws-cn:iam::111122223333:role/path/app "),
                (AUDIENCE, ""),
                (STS_REGIONAL_ENDPOINTS, "yes"),
                (TOKEN_EXPIRATION, "1h"),
            ]),
        );
        assert_eq!(
            read,
            Annotated::Role(Mapped {
                role_arn: "arn:aws-cn:iam::111122223333:role/path/app".into(),
                audience: None,
                regional_sts: None,
                token_expiration: None,
            })
        );
    }

    #[test]
    fn no_role_means_nothing_and_a_bad_role_is_named() {
        assert_eq!(read("ns", "sa", &annotations(&[])), Annotated::Nothing);
        assert_eq!(
            read(
                "ns",
                "sa",
                &annotations(&[(AUDIENCE, "x"), (ROLE_ARN, " ")])
            ),
            Annotated::Nothing
        );
        let Annotated::Unusable(warning) = read(
            "team",
            "app",
            &annotations(&[(ROLE_ARN, "arn:aws:iam:111122223333:role/app")]),
        ) else {
            panic!("a malformed ARN is unusable");
        };
        assert!(warning.contains("team/app"), "{warning}");
        assert!(warning.contains(ROLE_ARN), "{warning}");
    }

    #[test]
    fn a_value_over_the_cap_makes_the_role_unusable() {
        let long = "a".repeat(MAX_VALUE_LEN + 1);
        let Annotated::Unusable(warning) = read(
            "ns",
            "sa",
            &annotations(&[
                (ROLE_ARN, "arn:aws:iam::111122223333:role/app"),
                (AUDIENCE, &long),
            ]),
        ) else {
            panic!("an over-long audience is refused");
        };
        assert!(warning.contains(AUDIENCE), "{warning}");
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(go_parse_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(go_parse_bool(f), Some(false));
        }
        assert_eq!(go_parse_bool("yes"), None);
        assert_eq!(go_parse_bool("tRUE"), None);
    }
}
