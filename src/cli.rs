//! Command-line flags. Everything here is raw: `config` validates it and applies precedence
//! (flags > `ISSUERD_*` env > config file > defaults), so no flag carries a clap default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bucket::MirrorAcl;
use crate::issuer::DiscoveryProfile;

/// `issuerd --version`: the package version and the git revision built (`0.1.0 (abc1234)`,
/// `-dirty` when built from modified sources; see build.rs).
pub const VERSION: &str = env!("ISSUERD_VERSION");

/// The git revision built (`abc1234` or `abc1234-dirty`), or empty when built without git.
pub const GIT_REVISION: &str = env!("ISSUERD_GIT_REV");

/// Serves a Kubernetes ServiceAccount issuer's OpenID Connect discovery document and JWKS.
#[derive(Debug, Parser)]
#[command(name = "issuerd", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// TOML configuration file (unknown keys are an error).
    #[arg(long, global = true, env = "ISSUERD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format.
    #[arg(long, global = true, env = "ISSUERD_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing would only add an indirection"
)]
pub enum Command {
    /// Serve the discovery document and JWKS over HTTP, reloading keys as they change.
    Serve(ServeArgs),
    /// Write the documents into a directory laid out like the bucket that would serve them.
    Render(RenderArgs),
    /// Mint a token shaped like a projected ServiceAccount token, signed with a local key.
    Mint(MintArgs),
    /// Verify a token against its issuer as AWS STS and Vault do; print the claims or one
    /// precise diagnosis.
    Verify(VerifyArgs),
    /// Answer AWS STS AssumeRoleWithWebIdentity, really verifying tokens and trust policies.
    Sts(StsArgs),
    /// Print the IAM role trust policy for a ServiceAccount (self-hosted IRSA).
    TrustPolicy(TrustPolicyArgs),
    /// Print the pod wiring IRSA needs (env, projected token volume), as the EKS webhook injects it.
    PodEnv(PodEnvArgs),
    /// Check a live issuer as AWS STS and strict OIDC clients would use it; non-zero on failure.
    Check(CheckArgs),
    /// Upload the documents to a bucket once, read them back and check anonymous reads.
    Publish(PublishCommandArgs),
    /// GET a URL and exit 0 on 200, non-zero with a one-line reason otherwise (container health
    /// checks: the image has no shell or curl).
    Probe(ProbeArgs),
    /// Print the SHA-1 thumbprint AWS IAM pins for an OIDC provider, from a PEM chain file or a
    /// live https:// URL, and whether AWS will use it.
    Thumbprint(ThumbprintArgs),
    /// Print what configures HashiCorp Vault's JWT auth method to trust this issuer's tokens
    /// for one role: `vault write` commands, or the HTTP API requests with --json.
    VaultConfig(VaultConfigArgs),
    /// Run the mutating admission webhook that gives pods AWS credentials for their
    /// ServiceAccount's role (IRSA), from the IAM map: the EKS pod identity webhook's mutation.
    Webhook(WebhookArgs),
    /// Register the issuer with AWS IAM (its OIDC provider) and make one role per entry of the
    /// IAM map, as kOps names them: `plan` shows the changes, `apply` makes them.
    #[command(subcommand)]
    Aws(AwsCommand),
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// What is published: shared by `serve` and `render`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Issuer URL, exactly as in the tokens' `iss` claim (https, no query or fragment).
    #[arg(long, env = "ISSUERD_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,

    /// JWKS URL published in the discovery document [default: ISSUER/openid/v1/jwks].
    #[arg(long, env = "ISSUERD_JWKS_URI", value_name = "URL")]
    pub jwks_uri: Option<String>,

    /// Key file or directory (PEM public/private keys, certificates, or a JWKS `.json`);
    /// repeatable. The env variable takes a comma-separated list.
    #[arg(
        long = "key-file",
        env = "ISSUERD_KEY_FILE",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub key_files: Vec<PathBuf>,

    /// Discovery document shape [default: kubernetes].
    #[arg(long, env = "ISSUERD_DISCOVERY_PROFILE", value_name = "PROFILE")]
    pub discovery_profile: Option<DiscoveryProfile>,

