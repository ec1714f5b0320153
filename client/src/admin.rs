//! The Admin service: API keys. Every call needs a key (`ClientBuilder::api_key`);
//! these need an admin key, except `who_am_i`.

use tally_proto::v1 as pb;

use crate::client::{call_with, Client, Retry};
use crate::error::{ClientError, Result};

/// What a key may do (the role table is in `docs/security.md`): the journal's
/// own role type, so that names and parsing are one definition.
pub use tally_core::entry::Role;

fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Admin => pb::Role::Admin,
        Role::Poster => pb::Role::Poster,
        Role::Finance => pb::Role::Finance,
        Role::Auditor => pb::Role::Auditor,
    }
}

fn role_from_proto(number: i32) -> Result<Role> {
    match pb::Role::try_from(number) {
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Poster) => Ok(Role::Poster),
        Ok(pb::Role::Finance) => Ok(Role::Finance),
        Ok(pb::Role::Auditor) => Ok(Role::Auditor),
        _ => Err(ClientError::InvalidResponse(format!(
            "unknown role {number}"
        ))),
    }
}

/// An API key as listed; its secret is never shown again after creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key_id: String,
    pub name: String,
    pub role: Role,
    pub read_only: bool,
    pub created_seq: u64,
    pub revoked_seq: Option<u64>,
}

/// A new key and its token (`tly_...`), which is shown only in this answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyCreated {
    pub api_key: ApiKey,
    pub token: String,
}

fn api_key(key: pb::ApiKey) -> Result<ApiKey> {
    Ok(ApiKey {
        role: role_from_proto(key.role)?,
        key_id: key.key_id,
        name: key.name,
        read_only: key.read_only,
        created_seq: key.created_seq,
        revoked_seq: key.revoked.then_some(key.revoked_seq),
    })
}

/// A new key's answer (creation or rotation): the key and its one-time token.
fn created(answer: pb::CreateApiKeyResponse) -> Result<ApiKeyCreated> {
    let key = answer
        .api_key
        .ok_or_else(|| ClientError::InvalidResponse("no api key in the answer".into()))?;
    Ok(ApiKeyCreated {
        api_key: api_key(key)?,
        token: answer.token,
    })
}

impl Client {
    /// Creates an API key (admin keys only).
    pub async fn create_api_key(
        &self,
        name: impl Into<String>,
        role: Role,
        read_only: bool,
    ) -> Result<ApiKeyCreated> {
        let request = pb::CreateApiKeyRequest {
            name: name.into(),
            role: role_to_proto(role) as i32,
            read_only,
        };
        // Never retried: a second attempt would make a second key.
        let answer = call_with(
            &self.admin,
            &self.policy,
            Retry::Never,
            request,
            |mut raw, request| async move { raw.create_api_key(request).await },
        )
        .await?;
        created(answer)
    }

    /// Revokes an API key (admin keys only); idempotent.
    pub async fn revoke_api_key(&self, key_id: impl Into<String>) -> Result<ApiKey> {
        let request = pb::RevokeApiKeyRequest {
            key_id: key_id.into(),
        };
        let answer = call_with(
            &self.admin,
            &self.policy,
            Retry::Safe,
            request,
            |mut raw, request| async move { raw.revoke_api_key(request).await },
        )
        .await?;
        api_key(answer)
    }

    /// Rotates an API key (admin keys only): a new key with the old one's name,
    /// role and restriction, and the old key revoked, atomically. The new token
    /// is in the answer only.
    pub async fn rotate_api_key(&self, key_id: impl Into<String>) -> Result<ApiKeyCreated> {
        let request = pb::RotateApiKeyRequest {
            key_id: key_id.into(),
        };
        // Never retried: a second attempt after a lost answer would be refused
        // (the old key is revoked) and the new token would be lost with it.
        let answer = call_with(
            &self.admin,
            &self.policy,
            Retry::Never,
            request,
            |mut raw, request| async move { raw.rotate_api_key(request).await },
        )
        .await?;
        created(answer)
    }

    /// Every API key (admin keys only).
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let answer = call_with(
            &self.admin,
            &self.policy,
            Retry::Safe,
            pb::ListApiKeysRequest {},
            |mut raw, request| async move { raw.list_api_keys(request).await },
        )
        .await?;
        answer.keys.into_iter().map(api_key).collect()
    }

    /// The key this client calls with.
    pub async fn who_am_i(&self) -> Result<ApiKey> {
        let answer = call_with(
            &self.admin,
            &self.policy,
            Retry::Safe,
            pb::WhoAmIRequest {},
            |mut raw, request| async move { raw.who_am_i(request).await },
        )
        .await?;
        api_key(answer)
    }
}
