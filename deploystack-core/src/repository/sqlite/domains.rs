//! The custom domains aggregate on SQLite. A claim of due domains is one `UPDATE … WHERE
//! name IN (SELECT … LIMIT) RETURNING` inside a `BEGIN IMMEDIATE` transaction, so two
//! processes sharing the file never claim the same domain.

use std::time::Duration;

use async_trait::async_trait;

use super::{SqliteRepository, db, expiry, now_ms};
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

/// `?1` name, `?2` project, `?3` redirect, `?4` status, `?5` token, `?6` first check, `?7` now.
const INSERT: &str = concat!(
    "INSERT INTO domains (name, project, redirect, redirect_status, token, next_check_at, \
     created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) RETURNING ",
    domain_columns!()
);

const SELECT: &str = concat!(
    "SELECT ",
    domain_columns!(),
    " FROM domains WHERE name = ?1"
);

const LIST: &str = concat!(
    "SELECT ",
    domain_columns!(),
    " FROM domains WHERE project = ?1 ORDER BY name"
);

/// `?1` name, `?2` redirect, `?3` status, `?4` now.
const REDIRECT: &str = concat!(
    "UPDATE domains SET redirect = ?2, redirect_status = ?3, updated_at = ?4 \
     WHERE name = ?1 RETURNING ",
    domain_columns!()
);

const DELETE: &str = "DELETE FROM domains WHERE name = ?1";

/// `?1` name, `?2` found, `?3` next check when not found, `?4` now.
const CHECKED: &str = concat!(
    "UPDATE domains SET check_attempts = check_attempts + 1, \
     verified_at = CASE WHEN ?2 THEN COALESCE(verified_at, ?4) ELSE verified_at END, \
     next_check_at = CASE WHEN ?2 OR verified_at IS NOT NULL THEN NULL ELSE ?3 END, \
     updated_at = CASE WHEN ?2 AND verified_at IS NULL THEN ?4 ELSE updated_at END \
     WHERE name = ?1 RETURNING ",
    domain_columns!()
);

/// `?1` now, `?2` limit, `?3` held until.
const CLAIM: &str = concat!(
    "UPDATE domains SET next_check_at = ?3 WHERE name IN (SELECT name FROM domains \
     WHERE verified_at IS NULL AND next_check_at <= ?1 ORDER BY next_check_at LIMIT ?2) \
     RETURNING ",
    domain_columns!()
);

#[async_trait]
impl DomainRepository for SqliteRepository {
    async fn create_domain(&self, new: &NewDomain) -> Result<Domain, RepositoryError> {
        let now = now_ms();
        let row = sqlx::query(INSERT)
            .bind(new.name.as_str())
            .bind(new.project.as_str())
            .bind(new.redirect.as_ref().map(DomainName::as_str))
            .bind(status(new.redirect.as_ref(), new.redirect_status))
            .bind(new.token.as_str())
            .bind(expiry(now, new.first_check_in))
            .bind(now)
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
            .bind(now_ms())
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
        let now = now_ms();
        let row = sqlx::query(CHECKED)
            .bind(name.as_str())
            .bind(found)
            .bind(expiry(now, retry_in))
            .bind(now)
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
        let now = now_ms();
        let mut tx = self.begin().await?;
        let claimed = sqlx::query(CLAIM)
            .bind(now)
            .bind(i64::from(limit))
            .bind(expiry(now, hold))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(rows::domain)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(db)?;
        Ok(claimed)
    }
}

/// The status column: only with a redirect, 308 when none was given.
fn status(redirect: Option<&DomainName>, status: Option<RedirectStatus>) -> Option<i64> {
    redirect.map(|_| i64::from(status.unwrap_or_default().code()))
}