    /// Allow an http:// issuer, for local testing only. A value may follow `=`: 1/0, yes/no,
    /// true/false, on/off (env too).
    #[arg(long, env = "ISSUERD_ALLOW_INSECURE_ISSUER", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_insecure_issuer: Option<bool>,

    /// Cache-Control max-age in seconds [default: 3600].
    #[arg(long, env = "ISSUERD_MAX_AGE", value_name = "SECONDS")]
    pub max_age: Option<u32>,
}

/// `issuerd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// What to publish.
    #[command(flatten)]
    pub publish: PublishArgs,

    /// Address to listen on, IP:PORT or HOST:PORT [default: 0.0.0.0:8080; 127.0.0.1:8080 with
    /// --dev].
    #[arg(long, env = "ISSUERD_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// Development mode: generate an ephemeral key pair and serve an http:// issuer on
    /// 127.0.0.1:8080. Never use in production.
    #[arg(long, conflicts_with_all = ["key_files", "from_kube_apiserver"])]
    pub dev: bool,

    /// Quiet time after a key file change before reloading [default: 100ms].
    #[arg(long, env = "ISSUERD_DEBOUNCE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub debounce: Option<Duration>,

    /// Re-read keys this often even without change events (NFS, FUSE) [default: 60s].
    #[arg(long, env = "ISSUERD_POLL_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,

    /// Also answer AWS STS AssumeRoleWithWebIdentity on this address (needs --sts-roles, or
    /// --dev, which generates a demo role and token).
    #[arg(long, env = "ISSUERD_STS_LISTEN", value_name = "ADDR")]
    pub sts_listen: Option<SocketAddr>,

    /// OIDC providers and roles for the STS (JSON; see `issuerd sts`).
    #[arg(long, env = "ISSUERD_STS_ROLES", value_name = "FILE")]
    pub sts_roles: Option<PathBuf>,

    /// Or the IAM map (kOps Cluster manifest or standalone): the STS gets the provider and roles
    /// `aws apply` makes from it for this issuer (needs --sts-account-id).
    #[arg(long, env = "ISSUERD_STS_CLUSTER_SPEC", value_name = "FILE")]
    pub sts_cluster_spec: Option<PathBuf>,

    /// The AWS account of the roles of --sts-cluster-spec (partition aws).
    #[arg(long, env = "ISSUERD_STS_ACCOUNT_ID", value_name = "ID")]
    pub sts_account_id: Option<String>,

    /// What to trust besides the public roots (`--ca-file`).
    #[command(flatten)]
    pub ca: CaArgs,

    /// How long in-flight requests may take to finish on SIGTERM [default: 10s].
    #[arg(long, env = "ISSUERD_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,

    /// Connection timeouts.
    #[command(flatten)]
    pub timeouts: TimeoutArgs,

    /// Connection limits.
    #[command(flatten)]
    pub limits: LimitArgs,

    /// After SIGTERM, keep accepting and serving this long with /readyz answering 503 (so load
    /// balancers move traffic away), then drain [default: 0s].
    #[arg(long, env = "ISSUERD_DRAIN_DELAY", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub drain_delay: Option<Duration>,

    /// Where to mirror the documents.
    #[command(flatten)]
    pub mirror: MirrorArgs,

    /// Answer /readyz with 503 while the bucket is behind what is served. A value may follow
    /// `=`: 1/0, yes/no, true/false, on/off (env too).
    #[arg(long, env = "ISSUERD_MIRROR_REQUIRED", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub mirror_required: Option<bool>,

    /// Serve HTTPS with this PEM certificate chain (leaf first); reloaded when it changes.
    #[arg(
        long,
        env = "ISSUERD_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519).
    #[arg(
        long,
        env = "ISSUERD_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Allow a port in an https issuer served over TLS (AWS IAM refuses such an issuer). A value
    /// may follow `=`: 1/0, yes/no, true/false, on/off (env too).
    #[arg(long, env = "ISSUERD_ALLOW_ISSUER_PORT", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_issuer_port: Option<bool>,
    /// Serve /metrics, /statusz, /healthz and /readyz on this address; /statusz then leaves
    /// the issuer listener [default: off].
    #[arg(long, env = "ISSUERD_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// Log every request (target issuerd::access: method, path, status, bytes, duration,
    /// protocol, peer). A value may follow `=`: 1/0, yes/no, true/false, on/off (env too).
    #[arg(long, env = "ISSUERD_ACCESS_LOG", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub access_log: Option<bool>,

    /// How connections are run: auto (a worker thread per core this process may use, each
    /// accepting on its own SO_REUSEPORT socket, as nginx's workers), a number of such
    /// workers, or shared (one multi-thread runtime, work stealing) [default: auto].
    #[arg(long, env = "ISSUERD_WORKERS", value_name = "auto|shared|N")]
    pub workers: Option<String>,

    /// Obtain and renew the serving certificate with ACME.
    #[command(flatten)]
    pub acme: AcmeArgs,

    /// The Kubernetes API server as a key source.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// The Kubernetes API server as a key source (`serve --from-kube-apiserver`).
