//! Everything that writes to the destination: where objects go, how Parquet is built,
//! and how finished files are uploaded so that readers never see half an object.

pub mod destination;
pub mod layout;
pub mod newest;
pub mod partition;
pub mod partitioned;
pub mod quarantine;
pub mod recording_index;
pub mod retry;
pub mod table_parquet;
pub mod upload;
