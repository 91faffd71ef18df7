//! `spark completions SHELL` and `spark man`: shell completions and a man page, made
//! from the command line's own definition, so they never fall behind it.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Outcome};

/// Print a completion script for SHELL, made from spark's own definition. For bash:
/// `spark completions bash > /etc/bash_completion.d/spark`.
#[derive(Debug, Args)]
pub struct Completions {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

impl Completions {
    pub fn run(self) -> anyhow::Result<Outcome> {
        // Made whole first: clap_complete panics on a write error, and a reader that
        // goes away (`| head`) is not an error.
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut Cli::command(), "spark", &mut script);
        std::io::Write::write_all(&mut std::io::stdout(), &script)?;
        Ok(Outcome::Done)
    }
}

/// Print spark's man page (roff), made from its own definition:
/// `spark man > /usr/local/share/man/man1/spark.1`.
#[derive(Debug, Args)]
pub struct Man {}

impl Man {
    pub fn run(self) -> anyhow::Result<Outcome> {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut page)?;
        std::io::Write::write_all(&mut std::io::stdout(), &page)?;
        Ok(Outcome::Done)
    }
}