#[derive(Debug, Args)]
pub struct KubeArgs {
    /// Publish the keys of a Kubernetes API server (its /.well-known/openid-configuration and
    /// /openid/v1/jwks, read with issuerd's own credentials), polled; without --issuer, the
    /// cluster's issuer too. Without URL (or `auto`): in a pod, kubernetes.default.svc with the
    /// pod's token and CA; elsewhere the kubeconfig's current context.
    #[arg(long = "from-kube-apiserver", env = "ISSUERD_FROM_KUBE_APISERVER", value_name = "URL",
          num_args = 0..=1, default_missing_value = "auto")]
    pub from_kube_apiserver: Option<String>,

    /// Read this kubeconfig for --from-kube-apiserver [default: $KUBECONFIG, ~/.kube/config].
    #[arg(long, env = "ISSUERD_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use [default: its current context].
    #[arg(long, env = "ISSUERD_KUBE_CONTEXT", value_name = "NAME")]
    pub kube_context: Option<String>,

    /// The bearer token file, re-read on every poll (in-cluster) [default:
    /// /var/run/secrets/kubernetes.io/serviceaccount/token].
    #[arg(long, env = "ISSUERD_KUBE_TOKEN_FILE", value_name = "FILE")]
    pub kube_token_file: Option<PathBuf>,

    /// The CA bundle the API server's certificate must chain to (in-cluster) [default:
    /// /var/run/secrets/kubernetes.io/serviceaccount/ca.crt].
    #[arg(long, env = "ISSUERD_KUBE_CA_FILE", value_name = "FILE")]
    pub kube_ca_file: Option<PathBuf>,

    /// Ask the API server for its keys this often [default: 60s].
    #[arg(long, env = "ISSUERD_KUBE_POLL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub kube_poll: Option<Duration>,

    /// Answer /readyz with 503 once the API server's keys have gone unconfirmed this long
    /// [default: 1h].
    #[arg(long, env = "ISSUERD_KUBE_MAX_STALE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub kube_max_stale: Option<Duration>,

    /// The most one request to the API server may take [default: 10s].
    #[arg(long, env = "ISSUERD_KUBE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub kube_timeout: Option<Duration>,
}

/// ACME (`serve`): the certificate obtained and renewed by issuerd itself.
#[derive(Debug, Args)]
pub struct AcmeArgs {
    /// Obtain a certificate for this domain with ACME (tls-alpn-01 on the serving listener);
    /// repeatable. Turns ACME on. Env: comma-separated.
    #[arg(
        long = "acme-domain",
        env = "ISSUERD_ACME_DOMAIN",
        value_name = "DOMAIN",
        value_delimiter = ','
    )]
    pub acme_domains: Vec<String>,

    /// Contact address of the ACME account.
    #[arg(long, env = "ISSUERD_ACME_EMAIL", value_name = "ADDR")]
    pub acme_email: Option<String>,

    /// Accept the ACME server's terms of service (required with --acme-domain). A value may
    /// follow `=`: 1/0, yes/no, true/false, on/off (env too).
    #[arg(long, env = "ISSUERD_ACME_ACCEPT_TOS", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub acme_accept_tos: Option<bool>,

    /// ACME directory URL [default: Let's Encrypt production].
    #[arg(long, env = "ISSUERD_ACME_DIRECTORY", value_name = "URL")]
    pub acme_directory: Option<String>,

    /// Trust this CA (PEM) for the ACME directory instead of the system roots (a private ACME
    /// server: step-ca, pebble).
    #[arg(long, env = "ISSUERD_ACME_DIRECTORY_CA", value_name = "FILE")]
    pub acme_directory_ca: Option<PathBuf>,

    /// Directory holding the ACME account, certificate and key (mode 0600), reused across
    /// restarts (required with --acme-domain).
    #[arg(long, env = "ISSUERD_ACME_CACHE", value_name = "DIR")]
    pub acme_cache: Option<PathBuf>,

    /// Answer the http-01 challenge on this plain HTTP address (port 80 as the ACME server sees
    /// it) instead of tls-alpn-01 on the serving listener. It serves nothing else.
    #[arg(long, env = "ISSUERD_ACME_HTTP_LISTEN", value_name = "ADDR")]
    pub acme_http_listen: Option<SocketAddr>,

    /// Renew this long before the certificate expires [default: 30days].
    #[arg(long, env = "ISSUERD_ACME_RENEW_BEFORE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub acme_renew_before: Option<Duration>,
}

