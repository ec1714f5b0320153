//! The `tally.v1.Admin` gRPC service: API keys.

use std::sync::Arc;

use tally_core::entry::Role;
use tally_core::error_code::ErrorCode;
use tally_proto::v1 as pb;
use tally_proto::v1::admin_server::Admin;
use tonic::{Request, Response, Status};

use super::status::{ledger_status, status};
use crate::auth::CALLER;
use crate::engine::Engine;
use crate::error::LedgerError;
use crate::ledger::view::ApiKeyView;

pub struct AdminService {
    engine: Arc<Engine>,
}

impl AdminService {
    pub fn new(engine: Arc<Engine>) -> Self {
        AdminService { engine }
    }
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Admin => pb::Role::Admin,
        Role::Poster => pb::Role::Poster,
        Role::Finance => pb::Role::Finance,
        Role::Auditor => pb::Role::Auditor,
    }
}

fn role_from_proto(number: i32) -> Result<Role, Status> {
    match pb::Role::try_from(number) {
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Poster) => Ok(Role::Poster),
        Ok(pb::Role::Finance) => Ok(Role::Finance),
        Ok(pb::Role::Auditor) => Ok(Role::Auditor),
        Ok(pb::Role::Unspecified) => Err(ledger_status(&LedgerError::new(
            ErrorCode::FieldRequired,
            "role",
            "role is required: admin, poster, finance or auditor",
        ))),
        Err(_) => Err(ledger_status(&LedgerError::new(
            ErrorCode::FieldInvalid,
            "role",
            format!("unknown role {number}"),
        ))),
    }
}

fn api_key(view: ApiKeyView) -> pb::ApiKey {
    pb::ApiKey {
        key_id: view.key_id,
        name: view.name,
        role: role_to_proto(view.role) as i32,
        read_only: view.read_only,
        created_seq: view.created_seq,
        revoked: view.revoked_seq.is_some(),
        revoked_seq: view.revoked_seq.unwrap_or(0),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let pb::CreateApiKeyRequest {
            name,
            role,
            read_only,
        } = request.into_inner();
        let role = role_from_proto(role)?;
        let (token, view) = self
            .engine
            .create_api_key(name, role, read_only)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(api_key(view)),
            token,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let key_id = request.into_inner().key_id;
        let view = self.engine.revoke_api_key(key_id).await.map_err(status)?;
        Ok(Response::new(api_key(view)))
    }

    async fn rotate_api_key(
        &self,
        request: Request<pb::RotateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let key_id = request.into_inner().key_id;
        let (token, view) = self.engine.rotate_api_key(key_id).await.map_err(status)?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(api_key(view)),
            token,
        }))
    }

    async fn list_api_keys(
        &self,
        _request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let keys = self.engine.api_keys().into_iter().map(api_key).collect();
        Ok(Response::new(pb::ListApiKeysResponse { keys }))
    }

    async fn who_am_i(
        &self,
        _request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let key_id = CALLER
            .try_with(|caller| caller.key_id.clone())
            .map_err(|_| {
                ledger_status(&LedgerError::new(
                    ErrorCode::Unauthenticated,
                    "authorization",
                    "no api key",
                ))
            })?;
        let view = self
            .engine
            .api_keys()
            .into_iter()
            .find(|key| key.key_id == key_id)
            .ok_or_else(|| {
                ledger_status(&LedgerError::new(
                    ErrorCode::ApiKeyNotFound,
                    "authorization",
                    "the key of this call is gone",
                ))
            })?;
        Ok(Response::new(api_key(view)))
    }
}
