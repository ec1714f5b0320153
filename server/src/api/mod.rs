//! The gRPC edge: the `tally.v1.Ledger`, `Audit`, `Admin`, `Metering`, `Rating` and `Billing` services over an [`Engine`](crate::Engine).
//!
//! Architecture invariant: only `api/` knows about protobuf. Requests are turned
//! into the ledger's commands here (`convert`), with every malformed field
//! reported by its full path; errors become gRPC statuses in one place
//! (`status`); `ledger_service` only routes calls to the engine.

pub mod admin_service;
pub mod audit_service;
pub mod billing_service;
pub mod convert;
pub mod ledger_service;
pub mod metering_service;
pub mod packed;
pub mod packed_events;
pub mod rating_service;
pub mod status;

pub use admin_service::AdminService;
pub use audit_service::AuditService;
pub use billing_service::BillingService;
pub use ledger_service::LedgerService;
pub use metering_service::MeteringService;
pub use rating_service::RatingService;