/// `issuerd render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// What to publish.
    #[command(flatten)]
    pub publish: PublishArgs,

    /// Output directory; receives `<issuer path>/.well-known/openid-configuration` and the JWKS.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `issuerd mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// Private signing key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC); the algorithm follows the key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// `iss`, exactly as published.
    #[arg(long, value_name = "URL")]
    pub issuer: String,

    /// `sub`: system:serviceaccount:NAMESPACE:NAME (or NAMESPACE/NAME).
    #[arg(long, value_name = "SUBJECT")]
    pub subject: String,

    /// `aud`; repeatable.
    #[arg(
        long = "audience",
        value_name = "AUD",
        default_value = "sts.amazonaws.com"
    )]
    pub audiences: Vec<String>,

    /// Lifetime from `nbf` to `exp`.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,

    /// `nbf`: an RFC 3339 time, or an offset from now such as `-2h` or `+10m` [default: now].
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub not_before: Option<String>,

    /// Name of the pod the token is bound to (`kubernetes.io.pod`).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,

    /// Write the token to FILE (mode 0600, replaced atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `issuerd verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token, or `@FILE` to read it from a file.
    #[arg(value_name = "TOKEN|@FILE")]
    pub token: String,

    /// The issuer the token must come from; its discovery document is fetched from here.
    #[arg(long, value_name = "URL")]
    pub issuer: String,

    /// Accepted audience; repeatable. Without it the audience is printed, not checked.
    #[arg(long = "audience", value_name = "AUD")]
    pub audiences: Vec<String>,

    /// The key you believe signed the token; an unknown kid is then compared with its kid.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Allow http issuers and JWKS URIs (local testing; AWS requires https).
    #[arg(long)]
    pub allow_insecure: bool,

    /// What to trust besides the public roots (`--ca-file`).
    #[command(flatten)]
    pub ca: CaArgs,
}

/// `issuerd sts`.
#[derive(Debug, Args)]
pub struct StsArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// OIDC providers and roles (JSON; see docs/guides/local-irsa.md).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "cluster_spec",
        conflicts_with = "cluster_spec"
    )]
    pub roles: Option<PathBuf>,

    /// Or: the IAM map (a kOps Cluster manifest or a standalone map): the provider and roles
    /// `aws apply` would make from it, for --issuer in --account-id.
    #[command(flatten)]
    pub map: StsMapArgs,

    /// Allow http OIDC providers (local testing; AWS requires https).
    #[arg(long)]
    pub allow_insecure: bool,

    /// What to trust besides the public roots (`--ca-file`).
    #[command(flatten)]
    pub ca: CaArgs,

    /// How long fetched discovery documents and JWKS are cached.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub jwks_cache_ttl: Duration,

    /// On an unknown kid the JWKS is refetched, at most once per this interval per issuer.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub refetch_interval: Duration,
}

/// `issuerd sts --cluster-spec`: the roles the IAM map gives, as `aws apply` makes them.
#[derive(Debug, Args)]
pub struct StsMapArgs {
    /// The IAM map (kOps Cluster manifest or standalone), instead of --roles.
    #[arg(long, value_name = "FILE", requires = "issuer")]
    pub cluster_spec: Option<PathBuf>,

