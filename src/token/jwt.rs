//! A compact JWS, taken apart without verifying anything: header, claims, signing input and
//! signature. Verification is [`super::verify`]'s job.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Tokens larger than this are refused unparsed (AWS's limit is 20 000 characters).
pub const MAX_TOKEN_LEN: usize = 20_000;

/// A parsed, unverified token.
#[derive(Clone, Debug)]
pub struct Jwt {
    /// `alg`.
    pub alg: String,
    /// `kid`, if present (an empty kid is kept as empty: it is a different failure).
    pub kid: Option<String>,
    /// The claims that matter for verification.
    pub claims: PresentedClaims,
    /// Every claim, as sent (printed by `verify`).
    pub raw_claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

/// The registered claims a verifier reads, as presented (any may be missing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresentedClaims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `aud`, a string or an array; empty when absent.
    pub aud: Vec<String>,
    /// `exp`, seconds.
    pub exp: Option<i64>,
    /// `nbf`, seconds.
    pub nbf: Option<i64>,
    /// `iat`, seconds.
    pub iat: Option<i64>,
    /// `amr`, a string or an array; empty when absent.
    pub amr: Vec<String>,
}

impl Jwt {
    /// Splits and decodes `header.claims.signature`. The error names what is wrong, never the
    /// token.
    pub fn parse(token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_LEN {
            return Err(format!(
                "token is {} bytes; at most {MAX_TOKEN_LEN} are accepted",
                token.len()
            ));
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else {
            return Err(format!(
                "not a JWT: expected 3 dot-separated parts, found {}",
                parts.len()
            ));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| format!("not a JWT: the {what} is not base64url"))
        };
        let json = |bytes: Vec<u8>, what: &str| -> Result<Value, String> {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(value @ Value::Object(_)) => Ok(value),
                _ => Err(format!("not a JWT: the {what} is not a JSON object")),
            }
        };
        let header = json(decode(header, "header")?, "header")?;
        let raw_claims = json(decode(claims, "payload")?, "payload")?;
        let signature = decode(signature, "signature")?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.clone(),
            _ => return Err("the JWT header has no \"alg\"".into()),
        };
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err("the JWT header's \"kid\" is not a string".into()),
        };
        let claims = PresentedClaims::from_json(&raw_claims)?;
        Ok(Self {
            alg,
            kid,
            claims,
            raw_claims,
            signing_input: format!("{}.{}", parts[0], parts[1]),
            signature,
        })
    }

    /// `base64url(header) "." base64url(claims)`: the signed bytes.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The raw signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

impl PresentedClaims {
    fn from_json(claims: &Value) -> Result<Self, String> {
        let string = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("claim \"{name}\" is not a string")),
        };
        let strings = |name: &str| match claims.get(name) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("claim \"{name}\" is not a string or array of strings")),
            Some(_) => Err(format!(
                "claim \"{name}\" is not a string or array of strings"
            )),
        };
        let time = |name: &str| match claims.get(name) {
            None => Ok(None),
            // NumericDate may carry a fraction; whole seconds are enough here.
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f.floor() as i64))
                .map(Some)
                .ok_or_else(|| format!("claim \"{name}\" is not a number")),
            Some(_) => Err(format!("claim \"{name}\" is not a number (NumericDate)")),
        };
        Ok(Self {
            iss: string("iss")?,
            sub: string("sub")?,
            aud: strings("aud")?,
            exp: time("exp")?,
            nbf: time("nbf")?,
            iat: time("iat")?,
            amr: strings("amr")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn parses_header_and_claims() {
        let token = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"k1"}"#),
            b64(r#"{"iss":"https://i","aud":"a","exp":10,"nbf":1.5,"amr":["x"]}"#),
            b64("sig")
        );
        let jwt = Jwt::parse(&token).unwrap();
        assert_eq!(
            (jwt.alg.as_str(), jwt.kid.as_deref()),
            ("RS256", Some("k1"))
        );
        assert_eq!(jwt.claims.aud, ["a"]);
        assert_eq!((jwt.claims.exp, jwt.claims.nbf), (Some(10), Some(1)));
        assert_eq!(jwt.claims.amr, ["x"]);
        assert_eq!(jwt.signature(), b"sig");
    }

    #[test]
    fn refuses_what_is_not_a_jwt() {
        for bad in ["not-a-jwt", "a.b", "a.b.c.d", "!!.e30.e30"] {
            assert!(
                Jwt::parse(bad).unwrap_err().starts_with("not a JWT"),
                "{bad}"
            );
        }
        let no_alg = format!("{}.{}.", b64("{}"), b64("{}"));
        assert!(Jwt::parse(&no_alg).unwrap_err().contains("alg"));
    }
}
