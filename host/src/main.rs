//! `spark`: the operator's command line. See `spark --help` and README.md.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