    /// With --cluster-spec: the issuer URL (the provider's URL, exactly as in the tokens' `iss`).
    #[arg(long, value_name = "URL", requires = "cluster_spec")]
    pub issuer: Option<String>,

    /// With --cluster-spec: the account of the roles [default with --roles-from-iam: the
    /// credentials', from STS].
    #[arg(long, value_name = "ID", requires = "cluster_spec")]
    pub account_id: Option<String>,

    /// With --cluster-spec: the roles' partition.
    #[arg(long, value_name = "PARTITION", default_value = "aws")]
    pub partition: String,

    /// With --cluster-spec: the audience the trust policies require (`<issuer>:aud`).
    #[arg(long, value_name = "AUD", default_value = "sts.amazonaws.com")]
    pub audience: String,

    /// With --cluster-spec: trust policies without the `:aud` condition, as kOps writes them.
    #[arg(long, requires = "cluster_spec")]
    pub no_aud_condition: bool,

    /// With --cluster-spec: read the provider's client IDs and the map's roles' trust policies
    /// from IAM (what `aws apply` made) instead of deriving them.
    #[arg(long, requires = "cluster_spec")]
    pub roles_from_iam: bool,

    /// The IAM (and STS) endpoint of --roles-from-iam [default: the SDK's: AWS_ENDPOINT_URL_IAM,
    /// AWS_ENDPOINT_URL, AWS].
    #[arg(long, value_name = "URL", requires = "roles_from_iam")]
    pub iam_endpoint: Option<String>,
}

/// `issuerd trust-policy`.
#[derive(Debug, Args)]
pub struct TrustPolicyArgs {
    /// The issuer URL (the IAM OIDC provider's URL).
    #[arg(long, value_name = "URL")]
    pub issuer: String,

    /// AWS account ID that owns the role and the OIDC provider (12 digits).
    #[arg(long, value_name = "ID")]
    pub account: String,

    /// AWS partition of the account (the provider ARN's first field): aws, aws-cn,
    /// aws-us-gov, aws-iso, ...: aws, or aws followed by lowercase letters and hyphens.
    #[arg(long, value_name = "PARTITION", default_value = "aws")]
    pub partition: String,

    /// The ServiceAccount allowed to assume the role, NAMESPACE/NAME; repeatable.
    #[arg(long = "service-account", value_name = "NS/NAME", required = true)]
    pub service_accounts: Vec<String>,

    /// The audience the pod's projected token carries.
    #[arg(long, value_name = "AUD", default_value = "sts.amazonaws.com")]
    pub audience: String,
}

/// `issuerd pod-env`.
#[derive(Debug, Args)]
pub struct PodEnvArgs {
    /// The role the pod assumes: arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME.
    #[arg(long, value_name = "ARN")]
    pub role_arn: String,

    /// Audience of the projected token.
    #[arg(long, value_name = "AUD", default_value = "sts.amazonaws.com")]
    pub audience: String,

    /// AWS region (sets AWS_REGION and AWS_DEFAULT_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Projected token lifetime in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 86400)]
    pub expiration_seconds: u32,

    /// Container the env and mount go into (for the strategic merge patch).
    #[arg(long, value_name = "NAME", default_value = "app")]
    pub container: String,
}

/// `issuerd check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The issuer URL, exactly as in the tokens' `iss`.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Treat an http issuer as a warning instead of a failure (local testing).
    #[arg(long)]
    pub allow_insecure: bool,

    /// What to trust besides the public roots (`--ca-file`).
    #[command(flatten)]
    pub ca: CaArgs,
}

/// `issuerd publish`: the `render` flags, with a bucket instead of a directory.
#[derive(Debug, Args)]
pub struct PublishCommandArgs {
    /// What to publish.
    #[command(flatten)]
    pub publish: PublishArgs,

    /// Where to publish (`--mirror` is required).
    #[command(flatten)]
    pub mirror: MirrorArgs,
}

