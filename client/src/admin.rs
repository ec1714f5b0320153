//! The Admin service: API keys. Every call needs a key (`ClientBuilder::api_key`);
//! these need an admin key, except `who_am_i`.

use std::fmt;
use std::str::FromStr;

use tally_proto::v1 as pb;

use crate::client::{call_with, Client, Retry};
use crate::error::{ClientError, Result};

/// What a key may do (the role table is in `docs/security.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Poster,
    Finance,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Poster, Role::Finance, Role::Auditor];

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Poster => "poster",
            Role::Finance => "finance",
            Role::Auditor => "auditor",
        }
    }

    fn to_proto(self) -> pb::Role {
        match self {
            Role::Admin => pb::Role::Admin,
            Role::Poster => pb::Role::Poster,
            Role::Finance => pb::Role::Finance,
            Role::Auditor => pb::Role::Auditor,
        }
    }

    fn from_proto(number: i32) -> Result<Role> {
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
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == text)
            .ok_or_else(|| format!("unknown role {text:?}: admin, poster, finance or auditor"))
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
        role: Role::from_proto(key.role)?,
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
            role: role.to_proto() as i32,
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
