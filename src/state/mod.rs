//! What has been ingested, kept in the destination itself so a container needs no volume.

pub mod attempts;
pub mod json;
pub mod lease;
pub mod ledger;
pub mod runs;
pub mod seen;