/// The bucket mirror: shared by `serve` and `publish`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Keep the documents in this bucket in sync: s3://BUCKET/PREFIX.
    #[arg(long, env = "ISSUERD_MIRROR", value_name = "URL")]
    pub mirror: Option<String>,

    /// S3-compatible endpoint (path-style addressing) instead of AWS.
    #[arg(long, env = "ISSUERD_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// Bucket region [default: AWS_REGION or AWS_DEFAULT_REGION].
    #[arg(long, env = "ISSUERD_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,

    /// URL that serves the issuer's documents publicly, if not the issuer URL itself (a CDN, or
    /// the bucket's own URL); the anonymous read check uses it [default: the issuer URL].
    #[arg(long, env = "ISSUERD_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Canned ACL to set on each written object [default: default, the bucket decides].
    #[arg(long, env = "ISSUERD_MIRROR_ACL", value_name = "ACL")]
    pub mirror_acl: Option<MirrorAcl>,
}

/// `issuerd probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The URL to GET, e.g. http://127.0.0.1:8080/healthz (https:// is not verified, as kubelet
    /// probes it, unless --ca-file is given).
    #[arg(value_name = "URL")]
    pub url: String,

    /// What to trust besides the public roots (`--ca-file`).
    #[command(flatten)]
    pub ca: CaArgs,

    /// Give up after this long.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `issuerd thumbprint`.
#[derive(Debug, Args)]
pub struct ThumbprintArgs {
    /// A PEM file with the chain the server presents (leaf first), or an https:// URL (host and
    /// optional port; a path is ignored) to fetch the chain from the live server.
    #[arg(value_name = "FILE|URL")]
    pub source: String,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// What to trust besides the public roots (`--ca-file`).
    #[command(flatten)]
    pub ca: CaArgs,

    /// Connection and handshake timeout for a URL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `issuerd vault-config`. Its `--ca-file` is the shared one with Vault's meaning: Vault trusts
/// these certificates instead of its system roots, not besides them.
#[derive(Debug, Args)]
#[command(mut_arg("ca_files", |arg| arg.help(
    "The CA that signed the issuer's serving certificate (a PEM bundle; repeatable, \
     comma-separated in the env): every file's certificates, in order, become one PEM inlined as \
     oidc_discovery_ca_pem, which Vault trusts instead of its system roots"
)))]
pub struct VaultConfigArgs {
    /// The issuer URL, exactly as in the tokens' `iss` (Vault's oidc_discovery_url and
    /// bound_issuer).
    #[arg(long, value_name = "URL")]
    pub issuer: String,

    /// Allow an http:// issuer (local testing only).
    #[arg(long)]
    pub allow_insecure_issuer: bool,

    /// The CA that signed the issuer's serving certificate (`--ca-file`): inlined for Vault as
    /// oidc_discovery_ca_pem.
    #[command(flatten)]
    pub ca: CaArgs,

    /// The Vault role's name.
    #[arg(long, value_name = "NAME")]
    pub role: String,

    /// The ServiceAccount's namespace; `*` globs (Vault's bound_claims_type=glob).
    #[arg(long, value_name = "NS")]
    pub namespace: String,

    /// The ServiceAccount's name; `*` globs (Vault's bound_claims_type=glob).
    #[arg(long, value_name = "NAME")]
    pub service_account: String,

    /// The audience the projected token carries (bound_audiences).
    #[arg(long, value_name = "AUD", default_value = "vault")]
    pub audience: String,

    /// Policies of the Vault tokens issued (token_policies); comma-separated or repeated.
    #[arg(long, value_name = "P1,P2", value_delimiter = ',')]
    pub policies: Vec<String>,

    /// Lifetime of the Vault tokens issued (token_ttl) [default: the mount's].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ttl: Option<Duration>,

    /// Print the HTTP API requests (paths and JSON bodies) instead of `vault write` commands.
    #[arg(long)]
    pub json: bool,

    /// Where the JWT auth method is mounted (auth/MOUNT).
    #[arg(long, value_name = "PATH", default_value = "jwt")]
    pub mount: String,
}

/// `serve`'s connection timeouts (`[timeouts]` in the config file).
#[derive(Debug, Args)]
pub struct TimeoutArgs {
    /// Time a client has to send a whole request head once it started (then 408) [default: 30s].
    #[arg(long, env = "ISSUERD_HEADER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub header_timeout: Option<Duration>,

    /// Time an idle keep-alive connection is kept open [default: 75s].
    #[arg(long, env = "ISSUERD_KEEP_ALIVE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub keep_alive_timeout: Option<Duration>,

