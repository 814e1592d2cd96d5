//! The custom domains aggregate on PostgreSQL. A claim of due domains locks the rows it
//! picks with `FOR UPDATE SKIP LOCKED`, so nodes claiming at once split the due domains
//! between them instead of queueing on each other. Timestamps are the server's `now()`.

use std::time::Duration;

use async_trait::async_trait;

use super::{PostgresRepository, db, interval};
use crate::domains::{DomainName, RedirectStatus};
use crate::model::{Domain, NewDomain, ProjectName};
use crate::repository::rows;
use crate::repository::{DomainRepository, RepositoryError};

/// The columns of a domain, as `rows::domain` reads them.
macro_rules! domain_columns {
    () => {
        "name, project, redirect, redirect_status, token, verified_at, check_attempts, \
         next_check_at, created_at, updated_at"
    };
}

/// `$1` name, `$2` project, `$3` redirect, `$4` status, `$5` token, `$6` first check in.
const INSERT: &str = concat!(
    "INSERT INTO domains (name, project, redirect, redirect_status, token, next_check_at, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, now() + $6, now(), now()) RETURNING ",
    domain_columns!()
);

const SELECT: &str = concat!(
    "SELECT ",
    domain_columns!(),
    " FROM domains WHERE name = $1"
);

const LIST: &str = concat!(
    "SELECT ",
    domain_columns!(),
    " FROM domains WHERE project = $1 ORDER BY name"
);

/// `$1` name, `$2` redirect, `$3` status.
const REDIRECT: &str = concat!(
    "UPDATE domains SET redirect = $2, redirect_status = $3, updated_at = now() \
     WHERE name = $1 RETURNING ",
    domain_columns!()
);

const DELETE: &str = "DELETE FROM domains WHERE name = $1";

/// `$1` name, `$2` found, `$3` next check in when not found.
const CHECKED: &str = concat!(
    "UPDATE domains SET check_attempts = check_attempts + 1, \
     verified_at = CASE WHEN $2 THEN COALESCE(verified_at, now()) ELSE verified_at END, \
     next_check_at = CASE WHEN $2 OR verified_at IS NOT NULL THEN NULL ELSE now() + $3 END, \
     updated_at = CASE WHEN $2 AND verified_at IS NULL THEN now() ELSE updated_at END \
     WHERE name = $1 RETURNING ",
    domain_columns!()
);

/// `$1` limit, `$2` hold.
const CLAIM: &str = concat!(
    "UPDATE domains SET next_check_at = now() + $2 WHERE name IN (SELECT name FROM domains \
     WHERE verified_at IS NULL AND next_check_at <= now() ORDER BY next_check_at LIMIT $1 \
     FOR UPDATE SKIP LOCKED) RETURNING ",
    domain_columns!()
);

#[async_trait]
impl DomainRepository for PostgresRepository {
    async fn create_domain(&self, new: &NewDomain) -> Result<Domain, RepositoryError> {
        let row = sqlx::query(INSERT)
            .bind(new.name.as_str())
            .bind(new.project.as_str())
            .bind(new.redirect.as_ref().map(DomainName::as_str))
            .bind(status(new.redirect.as_ref(), new.redirect_status))
            .bind(new.token.as_str())
            .bind(interval(new.first_check_in))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| rows::domain_taken(db(e), &new.name))?;
        rows::domain(&row)
    }

    async fn get_domain(&self, name: &DomainName) -> Result<Domain, RepositoryError> {
        let row = sqlx::query(SELECT)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        rows::domain(&row)
    }

    async fn list_domains(&self, project: &ProjectName) -> Result<Vec<Domain>, RepositoryError> {
        sqlx::query(LIST)
            .bind(project.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::domain)
            .collect()
    }

    async fn set_domain_redirect(
        &self,
        name: &DomainName,
        redirect: Option<DomainName>,
        redirect_status: Option<RedirectStatus>,
    ) -> Result<Domain, RepositoryError> {
        let row = sqlx::query(REDIRECT)
            .bind(name.as_str())
            .bind(redirect.as_ref().map(DomainName::as_str))
            .bind(status(redirect.as_ref(), redirect_status))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        rows::domain(&row)
    }

    async fn delete_domain(&self, name: &DomainName) -> Result<(), RepositoryError> {
        let done = sqlx::query(DELETE)
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(RepositoryError::NotFound);
        }
        Ok(())
    }

    async fn record_domain_check(
        &self,
        name: &DomainName,
        found: bool,
        retry_in: Duration,
    ) -> Result<Domain, RepositoryError> {
        let row = sqlx::query(CHECKED)
            .bind(name.as_str())
            .bind(found)
            .bind(interval(retry_in))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        rows::domain(&row)
    }

    async fn claim_due_domains(
        &self,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<Domain>, RepositoryError> {
        sqlx::query(CLAIM)
            .bind(i64::from(limit))
            .bind(interval(hold))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(rows::domain)
            .collect()
    }
}

/// The status column: only with a redirect, 308 when none was given.
fn status(redirect: Option<&DomainName>, status: Option<RedirectStatus>) -> Option<i64> {
    redirect.map(|_| i64::from(status.unwrap_or_default().code()))
}
