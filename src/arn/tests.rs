use super::*;

fn problem(text: &str) -> Problem {
    match text.parse::<RoleArn>() {
        Ok(arn) => panic!("{text:?} parsed as {arn:?}"),
        Err(ArnError::Role { value, problem }) => {
            assert_eq!(value, text);
            problem
        }
        Err(other) => panic!("{text:?}: {other:?}"),
    }
}

#[test]
fn valid_role_arns_parse_into_their_parts() {
    let name64 = "n".repeat(64);
    let path512 = format!("/{}/", "p".repeat(510));
    let long = format!("arn:aws:iam::111122223333:role{path512}{name64}");
    let cases: &[(&str, &str, &str, &str)] = &[
        ("arn:aws:iam::111122223333:role/app", "aws", "/", "app"),
        (
            "arn:aws-cn:iam::111122223333:role/app",
            "aws-cn",
            "/",
            "app",
        ),
        (
            "arn:aws-us-gov:iam::111122223333:role/app",
            "aws-us-gov",
            "/",
            "app",
        ),
        (
            "arn:aws-iso:iam::111122223333:role/app",
            "aws-iso",
            "/",
            "app",
        ),
        (
            "arn:aws-iso-b:iam::111122223333:role/app",
            "aws-iso-b",
            "/",
            "app",
        ),
        (
            "arn:aws-iso-e:iam::111122223333:role/app",
            "aws-iso-e",
            "/",
            "app",
        ),
        (
            "arn:aws-iso-f:iam::111122223333:role/app",
            "aws-iso-f",
            "/",
            "app",
        ),
        (
            "arn:aws-eusc:iam::111122223333:role/app",
            "aws-eusc",
            "/",
            "app",
        ),
        // Paths: one segment, several, IAM's service-role paths, any printable ASCII.
        (
            "arn:aws:iam::111122223333:role/team/app",
            "aws",
            "/team/",
            "app",
        ),
        (
            "arn:aws:iam::111122223333:role/a/b/c/app",
            "aws",
            "/a/b/c/",
            "app",
        ),
        (
            "arn:aws:iam::111122223333:role/aws-service-role/eks.amazonaws.com/AWSServiceRoleForAmazonEKS",
            "aws",
            "/aws-service-role/eks.amazonaws.com/",
            "AWSServiceRoleForAmazonEKS",
        ),
        (
            "arn:aws:iam::111122223333:role/a:b~!/app",
            "aws",
            "/a:b~!/",
            "app",
        ),
        // Every character a name may hold; one character; 64.
        (
            "arn:aws:iam::111122223333:role/Az09_+=,.@-",
            "aws",
            "/",
            "Az09_+=,.@-",
        ),
        ("arn:aws:iam::111122223333:role/a", "aws", "/", "a"),
        (&long, "aws", &path512, &name64),
    ];
    for &(text, partition, path, name) in cases {
        let arn: RoleArn = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(arn.as_str(), text);
        assert_eq!(arn.to_string(), text);
        assert_eq!(arn.partition().as_str(), partition, "{text}");
        assert_eq!(arn.account().as_str(), "111122223333", "{text}");
        assert_eq!(arn.path(), path, "{text}");
        assert_eq!(arn.name(), name, "{text}");
    }
}

