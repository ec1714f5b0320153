//! Invoicing and payments: where the ledger and billing meet.
//!
//! An invoice *is* a journal transaction. A billing run rates each
//! subscription's ended billing period (usage gathered and rated exactly as
//! quotes and simulations do, `crate::rating`) at one journal length, on the
//! caller's task; the writer then gives the invoice its gapless number, draws
//! down the customer's prepaid credit and posts it — receivable, revenue per
//! charge, tax payable per rule, discounts — as ONE entry, or answers with the
//! invoice already issued for that period (a re-run posts nothing).
//!
//! - [`book`]: the fold of billing entries (writer state and read model);
//! - [`accounts`]: the accounts billing posts to, opened on first use;
//! - [`record`]: the writer's half of every billing write;
//! - [`run`]: a billing run's planning and rating (no writes);
//! - [`operations`]: the `Engine`'s billing calls;
//! - [`render`]: an invoice as a page a customer can read;
//! - [`zone`]: customers' time zones (a billing day starts at their midnight).

pub mod accounts;
pub mod book;
pub mod operations;
pub mod record;
pub mod render;
pub mod run;
pub mod zone;
