//! Who may call what: one rule per RPC, the single source of the role table
//! (`docs/security.md` shows it; a test checks the two agree, and that every
//! method the server serves has a rule).
//!
//! Closed by default: a method without a rule is refused to every key, and
//! only health checks and reflection (the schema is public anyway) are open
//! without a key.

use tally_core::entry::Role;

/// Whether a call only reads or may change the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The roles a method is open to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// `/package.Service/Method`, as in the HTTP/2 path of a gRPC call.
    pub method: &'static str,
    pub access: Access,
    pub roles: &'static [Role],
}

use Access::{Read, Write};
use Role::{Admin, Auditor, Finance, Poster};

const EVERYONE: &[Role] = &[Admin, Poster, Finance, Auditor];
const POSTERS: &[Role] = &[Admin, Poster];
const ADMINS: &[Role] = &[Admin];
const FINANCE: &[Role] = &[Admin, Finance];
const CUSTOMER_WRITERS: &[Role] = &[Admin, Poster, Finance];

const fn rule(method: &'static str, access: Access, roles: &'static [Role]) -> Rule {
    Rule {
        method,
        access,
        roles,
    }
}

/// Paths served without a key.
pub const PUBLIC_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

pub const RULES: &[Rule] = &[
    // Ledger: reads for everyone; currencies for admins; the rest for posters.
    rule("/tally.v1.Ledger/GetLedgerInfo", Read, EVERYONE),
    rule("/tally.v1.Ledger/CreateCurrencies", Write, ADMINS),
    rule("/tally.v1.Ledger/ListCurrencies", Read, EVERYONE),
    rule("/tally.v1.Ledger/CreateAccounts", Write, POSTERS),
    rule("/tally.v1.Ledger/CloseAccount", Write, POSTERS),
    rule("/tally.v1.Ledger/GetAccount", Read, EVERYONE),
    rule("/tally.v1.Ledger/ListAccounts", Read, EVERYONE),
    rule("/tally.v1.Ledger/CreateTransactions", Write, POSTERS),
    rule("/tally.v1.Ledger/CreateTransactionsPacked", Write, POSTERS),
    rule("/tally.v1.Ledger/PostPending", Write, POSTERS),
    rule("/tally.v1.Ledger/VoidPending", Write, POSTERS),
    rule("/tally.v1.Ledger/GetTransaction", Read, EVERYONE),
    rule("/tally.v1.Ledger/ListTransactions", Read, EVERYONE),
    rule("/tally.v1.Ledger/GetBalances", Read, EVERYONE),
    rule("/tally.v1.Ledger/GetAccountHistory", Read, EVERYONE),
    rule("/tally.v1.Ledger/GetTrialBalance", Read, EVERYONE),
    rule("/tally.v1.Ledger/FollowJournal", Read, EVERYONE),
    // Audit: reads for everyone; a checkpoint on demand appends an entry.
    rule("/tally.v1.Audit/GetCheckpoint", Read, EVERYONE),
    rule("/tally.v1.Audit/CreateCheckpoint", Write, &[Admin, Finance]),
    rule("/tally.v1.Audit/ListSigningKeys", Read, EVERYONE),
    rule("/tally.v1.Audit/GetEntry", Read, EVERYONE),
    rule("/tally.v1.Audit/GetInclusionProof", Read, EVERYONE),
    rule("/tally.v1.Audit/GetConsistencyProof", Read, EVERYONE),
    rule("/tally.v1.Audit/ExportJournal", Read, EVERYONE),
    // Admin: keys.
    rule("/tally.v1.Admin/CreateApiKey", Write, ADMINS),
    rule("/tally.v1.Admin/RevokeApiKey", Write, ADMINS),
    rule("/tally.v1.Admin/RotateApiKey", Write, ADMINS),
    rule("/tally.v1.Admin/ListApiKeys", Read, ADMINS),
    rule("/tally.v1.Admin/WhoAmI", Read, EVERYONE),
    // Metering: events from posters; meters and closed periods are billing
    // configuration (finance); customers from front ends or finance.
    rule(
        "/tally.v1.Metering/CreateCustomers",
        Write,
        CUSTOMER_WRITERS,
    ),
    rule("/tally.v1.Metering/ListCustomers", Read, EVERYONE),
    rule("/tally.v1.Metering/DefineMeter", Write, FINANCE),
    rule("/tally.v1.Metering/ListMeters", Read, EVERYONE),
    rule("/tally.v1.Metering/IngestEvents", Write, POSTERS),
    rule("/tally.v1.Metering/IngestEventsPacked", Write, POSTERS),
    rule("/tally.v1.Metering/QueryUsage", Read, EVERYONE),
    rule("/tally.v1.Metering/QueryUsageSeries", Read, EVERYONE),
    rule("/tally.v1.Metering/CloseUsagePeriod", Write, FINANCE),
    rule("/tally.v1.Metering/ListLateEvents", Read, EVERYONE),
    rule("/tally.v1.Metering/ProveEvent", Read, EVERYONE),
    // Rating: plan versions are billing configuration (finance), like meters;
    // quotes and simulations record nothing, so every role may read them.
    rule("/tally.v1.Rating/PublishPlan", Write, FINANCE),
    rule("/tally.v1.Rating/ListPlans", Read, EVERYONE),
    rule("/tally.v1.Rating/GetPlan", Read, EVERYONE),
    rule("/tally.v1.Rating/Quote", Read, EVERYONE),
    rule("/tally.v1.Rating/Simulate", Read, EVERYONE),
    // Billing: profiles and subscriptions are set up with the customer (front
    // ends or finance, as CreateCustomers); coupons, tax tables, billing runs,
    // voids, credit notes and payments move money or price it (finance).
    // Reads for everyone.
    rule(
        "/tally.v1.Billing/SetBillingProfile",
        Write,
        CUSTOMER_WRITERS,
    ),
    rule("/tally.v1.Billing/GetBillingProfile", Read, EVERYONE),
    rule("/tally.v1.Billing/GetSubscription", Read, EVERYONE),
    rule("/tally.v1.Billing/ListSubscriptions", Read, EVERYONE),
    rule("/tally.v1.Billing/Subscribe", Write, CUSTOMER_WRITERS),
    rule("/tally.v1.Billing/ChangePlan", Write, CUSTOMER_WRITERS),
    rule("/tally.v1.Billing/EndSubscription", Write, CUSTOMER_WRITERS),
    rule("/tally.v1.Billing/GrantCoupon", Write, FINANCE),
    rule("/tally.v1.Billing/PublishTaxRules", Write, FINANCE),
    rule("/tally.v1.Billing/RunBilling", Write, FINANCE),
    rule("/tally.v1.Billing/GetInvoice", Read, EVERYONE),
    rule("/tally.v1.Billing/ListInvoices", Read, EVERYONE),
    rule("/tally.v1.Billing/RenderInvoice", Read, EVERYONE),
    rule("/tally.v1.Billing/VoidInvoice", Write, FINANCE),
    rule("/tally.v1.Billing/IssueCreditNote", Write, FINANCE),
    rule("/tally.v1.Billing/RecordPayment", Write, FINANCE),
    rule("/tally.v1.Billing/GetCustomerCredit", Read, EVERYONE),
    rule("/tally.v1.Billing/ReceivableAgeing", Read, EVERYONE),
];