#[test]
fn malformed_role_arns_are_refused_with_the_reason() {
    let name65 = format!("arn:aws:iam::111122223333:role/{}", "n".repeat(65));
    let path513 = format!("/{}/", "p".repeat(511));
    let long_path = format!("arn:aws:iam::111122223333:role{path513}app");
    let cases: &[(&str, Problem)] = &[
        // The case: the empty region's colon is missing.
        ("arn:aws:iam:111122223333:role/app", Problem::MissingColon),
        (
            "arn:aws:iam:111122223333:role/a:b/app",
            Problem::MissingColon,
        ),
        ("arn:aws:iam::111122223333role/app", Problem::Fields(5)),
        ("arn:aws:iam", Problem::Fields(3)),
        ("role/app", Problem::NotArn),
        ("", Problem::NotArn),
        ("ARN:aws:iam::111122223333:role/app", Problem::NotArn),
        ("app", Problem::NotArn),
        // Partitions: not aws[-a-z]*.
        (
            "arn:AWS:iam::111122223333:role/app",
            Problem::Partition("AWS".into()),
        ),
        (
            "arn:aws_cn:iam::111122223333:role/app",
            Problem::Partition("aws_cn".into()),
        ),
        (
            "arn:aws-iso-2:iam::111122223333:role/app",
            Problem::Partition("aws-iso-2".into()),
        ),
        (
            "arn:amazon:iam::111122223333:role/app",
            Problem::Partition("amazon".into()),
        ),
        (
            "arn::iam::111122223333:role/app",
            Problem::Partition(String::new()),
        ),
        // Service and region.
        (
            "arn:aws:sts::111122223333:role/app",
            Problem::Service("sts".into()),
        ),
        (
            "arn:aws:iam:us-east-1:111122223333:role/app",
            Problem::Region("us-east-1".into()),
        ),
        // Accounts: short, long, not digits, empty.
        (
            "arn:aws:iam::11112222333:role/app",
            Problem::Account("11112222333".into()),
        ),
        (
            "arn:aws:iam::1111222233334:role/app",
            Problem::Account("1111222233334".into()),
        ),
        (
            "arn:aws:iam::11112222333x:role/app",
            Problem::Account("11112222333x".into()),
        ),
        ("arn:aws:iam:::role/app", Problem::Account(String::new())),
        // Resources other than a role.
        (
            "arn:aws:iam::111122223333:user/app",
            Problem::NotRole("user/app".into()),
        ),
        (
            "arn:aws:iam::111122223333:oidc-provider/oidc.example.com",
            Problem::NotRole("oidc-provider/oidc.example.com".into()),
        ),
        (
            "arn:aws:iam::111122223333:role:app",
            Problem::NotRole("role:app".into()),
        ),
        (
            "arn:aws:iam::111122223333:roles/app",
            Problem::NotRole("roles/app".into()),
        ),
        (
            "arn:aws:iam::111122223333:role",
            Problem::NotRole("role".into()),
        ),
        // Names: empty, 65, characters outside [\w+=,.@-].
        (
            "arn:aws:iam::111122223333:role/",
            Problem::Name(String::new()),
        ),
        (
            "arn:aws:iam::111122223333:role/team/",
            Problem::Name(String::new()),
        ),
        (&name65, Problem::Name("n".repeat(65))),
        (
            "arn:aws:iam::111122223333:role/my app",
            Problem::Name("my app".into()),
        ),
        (
            "arn:aws:iam::111122223333:role/app*",
            Problem::Name("app*".into()),
        ),
        (
            "arn:aws:iam::111122223333:role/app:x",
            Problem::Name("app:x".into()),
        ),
        (
            "arn:aws:iam::111122223333:role/appé",
            Problem::Name("appé".into()),
        ),
        // Paths: an empty segment alone, spaces, non-ASCII, over 512.
        (
            "arn:aws:iam::111122223333:role//app",
            Problem::Path("//".into()),
        ),
        (
            "arn:aws:iam::111122223333:role/a b/app",
            Problem::Path("/a b/".into()),
        ),
        (
            "arn:aws:iam::111122223333:role/é/app",
            Problem::Path("/é/".into()),
        ),
        (&long_path, Problem::Path(path513)),
    ];
    for (text, expected) in cases {
        assert_eq!(&problem(text), expected, "{text}");
    }
}