    /// Time a response may take to be written to a client that reads slowly [default: 30s].
    #[arg(long, env = "ISSUERD_WRITE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub write_timeout: Option<Duration>,

    /// Time a closing connection drains input it will not read, so the response is not lost to
    /// a reset [default: 2s].
    #[arg(long, env = "ISSUERD_LINGER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub linger_timeout: Option<Duration>,

    /// Time an HTTP/2 client has to send its preface and SETTINGS [default: 10s].
    #[arg(long, env = "ISSUERD_H2_HANDSHAKE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub h2_handshake_timeout: Option<Duration>,
}

/// `serve`'s connection limits (`[limits]` in the config file).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Most connections served at once; one more is accepted and closed at once [default: the
    /// open-files limit less 64].
    #[arg(long, env = "ISSUERD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Listen backlog: connections the kernel queues before they are accepted (capped by
    /// net.core.somaxconn) [default: 1024].
    #[arg(long, env = "ISSUERD_BACKLOG", value_name = "N")]
    pub backlog: Option<u32>,
}

/// `--ca-file`: private CAs an HTTPS client trusts besides the public roots.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// Also trust this CA (a PEM bundle; repeatable, comma-separated in the env), added to the
    /// public roots: for issuers behind a private CA.
    #[arg(
        long = "ca-file",
        env = "ISSUERD_CA_FILE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub ca_files: Vec<PathBuf>,
}

/// `issuerd webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Address to listen on (HTTPS; the API server calls POST /mutate).
    #[arg(
        long,
        env = "ISSUERD_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:9443"
    )]
    pub listen: SocketAddr,

    /// The serving certificate chain (PEM, leaf first); reloaded when it changes (a
    /// cert-manager Secret rotates without a restart).
    #[arg(long, env = "ISSUERD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: PathBuf,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "ISSUERD_TLS_KEY", value_name = "FILE")]
    pub tls_key: PathBuf,

    /// Serve /metrics, /healthz and /readyz on this address [default: off].
    #[arg(long, env = "ISSUERD_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// The IAM map as kOps writes it: a kOps Cluster manifest
    /// (spec.iam.serviceAccountExternalPermissions), or a standalone file with clusterName and
    /// that list. Pods get what kOps configures its webhook with: the role kOps names, audience
    /// amazonaws.com, the regional STS endpoint. Reloaded when it changes; needs --account-id.
    #[arg(long, env = "ISSUERD_CLUSTER_SPEC", value_name = "FILE")]
    pub cluster_spec: Option<PathBuf>,

    /// The EKS pod identity webhook's ConfigMap `config` value ({"NS/SA": {"RoleARN": ...}}),
    /// as kOps writes it for that webhook. Reloaded when it changes.
    #[arg(long, env = "ISSUERD_EKS_CONFIG_MAP", value_name = "FILE")]
    pub eks_config_map: Option<PathBuf>,

    /// The AWS account the roles of --cluster-spec are in.
    #[arg(long, env = "ISSUERD_ACCOUNT_ID", value_name = "ID")]
    pub account_id: Option<String>,

    /// The AWS partition of those roles (aws, aws-cn, aws-us-gov, ...).
    #[arg(
        long,
        env = "ISSUERD_PARTITION",
        value_name = "PARTITION",
        default_value = "aws"
    )]
    pub partition: String,

    /// Read each pod's ServiceAccount through the Kubernetes API too: its annotations
    /// eks.amazonaws.com/role-arn, audience, sts-regional-endpoints and token-expiration (as the
    /// EKS webhook reads them) win over the map file, which becomes optional. In a pod: the
    /// pod's ServiceAccount (RBAC: get, list, watch serviceaccounts); elsewhere --kubeconfig.
    #[arg(long, env = "ISSUERD_SERVICE_ACCOUNT_ANNOTATIONS", value_parser = clap::builder::BoolishValueParser::new())]
    pub service_account_annotations: bool,

    /// How long an admission waits for the API server when its ServiceAccount is not cached
    /// yet (created a moment before the pod); at most 3s, within the webhook's timeoutSeconds.
    /// 0: no GET, a ServiceAccount not cached has no annotations (the EKS webhook's default).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub service_account_lookup_grace_period: Duration,

    /// The kubeconfig for --service-account-annotations [default: in a pod, its
    /// ServiceAccount; else $KUBECONFIG, ~/.kube/config].
    #[arg(long, env = "ISSUERD_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use [default: its current context].
    #[arg(long, env = "ISSUERD_KUBE_CONTEXT", value_name = "NAME")]
    pub kube_context: Option<String>,

    /// Sets AWS_DEFAULT_REGION and AWS_REGION in pods (as the EKS webhook's flag).
    #[arg(long, value_name = "REGION")]
    pub aws_default_region: Option<String>,

    /// Sets AWS_STS_REGIONAL_ENDPOINTS=regional in pods (as the EKS webhook's flag), unless the
    /// map entry says otherwise.
    #[arg(long)]
    pub sts_regional_endpoint: bool,

    /// The audience of the projected token, unless the map entry names one.
    #[arg(long, value_name = "AUD", default_value = "sts.amazonaws.com")]
    pub token_audience: String,

    /// The projected token's lifetime in seconds, unless the pod or the map entry names one
    /// (under 600, Kubernetes' minimum, it is raised to 600, as the EKS webhook does).
    #[arg(long, value_name = "SECONDS", default_value_t = 86400)]
    pub token_expiration: u32,

    /// Set the pod's securityContext.fsGroup to this group when it has none, so that non-root
    /// containers can read the token file [default: leave pods as they are].
    #[arg(long, value_name = "GID")]
    pub fs_group: Option<i64>,

    /// After SIGTERM, keep answering this long with /readyz at 503 before closing the
    /// listener, so the API server stops calling first (Kubernetes: ~2 readiness periods).
    #[arg(long, env = "ISSUERD_DRAIN_DELAY", value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,

    /// How long file events are collected before a reload.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub watch_debounce: Duration,

    /// Re-read the map and certificate files at this interval too (events can be missed on
    /// some volumes).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
}

