//! The `cdr-ingest` binary: parse the command line, start logging, run, and map the
//! outcome to an exit code (see README "Exit codes").

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cdr_ingest::cli::Cli::parse();
    cdr_ingest::cli::init_logging(cli.log_format, cli.command.default_log_level());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cdr_ingest::cli::EXIT_FATAL);
        }
    };
    match runtime.block_on(cdr_ingest::cli::execute(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(cdr_ingest::cli::exit_code_for(&error))
        }
    }
}