#[test]
fn the_message_names_the_value_the_problem_and_the_expected_form() {
    let error = "arn:aws:iam:111122223333:role/app"
        .parse::<RoleArn>()
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "role ARN \"arn:aws:iam:111122223333:role/app\": a colon is missing before the account \
         (IAM ARNs have an empty region: iam::ACCOUNT); expected \
         arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME"
    );
    let error = "arn:AWS:iam::111122223333:role/app"
        .parse::<RoleArn>()
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "role ARN \"arn:AWS:iam::111122223333:role/app\": partition \"AWS\" is not aws or aws \
         followed by lowercase letters and hyphens (aws-cn, aws-us-gov, aws-iso-b, ...); \
         expected arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME"
    );
}

#[test]
fn accounts_are_twelve_digits() {
    assert_eq!(
        "111122223333".parse::<AccountId>().unwrap().as_str(),
        "111122223333"
    );
    for bad in [
        "",
        "12",
        "11112222333",
        "1111222233334",
        "11112222333a",
        " 111122223333",
    ] {
        let error = bad.parse::<AccountId>().unwrap_err();
        assert_eq!(
            error,
            ArnError::Account {
                value: bad.to_owned()
            }
        );
        assert!(error.to_string().contains("12-digit"), "{error}");
    }
}

#[test]
fn partitions_are_aws_and_what_is_named_after_it() {
    // The SDKs' partitions, and one not yet in them.
    for good in [
        "aws",
        "aws-cn",
        "aws-us-gov",
        "aws-iso",
        "aws-iso-b",
        "aws-iso-e",
        "aws-iso-f",
        "aws-eusc",
        "aws-new-partition",
    ] {
        assert_eq!(good.parse::<Partition>().unwrap().as_str(), good);
    }
    assert_eq!("aws".parse::<Partition>(), Ok(Partition::AWS));
    assert_eq!("aws-cn".parse::<Partition>(), Ok(Partition::AWS_CN));
    assert_eq!("aws-us-gov".parse::<Partition>(), Ok(Partition::AWS_US_GOV));
    for bad in [
        "",
        "aw",
        "AWS",
        "Aws-cn",
        "aws_cn",
        "aws-iso-2",
        "aws cn",
        "gcp",
        " aws",
    ] {
        let error = bad.parse::<Partition>().unwrap_err();
        assert_eq!(
            error,
            ArnError::Partition {
                value: bad.to_owned()
            }
        );
        assert!(error.to_string().ends_with(PARTITION_FORM), "{error}");
    }
}

#[test]
fn the_arn_shape_is_six_fields_with_partition_service_and_resource() {
    for shaped in [
        "arn:aws:iam::111122223333:role/app",
        "arn:a:b:::something/test-role",
        "arn:aws:iam::111122223333:user/app",
        "arn:aws:iam::1111:role/app",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::111122223333:role/a:b/app",
        // Six fields, the account in the region: an ARN's shape, but no role's.
        "arn:aws:iam:111122223333:role/a:b/app",
    ] {
        assert!(has_arn_shape(shaped), "{shaped}");
    }
    // STS's own examples of ARNs it calls invalid, and the issue's.
    for unshaped in [
        "nothing-valid-in-here",
        "arn::b:::something/test-role",
        "arn:a::::something/test-role",
        "arn:a:::something/test-role",
        "arn:a:a::aaaaaaaaaa:",
        "arn:aws:iam:111122223333:role/app",
        "ARN:aws:iam::111122223333:role/app",
        "",
    ] {
        assert!(!has_arn_shape(unshaped), "{unshaped}");
    }
}

#[test]
fn built_arns_carry_the_partition_and_account() {
    let role: RoleArn = "arn:aws-cn:iam::111122223333:role/team/app"
        .parse()
        .unwrap();
    assert_eq!(
        role.assumed_role("s1"),
        "arn:aws-cn:sts::111122223333:assumed-role/app/s1"
    );
    assert_eq!(
        oidc_provider(role.partition(), role.account(), "oidc.example.com/c"),
        "arn:aws-cn:iam::111122223333:oidc-provider/oidc.example.com/c"
    );
}