/// `issuerd aws`.
#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Print the IAM changes that would bring the provider and roles in line with the map; exit
    /// 0 with none, 2 with some (as `terraform plan -detailed-exitcode`), 1 on error.
    Plan(AwsArgs),
    /// Make those changes (nothing when there are none).
    Apply(AwsArgs),
}

/// `issuerd aws plan|apply`. AWS credentials, region and endpoints come from the SDK's
/// standard settings (`AWS_PROFILE`, `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL_IAM`, ...).
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// The IAM map: a kOps Cluster manifest (spec.iam.serviceAccountExternalPermissions) or a
    /// standalone file with clusterName and that list.
    #[arg(long, value_name = "FILE")]
    pub cluster_spec: PathBuf,

    /// The issuer URL, exactly as in the tokens' `iss` (the OIDC provider's URL).
    #[arg(long, value_name = "URL")]
    pub issuer: String,

    /// The AWS account of the provider and roles [default: the credentials' account, from STS
    /// GetCallerIdentity].
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,

    /// The account's partition (aws, aws-cn, aws-us-gov, ...) [default: the credentials', from
    /// STS; aws with --account-id].
    #[arg(long, value_name = "PARTITION")]
    pub partition: Option<String>,

    /// The provider's thumbprint (40 hex digits); repeatable, at most 5 [default: computed from
    /// the live issuer's chain, and left out when that chain ends in a publicly trusted CA].
    #[arg(long = "thumbprint", value_name = "SHA1")]
    pub thumbprints: Vec<String>,

    /// The audience the trust policies require (`<issuer>:aud`): the one the webhook puts in
    /// projected tokens.
    #[arg(long, value_name = "AUD", default_value = "sts.amazonaws.com")]
    pub audience: String,

    /// Leave the `:aud` condition out of the trust policies, as kOps does.
    #[arg(long)]
    pub no_aud_condition: bool,

    /// Also delete the roles tagged for this cluster that are no longer in the map.
    #[arg(long)]
    pub prune: bool,

    /// What to trust besides the public roots (`--ca-file`): the issuer's chain is checked
    /// against these CAs when its thumbprint is computed.
    #[command(flatten)]
    pub ca: CaArgs,

    /// Connection and handshake timeout for the issuer's chain.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}
