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
    let cases: &[(&str, Partition, &str, &str)] = &[
        (
            "arn:aws:iam::111122223333:role/app",
            Partition::Aws,
            "/",
            "app",
        ),
        (
            "arn:aws-cn:iam::111122223333:role/app",
            Partition::AwsCn,
            "/",
            "app",
        ),
        (
            "arn:aws-us-gov:iam::111122223333:role/app",
            Partition::AwsUsGov,
            "/",
            "app",
        ),
        (
            "arn:aws-iso:iam::111122223333:role/app",
            Partition::AwsIso,
            "/",
            "app",
        ),
        (
            "arn:aws-iso-b:iam::111122223333:role/app",
            Partition::AwsIsoB,
            "/",
            "app",
        ),
        (
            "arn:aws-iso-e:iam::111122223333:role/app",
            Partition::AwsIsoE,
            "/",
            "app",
        ),
        (
            "arn:aws-iso-f:iam::111122223333:role/app",
            Partition::AwsIsoF,
            "/",
            "app",
        ),
        (
            "arn:aws-eusc:iam::111122223333:role/app",
            Partition::AwsEusc,
            "/",
            "app",
        ),
        // Paths: one segment, several, IAM's service-role paths, any printable ASCII.
        (
            "arn:aws:iam::111122223333:role/team/app",
            Partition::Aws,
            "/team/",
            "app",
        ),
        (
            "arn:aws:iam::111122223333:role/a/b/c/app",
            Partition::Aws,
            "/a/b/c/",
            "app",
        ),
        (
            "arn:aws:iam::111122223333:role/aws-service-role/eks.amazonaws.com/AWSServiceRoleForAmazonEKS",
            Partition::Aws,
            "/aws-service-role/eks.amazonaws.com/",
            "AWSServiceRoleForAmazonEKS",
        ),
        (
            "arn:aws:iam::111122223333:role/a:b~!/app",
            Partition::Aws,
            "/a:b~!/",
            "app",
        ),
        // Every character a name may hold; one character; 64.
        (
            "arn:aws:iam::111122223333:role/Az09_+=,.@-",
            Partition::Aws,
            "/",
            "Az09_+=,.@-",
        ),
        ("arn:aws:iam::111122223333:role/a", Partition::Aws, "/", "a"),
        (&long, Partition::Aws, &path512, &name64),
    ];
    for &(text, partition, path, name) in cases {
        let arn: RoleArn = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(arn.as_str(), text);
        assert_eq!(arn.to_string(), text);
        assert_eq!(arn.partition(), partition, "{text}");
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
        // Partitions: unknown, misspelled, case.
        (
            "arn:aws-eu:iam::111122223333:role/app",
            Problem::Partition("aws-eu".into()),
        ),
        (
            "arn:aws-isob:iam::111122223333:role/app",
            Problem::Partition("aws-isob".into()),
        ),
        (
            "arn:AWS:iam::111122223333:role/app",
            Problem::Partition("AWS".into()),
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
        (&long_path, Problem::Path(path513.clone())),
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
    let error = "arn:aws-eu:iam::111122223333:role/app"
        .parse::<RoleArn>()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("\"aws-eu\" is not one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b")
            && error.ends_with(ROLE_ARN_FORM),
        "{error}"
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
fn partitions_are_the_sdks_list() {
    for partition in Partition::ALL {
        assert_eq!(partition.as_str().parse::<Partition>(), Ok(partition));
    }
    let ids: Vec<&str> = Partition::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        ids,
        [
            "aws",
            "aws-cn",
            "aws-us-gov",
            "aws-iso",
            "aws-iso-b",
            "aws-iso-e",
            "aws-iso-f",
            "aws-eusc"
        ]
    );
    for bad in ["", "AWS", "aws-china", "aws-iso-z"] {
        assert!(bad.parse::<Partition>().is_err(), "{bad}");
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
