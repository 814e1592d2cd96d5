//! Proving a domain: one look-up of its TXT record on demand ([`verify`]), and the background
//! passes over due domains ([`recheck_due`]), each recorded with its next check (backoff).

use futures_util::future::join_all;

use super::{CheckReport, DomainError, DomainState, RECHECK_BATCH, RECHECK_HOLD, get};
use crate::domains::{DomainVerifier, VerifyOutcome};
use crate::events::{Event, emit_best_effort};
use crate::model::{Domain, ProjectName};
use crate::services::Services;

/// Look the domain's record up now. A verified domain is answered as it is, without a
/// look-up (verification is sticky, see the module docs). The report says what was
/// expected and what was found. `by` says who asked; a `DomainVerified` event carries it.
pub async fn verify(
    services: &Services,
    project: &ProjectName,
    name: &str,
    by: Option<&str>,
) -> Result<(DomainState, CheckReport), DomainError> {
    let state = get(services, project, name).await?;
    let domain = &state.domain;
    if domain.is_verified() {
        let outcome = VerifyOutcome::Verified;
        let message = outcome.explain(&domain.name, &domain.token);
        return Ok((state, CheckReport { outcome, message }));
    }
    let verifier = DomainVerifier::from_config(&services.config)
        .map_err(|err| DomainError::Verifier(err.to_string()))?;
    let outcome = check_and_record(services, &verifier, domain, by).await?;
    let message = outcome.explain(&domain.name, &domain.token);
    let state = get(services, project, name).await?;
    Ok((state, CheckReport { outcome, message }))
}

/// One look-up of `domain`'s record, recorded; announces a verification, made on behalf
/// of `by` (`None`: the background re-check).
async fn check_and_record(
    services: &Services,
    verifier: &DomainVerifier,
    domain: &Domain,
    by: Option<&str>,
) -> Result<VerifyOutcome, DomainError> {
    let outcome = verifier.check(&domain.name, &domain.token).await;
    let retry_in = services
        .config
        .recheck_schedule()
        .delay(domain.check_attempts, rand::random());
    let recorded = services
        .repository
        .record_domain_check(&domain.name, outcome.is_verified(), retry_in)
        .await
        .map_err(DomainError::Repository)?;
    if outcome.is_verified() && !domain.is_verified() {
        tracing::info!(domain = %domain.name, project = %domain.project, "custom domain verified");
        emit_best_effort(
            services.events.as_ref(),
            Event::DomainVerified {
                project: recorded.project.clone(),
                domain: recorded.name.to_string(),
                by: by.map(str::to_owned),
            },
        )
        .await;
    } else if let VerifyOutcome::LookupFailed { reason } = &outcome {
        tracing::debug!(domain = %domain.name, %reason, "custom domain look-up failed");
    }
    Ok(outcome)
}

/// One background pass: claim up to [`RECHECK_BATCH`] due pending domains (safe with
/// several nodes, see `DomainRepository::claim_due_domains`), look each up, record the
/// results. Returns how many were verified.
pub async fn recheck_due(services: &Services) -> Result<usize, DomainError> {
    let due = services
        .repository
        .claim_due_domains(RECHECK_BATCH, RECHECK_HOLD)
        .await
        .map_err(DomainError::Repository)?;
    if due.is_empty() {
        return Ok(0);
    }
    let verifier = DomainVerifier::from_config(&services.config)
        .map_err(|err| DomainError::Verifier(err.to_string()))?;
    let results = join_all(
        due.iter()
            .map(|domain| check_and_record(services, &verifier, domain, None)),
    )
    .await;
    let mut verified = 0;
    for result in results {
        match result {
            Ok(outcome) if outcome.is_verified() => verified += 1,
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not record a domain check"),
        }
    }
    Ok(verified)
}
