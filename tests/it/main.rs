//! Integration tests: the real binary against real servers started by `scripts/test.sh`.

mod architecture;
mod calls;
mod config_example;
mod conformance;
mod crash_safety;
mod demo;
mod exactly_once;
mod faults;
mod ftps_end_to_end;
mod local_source;
mod ls;
mod metrics;
mod operations;
mod overlap;
mod parsers_never_panic;
mod queries;
mod queue_calls;
mod recordings;
mod retention;
mod s3;
mod schedules;
mod sftp;
mod status_page;
mod util;
mod verify;
