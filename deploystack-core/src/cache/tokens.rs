//! Tokens pass straight through the cache: a revoked token must stop working on every node
//! at once, so no node may answer a token look-up from memory (see the contract in
//! `repository::tokens`). A look-up is one indexed read by primary key, cheap beside what
//! the API request it guards does.

use std::time::Duration;

use async_trait::async_trait;

use super::CachedRepository;
use crate::model::{ApiToken, NewToken, TokenHash, TokenId};
use crate::repository::{RepositoryError, TokenRepository};

#[async_trait]
impl TokenRepository for CachedRepository {
    async fn create_token(&self, new: &NewToken) -> Result<ApiToken, RepositoryError> {
        self.inner.create_token(new).await
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, RepositoryError> {
        self.inner.list_tokens().await
    }

    async fn find_token(&self, hash: &TokenHash) -> Result<ApiToken, RepositoryError> {
        self.inner.find_token(hash).await
    }

    async fn revoke_token(&self, id: &TokenId) -> Result<(), RepositoryError> {
        self.inner.revoke_token(id).await
    }

    async fn touch_token(
        &self,
        id: &TokenId,
        granularity: Duration,
    ) -> Result<(), RepositoryError> {
        self.inner.touch_token(id, granularity).await
    }
}
