//! The issuer identity: the `iss` URL as given, the JWKS URI, the paths they are served at, and
//! what is published under them ([`Publication`]).

use url::Url;

/// Paths the server keeps for itself; no issuer document may be served there.
pub const RESERVED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/statusz"];

/// Suffix of the discovery document path under the issuer.
pub const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";

/// Suffix of the default JWKS path under the issuer (kube-apiserver's `/openid/v1/jwks`).
pub const JWKS_SUFFIX: &str = "/openid/v1/jwks";

/// Which discovery document shape to publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryProfile {
    /// Exactly what kube-apiserver serves.
    #[default]
    Kubernetes,
    /// What kOps publishes: adds `authorization_endpoint` and `claims_supported`, which strict
    /// OIDC libraries require.
    Kops,
}

/// What is published besides the keys: the issuer, the document shape and the cache lifetime.
#[derive(Clone, Debug)]
pub struct Publication {
    /// The issuer.
    pub issuer: Issuer,
    /// Discovery document shape.
    pub profile: DiscoveryProfile,
    /// `Cache-Control: public, max-age=N`.
    pub max_age_secs: u32,
}

/// A validated issuer. The issuer string is published exactly as given: consumers compare it
/// byte for byte with the `iss` claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuer {
    issuer: String,
    jwks_uri: String,
    discovery_path: String,
    jwks_path: String,
    warnings: Vec<String>,
}

