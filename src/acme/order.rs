//! One ACME issuance: account (cached or new), order, tls-alpn-01 answers, CSR, chain download.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use tracing::info;

use super::cache::Cache;
use super::certificate::Issued;
use super::http01::Http01Tokens;
use super::{AcmeError, Settings, challenge};
use crate::tls::Certificates;

/// How challenges are answered.
#[derive(Clone, Copy, Debug)]
pub(super) enum Responder<'a> {
    /// tls-alpn-01 on the serving listener.
    TlsAlpn(&'a Certificates),
    /// http-01 on the plain listener.
    Http(&'a Http01Tokens),
}

impl Responder<'_> {
    fn challenge_type(self) -> ChallengeType {
        match self {
            Self::TlsAlpn(_) => ChallengeType::TlsAlpn01,
            Self::Http(_) => ChallengeType::Http01,
        }
    }

    /// Withdraws what `answered` set up.
    fn withdraw(self, answered: &Answered) {
        match self {
            Self::TlsAlpn(certificates) => certificates.set_challenge(&answered.domain, None),
            Self::Http(tokens) => tokens.remove(&answered.token),
        }
    }
}

/// A challenge being answered.
struct Answered {
    domain: String,
    token: String,
}

/// How long to wait for the server to validate the challenges, and then to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// The account: restored from the cache, or created (terms accepted) and cached.
pub(super) async fn account(settings: &Settings, cache: &Cache) -> Result<Account, AcmeError> {
    let directory = &settings.directory;
    let builder = || {
        match &settings.directory_ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        }
        .map_err(|source| AcmeError::Client {
            ca: settings.directory_ca.clone(),
            source,
        })
    };
    let failed = |step| {
        move |source| AcmeError::Protocol {
            directory: directory.clone(),
            step,
            source,
        }
    };
    if let Some(credentials) = cache.account(directory)? {
        return builder()?
            .from_credentials(credentials)
            .await
            .map_err(failed("restoring the cached account"));
    }
    let contact = settings
        .email
        .iter()
        .map(|e| format!("mailto:{e}"))
        .collect::<Vec<_>>();
    let contact = contact.iter().map(String::as_str).collect::<Vec<_>>();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder()?
        .create(&new, directory.clone(), None)
        .await
        .map_err(failed("creating an account"))?;
    info!(directory = %directory, id = account.id(), "created ACME account");
    cache.save_account(directory, credentials)?;
    Ok(account)
}

/// Orders a certificate for the configured domains, answering each pending authorization through
/// `responder`. The answers are withdrawn whatever the outcome.
pub(super) async fn issue(
    settings: &Settings,
    account: &Account,
    responder: Responder<'_>,
) -> Result<Issued, AcmeError> {
    let directory = &settings.directory;
    let failed = |step| {
        move |source| AcmeError::Protocol {
            directory: directory.clone(),
            step,
            source,
        }
    };
    let identifiers = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect::<Vec<_>>();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(failed("placing an order"))?;
    info!(order = order.url(), domains = ?settings.domains, "placed ACME order");

    let mut answered = Vec::new();
    let validated = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(failed("fetching an authorization"))?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => {
                    return Err(AcmeError::Rejected {
                        reason: format!(
                            "authorization for {} is {status:?}",
                            authorization.identifier()
                        ),
                    });
                }
            }
            let domain = authorization.identifier().to_string();
            let kind = responder.challenge_type();
            let mut handle =
                authorization
                    .challenge(kind.clone())
                    .ok_or_else(|| AcmeError::NoChallenge {
                        domain: domain.clone(),
                        kind: format!("{kind:?}"),
                    })?;
            let key_authorization = handle.key_authorization();
            match responder {
                Responder::TlsAlpn(certificates) => {
                    let key = challenge::certificate(&domain, key_authorization.digest().as_ref())?;
                    certificates.set_challenge(&domain, Some(key));
                }
                Responder::Http(tokens) => tokens.set(&handle.token, key_authorization.as_str()),
            }
            answered.push(Answered {
                domain,
                token: handle.token.clone(),
            });
            handle
                .set_ready()
                .await
                .map_err(failed("answering a challenge"))?;
        }
        match order
            .poll_ready(&POLL)
            .await
            .map_err(failed("waiting for validation"))?
        {
            OrderStatus::Ready => Ok(()),
            status => Err(AcmeError::Rejected {
                reason: format!(
                    "order is {status:?} after validation{}",
                    why(&mut order).await
                ),
            }),
        }
    }
    .await;
    for answer in &answered {
        responder.withdraw(answer);
    }
    validated?;

    let key = KeyPair::generate().map_err(AcmeError::Csr)?;
    let mut params = CertificateParams::new(settings.domains.clone()).map_err(AcmeError::Csr)?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(AcmeError::Csr)?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(failed("finalizing the order"))?;
    let chain = order
        .poll_certificate(&POLL)
        .await
        .map_err(failed("downloading the certificate"))?;
    let origin = format!("the order at {}", order.url());
    Issued::from_pem(chain, &origin, key.serialize_pem(), &origin)
}

/// The servers' reasons for invalid authorizations, as `: domain: problem; ...`.
async fn why(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        for challenge in &state.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(format!("{}: {problem}", state.identifier()));
            }
        }
    }
    if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join("; "))
    }
}
