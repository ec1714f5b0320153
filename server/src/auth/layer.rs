//! The tower layer that authenticates and authorizes every gRPC call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tally_core::error_code::ErrorCode;

use super::permissions::{self, Denied};
use super::rate::RateLimiter;
use super::{Caller, CALLER};
use crate::api::status::ledger_status;
use crate::engine::Engine;
use crate::error::LedgerError;

/// Wraps the gRPC router: see the module documentation of [`crate::auth`].
#[derive(Clone)]
pub struct AuthLayer {
    engine: Arc<Engine>,
    limiter: Arc<RateLimiter>,
}

impl AuthLayer {
    pub fn new(engine: Arc<Engine>, requests_per_second: u64) -> Self {
        AuthLayer {
            engine,
            limiter: Arc::new(RateLimiter::new(requests_per_second)),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone takes the place of the service that was polled ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path().to_string();
        if permissions::is_public(&path) {
            return Box::pin(inner.call(request));
        }
        match self.layer.authorize(&path, request.headers()) {
            Ok(caller) => Box::pin(CALLER.scope(caller, inner.call(request))),
            Err(error) => {
                let response = ledger_status(&error).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

fn refused(code: ErrorCode, message: impl Into<String>) -> LedgerError {
    LedgerError::new(code, "authorization", message)
}

impl AuthLayer {
    /// The caller of a call to `path`, or why it is refused. Never logs the
    /// token; refusals are logged with the key id and the method.
    fn authorize(&self, path: &str, headers: &http::HeaderMap) -> Result<Caller, LedgerError> {
        let header = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
            refused(
                ErrorCode::Unauthenticated,
                "no api key: send the metadata `authorization: Bearer <api key>`",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|text| text.strip_prefix("Bearer "))
            .ok_or_else(|| {
                refused(
                    ErrorCode::Unauthenticated,
                    "the authorization metadata must be `Bearer <api key>`",
                )
            })?;
        let caller = self.engine.authenticate(token).inspect_err(|error| {
            tracing::info!(method = path, reason = %error.message, "call refused: not authenticated");
        })?;
        if let Err(denied) = permissions::allows(caller.role, caller.read_only, path) {
            let message = match denied {
                Denied::NoRule => format!("{path} is not open to any key"),
                Denied::Role => format!("a key of role {} may not call {path}", caller.role.name()),
                Denied::ReadOnly => format!("a read-only key may not call {path}"),
            };
            tracing::info!(key_id = %caller.key_id, method = path, %message, "call refused");
            return Err(refused(ErrorCode::PermissionDenied, message));
        }
        if !self.limiter.admit(&caller.key_id, Instant::now()) {
            return Err(refused(
                ErrorCode::RateLimited,
                format!(
                    "api key {} is over its limit of {} requests per second",
                    caller.key_id,
                    self.limiter.per_second()
                ),
            ));
        }
        Ok(caller)
    }
}