impl Issuer {
    /// Validates the issuer (and an optional JWKS URI override) as kube-apiserver does: absolute
    /// `https` URLs without query or fragment. `allow_insecure` also permits `http`.
    pub fn new(
        issuer: &str,
        jwks_uri: Option<&str>,
        allow_insecure: bool,
    ) -> Result<Self, IssuerError> {
        let issuer_url = validate("issuer", issuer, allow_insecure)?;
        let base = issuer.trim_end_matches('/');
        let jwks_uri = jwks_uri.map_or_else(|| format!("{base}{JWKS_SUFFIX}"), str::to_owned);
        let jwks_url = validate("jwks_uri", &jwks_uri, allow_insecure)?;

        let discovery_path = format!(
            "{}{DISCOVERY_SUFFIX}",
            issuer_url.path().trim_end_matches('/')
        );
        let jwks_path = jwks_url.path().to_owned();
        if jwks_path == discovery_path {
            return Err(IssuerError::Invalid {
                field: "jwks_uri",
                value: jwks_uri,
                reason: "is the discovery document's own path".into(),
            });
        }
        if RESERVED_PATHS.contains(&jwks_path.as_str()) {
            return Err(IssuerError::Invalid {
                field: "jwks_uri",
                value: jwks_uri,
                reason: format!("path {jwks_path} is reserved for the server's health endpoints"),
            });
        }

        let mut warnings = Vec::new();
        if issuer.ends_with('/') {
            warnings.push(format!(
                "issuer {issuer:?} ends with '/': tokens must carry exactly this iss, and most \
                 clients (go-oidc, AWS STS) compare it byte for byte"
            ));
        }
        for (field, url) in [("issuer", &issuer_url), ("jwks_uri", &jwks_url)] {
            if url.scheme() == "http" {
                warnings.push(format!(
                    "{field} uses http: only for local testing, no real relying party accepts it"
                ));
            }
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            jwks_uri,
            discovery_path,
            jwks_path,
            warnings,
        })
    }

    /// The issuer URL exactly as configured.
    pub fn url(&self) -> &str {
        &self.issuer
    }

    /// The issuer URL's host, lowercase, without an IPv6 address's brackets: the name relying
    /// parties check against the TLS certificate.
    pub fn host(&self) -> Option<String> {
        let url = Url::parse(self.url()).ok()?;
        let host = url.host_str()?.trim_matches(['[', ']']);
        Some(host.to_ascii_lowercase())
    }

    /// The JWKS URI published in the discovery document.
    pub fn jwks_uri(&self) -> &str {
        &self.jwks_uri
    }

    /// The request path of the discovery document, e.g. `/.well-known/openid-configuration`.
    pub fn discovery_path(&self) -> &str {
        &self.discovery_path
    }

    /// The request path of the JWKS, e.g. `/openid/v1/jwks`.
    pub fn jwks_path(&self) -> &str {
        &self.jwks_path
    }

    /// Things that are allowed but probably wrong, for the caller to log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn validate(field: &'static str, value: &str, allow_insecure: bool) -> Result<Url, IssuerError> {
    let invalid = |reason: &str| IssuerError::Invalid {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(value).map_err(|e| invalid(&format!("is not an absolute URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(invalid(
                "must use https (pass --allow-insecure-issuer for local testing)",
            ));
        }
        _ => return Err(invalid("must use https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if url.query().is_some() {
        return Err(invalid("must not have a query"));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry user information"));
    }
    Ok(url)
}

/// An issuer or JWKS URI that cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The value breaks one of kube-apiserver's rules.
    #[error("{field} {value:?} {reason}")]
    Invalid {
        /// `issuer` or `jwks_uri`.
        field: &'static str,
        /// The value given.
        value: String,
        /// Which rule.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_what_a_certificate_must_name() {
        let host = |url| Issuer::new(url, None, true).unwrap().host();
        assert_eq!(
            host("https://OIDC.Example.com/c/a").as_deref(),
            Some("oidc.example.com")
        );
        assert_eq!(host("https://[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(host("https://127.0.0.1").as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn paths_follow_the_issuer_path() {
        let issuer = Issuer::new("https://h.example/clusters/a", None, false).unwrap();
        assert_eq!(
            issuer.discovery_path(),
            "/clusters/a/.well-known/openid-configuration"
        );
        assert_eq!(
            issuer.jwks_uri(),
            "https://h.example/clusters/a/openid/v1/jwks"
        );
        assert_eq!(issuer.jwks_path(), "/clusters/a/openid/v1/jwks");
        assert!(issuer.warnings().is_empty());
    }

    #[test]
    fn bare_host_serves_at_the_root() {
        let issuer = Issuer::new("https://h.example", None, false).unwrap();
        assert_eq!(issuer.discovery_path(), "/.well-known/openid-configuration");
        assert_eq!(issuer.jwks_path(), "/openid/v1/jwks");
    }

    #[test]
    fn trailing_slash_is_kept_warned_and_not_doubled() {
        let issuer = Issuer::new("https://h.example/a/", None, false).unwrap();
        assert_eq!(issuer.url(), "https://h.example/a/");
        assert_eq!(issuer.jwks_uri(), "https://h.example/a/openid/v1/jwks");
        assert_eq!(
            issuer.discovery_path(),
            "/a/.well-known/openid-configuration"
        );
        assert_eq!(issuer.warnings().len(), 1);
    }

    #[test]
    fn jwks_uri_override_sets_the_jwks_path() {
        let issuer = Issuer::new(
            "https://h.example",
            Some("https://cdn.example/keys.json"),
            false,
        )
        .unwrap();
        assert_eq!(issuer.jwks_uri(), "https://cdn.example/keys.json");
        assert_eq!(issuer.jwks_path(), "/keys.json");
    }

    #[test]
    fn refuses_what_kube_apiserver_refuses() {
        for bad in [
            "h.example",
            "/relative",
            "ftp://h.example",
            "http://h.example",
            "https://h.example?x=1",
            "https://h.example#frag",
            "https://user:pw@h.example",
        ] {
            let err = Issuer::new(bad, None, false).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn http_needs_the_insecure_flag_and_warns() {
        let issuer = Issuer::new("http://127.0.0.1:8080", None, true).unwrap();
        assert_eq!(issuer.warnings().len(), 2);
    }

    #[test]
    fn reserved_and_clashing_jwks_paths_are_refused() {
        assert!(Issuer::new("https://h", Some("https://h/healthz"), false).is_err());
        assert!(
            Issuer::new(
                "https://h",
                Some("https://h/.well-known/openid-configuration"),
                false
            )
            .is_err()
        );
    }
}
