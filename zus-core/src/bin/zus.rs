//! `zus`: the zpmfs server. See `zus --help`.

use std::ffi::OsString;
use std::process::ExitCode;

use zus_core::cli::{parse_zus, ZusCommand, ZUS_USAGE};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let status = match parse_zus(&args) {
        Ok(ZusCommand::Help) => {
            println!("{ZUS_USAGE}");
            0
        }
        Ok(ZusCommand::Version) => {
            println!("zus {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(ZusCommand::Mount(m)) => zus_core::server::mount_main(&m),
        Ok(ZusCommand::Serve { config }) => zus_core::server::serve_main(config.as_deref()),
        Ok(ZusCommand::Status(m)) => zus_core::status::status_main(&m),
        Err(e) => {
            eprintln!("zus: {e}\n{ZUS_USAGE}");
            1
        }
    };
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