pub fn is_public(path: &str) -> bool {
    PUBLIC_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

pub fn rule_of(path: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.method == path)
}

/// Why a key may not call a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    NoRule,
    Role,
    ReadOnly,
}

/// Whether a key of `role` (restricted to reads if `read_only`) may call `path`.
pub fn allows(role: Role, read_only: bool, path: &str) -> Result<(), Denied> {
    let rule = rule_of(path).ok_or(Denied::NoRule)?;
    if !rule.roles.contains(&role) {
        return Err(Denied::Role);
    }
    if read_only && rule.access == Access::Write {
        return Err(Denied::ReadOnly);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditors_and_read_only_keys_never_write() {
        for rule in RULES.iter().filter(|r| r.access == Write) {
            assert!(
                !rule.roles.contains(&Auditor),
                "{} lets auditors write",
                rule.method
            );
            for role in Role::ALL {
                assert!(allows(role, true, rule.method).is_err());
            }
        }
    }

    #[test]
    fn admins_may_call_everything_and_rules_are_unique() {
        for rule in RULES {
            assert_eq!(allows(Admin, false, rule.method), Ok(()));
            assert_eq!(RULES.iter().filter(|r| r.method == rule.method).count(), 1);
        }
        assert_eq!(
            allows(Admin, false, "/tally.v1.Ledger/Nope"),
            Err(Denied::NoRule)
        );
    }
}
