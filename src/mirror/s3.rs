//! S3 (and S3-compatible) implementation of [`ObjectSink`] on `object_store`.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer as _};
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, ObjectStore as _, PutOptions,
    PutPayload, RetryConfig,
};

use super::{MirrorError, Object, ObjectSink};
use crate::bucket::MirrorConfig;

/// How long one request to the bucket may take (the mirror retries on its own schedule).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Objects in an S3 bucket, through `object_store` (SigV4 with aws-lc-rs, reqwest with rustls).
#[derive(Debug)]
pub struct S3Sink {
    store: AmazonS3,
    http: reqwest::Client,
}

impl S3Sink {
    /// A client for `config`: credentials from `config.credentials` or else the standard AWS chain
    /// (`AWS_*` env, web identity token file as IRSA gives pods, container and instance metadata).
    pub fn new(config: &MirrorConfig) -> Result<Self, MirrorError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.target.bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_allow_http(true),
            )
            // A couple of quick retries for a dropped connection; the mirror does the long wait.
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_millis(500),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: REQUEST_TIMEOUT,
            });
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(credentials) = &config.credentials {
            builder = builder
                .with_access_key_id(&credentials.access_key_id)
                .with_secret_access_key(&credentials.secret_access_key);
        }
        let store = builder.build().map_err(MirrorError::Client)?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(MirrorError::HttpClient)?;
        Ok(Self { store, http })
    }
}

impl ObjectSink for S3Sink {
    async fn get(&self, key: &str) -> Result<Option<Object>, MirrorError> {
        let read = |error: &object_store::Error| MirrorError::Read {
            key: key.to_owned(),
            reason: summarize(error),
        };
        let result = match self
            .store
            .get_opts(&Path::from(key), GetOptions::default())
            .await
        {
            Ok(result) => result,
            // A missing bucket is a 404 too, but not a missing object.
            Err(e @ object_store::Error::NotFound { .. })
                if !e.to_string().contains("NoSuchBucket") =>
            {
                return Ok(None);
            }
            Err(e) => {
                let mut error = read(&e);
                if let MirrorError::Read { reason, .. } = &mut error
                    && reason.contains("AccessDenied")
                {
                    reason.push_str(
                        " (S3 answers a missing object with 403 when the writer lacks \
                         s3:ListBucket)",
                    );
                }
                return Err(error);
            }
        };
        let attribute = |name| {
            result
                .attributes
                .get(&name)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        let content_type = attribute(Attribute::ContentType);
        let cache_control = attribute(Attribute::CacheControl);
        let body = result.bytes().await.map_err(|e| read(&e))?;
        Ok(Some(Object {
            body,
            content_type,
            cache_control,
        }))
    }

    async fn put(&self, key: &str, object: &Object) -> Result<(), MirrorError> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, object.content_type.clone().into());
        attributes.insert(Attribute::CacheControl, object.cache_control.clone().into());
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(
                &Path::from(key),
                PutPayload::from(object.body.clone()),
                options,
            )
            .await
            .map_err(|error| MirrorError::Write {
                key: key.to_owned(),
                reason: summarize(&error),
            })?;
        Ok(())
    }

    /// `PutObjectAcl` through a presigned URL (object_store signs it; it has no ACL call).
    async fn set_public_read(&self, key: &str) -> Result<(), MirrorError> {
        let failed = |reason: String| MirrorError::Acl {
            key: key.to_owned(),
            reason,
        };
        let acl = HeaderName::from_static("x-amz-acl");
        let public_read = HeaderValue::from_static("public-read");
        let options = SignedUrlOptions::default()
            .with_query([("acl", "")])
            .with_signed_header(acl.clone(), public_read.clone());
        let url = self
            .store
            .signed_url_opts(
                Method::PUT,
                &Path::from(key),
                Duration::from_secs(300),
                &options,
            )
            .await
            .map_err(|e| failed(format!("cannot sign the request ({e})")))?;
        let response = self
            .http
            .put(url)
            .header(acl, public_read)
            .send()
            .await
            .map_err(|e| failed(format!("request failed ({})", crate::log::error_chain(&e))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(failed(acl_refusal(status, &body)))
    }
}

/// Why a `PutObjectAcl` was refused, with what to do about the common case.
fn acl_refusal(status: reqwest::StatusCode, body: &str) -> String {
    let code = between(body, "<Code>", "</Code>").unwrap_or_default();
    let hint = if code == "AccessControlListNotSupported" {
        ": the bucket enforces bucket-owner object ownership and refuses ACLs; drop \
         --mirror-acl and grant public reads with a bucket policy instead"
    } else {
        ""
    };
    format!("HTTP {status} {code}{hint}")
}

/// One line for an object_store error: the HTTP status with S3's error code and message when the
/// store answered (object_store repeats the whole XML body at every level of its chain), else the
/// chain of causes (connection refused, timeout, credentials).
pub fn summarize(error: &object_store::Error) -> String {
    let text = error.to_string();
    if let Some(code) = between(&text, "<Code>", "</Code>") {
        let status = between(&text, "status code: ", ":")
            .unwrap_or("error")
            .trim();
        let message = between(&text, "<Message>", "</Message>").unwrap_or_default();
        let hint = match code {
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException" => {
                " (the bucket is in another region: set --s3-region or AWS_REGION)"
            }
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" => {
                " (check the credentials issuerd runs with)"
            }
            _ => "",
        };
        return format!("HTTP {status}, {code}: {message}{hint}");
    }
    let mut message = crate::log::error_chain(error);
    if message.len() > 500 {
        let mut end = 500;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_one_line_with_code_message_and_hint() {
        let body = "<?xml version=\"1.0\"?><Error><Code>PermanentRedirect</Code><Message>The bucket \
                    you are attempting to access must be addressed using the specified endpoint.\
                    </Message></Error>";
        let error = object_store::Error::Generic {
            store: "S3",
            source: format!(
                "Error performing GET http://x/b/k - Server returned non-2xx status code: 301 \
                 Moved Permanently: {body}: again {body}"
            )
            .into(),
        };
        assert_eq!(
            summarize(&error),
            "HTTP 301 Moved Permanently, PermanentRedirect: The bucket you are attempting to \
             access must be addressed using the specified endpoint. (the bucket is in another \
             region: set --s3-region or AWS_REGION)"
        );
        let refused = object_store::Error::Generic {
            store: "S3",
            source: "error sending request: Connection refused (os error 111)".into(),
        };
        assert!(summarize(&refused).contains("Connection refused"));
    }

    #[test]
    fn a_bucket_refusing_acls_is_explained() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessControlListNotSupported\
                    </Code><Message>The bucket does not allow ACLs</Message></Error>";
        let reason = acl_refusal(reqwest::StatusCode::BAD_REQUEST, body);
        assert!(
            reason.starts_with("HTTP 400 Bad Request AccessControlListNotSupported: the bucket"),
            "{reason}"
        );
        assert!(reason.contains("bucket policy"), "{reason}");
        let other = acl_refusal(reqwest::StatusCode::FORBIDDEN, "<Code>AccessDenied</Code>");
        assert_eq!(other, "HTTP 403 Forbidden AccessDenied");
    }
}
