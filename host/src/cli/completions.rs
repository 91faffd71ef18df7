//! `spark completions SHELL` and `spark man`: shell completions and a man page, made
//! from the command line's own definition, so they never fall behind it.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Outcome};

/// Print a completion script for SHELL, made from spark's own definition. For bash:
/// `spark completions bash > /etc/bash_completion.d/spark`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  spark completions bash > /etc/bash_completion.d/spark\n  spark completions zsh > ~/.zfunc/_spark"
)]
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
#[command(
    after_help = "Examples:\n  spark man > /usr/local/share/man/man1/spark.1\n  spark man | man -l -"
)]
pub struct Man {}

impl Man {
    pub fn run(self) -> anyhow::Result<Outcome> {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut page)?;
        std::io::Write::write_all(&mut std::io::stdout(), &page)?;
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::super::Cli;

    /// Every command with no subcommands of its own, by its path (`outbox send`).
    fn leaves(command: &clap::Command, path: &str, found: &mut Vec<(String, clap::Command)>) {
        for sub in command.get_subcommands() {
            let path = format!("{path} {}", sub.get_name()).trim().to_owned();
            if sub.has_subcommands() {
                leaves(sub, &path, found);
            } else {
                found.push((path, sub.clone()));
            }
        }
    }

    /// The arguments of a shell example after `spark`, up to a pipe or redirection,
    /// split as a shell splits them (single quotes only: the examples need no more).
    fn example_args(line: &str) -> Option<Vec<String>> {
        let (_, command) = line.split_once("spark ")?;
        let mut args = vec!["spark".to_owned()];
        let mut word = String::new();
        let mut quoted = false;
        for c in command.chars() {
            match c {
                '\'' => quoted = !quoted,
                '|' | '>' if !quoted => break,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        args.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            args.push(word);
        }
        Some(args)
    }

    #[test]
    fn every_command_has_examples_and_each_parses() {
        let mut commands = Vec::new();
        leaves(&Cli::command(), "", &mut commands);
        // A long example goes on over lines ending with `\`, as in a shell.
        let continued = regex::Regex::new(r"\\\n\s*").expect("a valid regex");
        assert!(commands.len() > 30, "{}", commands.len());
        for (path, command) in commands {
            let help = command
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            let help = continued.replace_all(&help, " ").into_owned();
            let examples: Vec<&str> = help
                .strip_prefix("Examples:\n")
                .or_else(|| help.strip_prefix("Example:\n"))
                .unwrap_or_else(|| panic!("`spark {path}` has no examples: {help:?}"))
                .lines()
                .collect();
            let mut of_it = 0;
            for example in examples {
                let args = example_args(example)
                    .unwrap_or_else(|| panic!("`spark {path}`: no spark in {example:?}"));
                let matches = Cli::command()
                    .try_get_matches_from(&args)
                    .unwrap_or_else(|error| {
                        panic!("`spark {path}`: {example:?} does not parse:\n{error}")
                    });
                let mut run = Vec::new();
                let mut at = &matches;
                while let Some((name, sub)) = at.subcommand() {
                    run.push(name);
                    at = sub;
                }
                // A workflow may show the commands around it too.
                of_it += usize::from(run.join(" ") == path);
            }
            assert!(of_it > 0, "no example of `spark {path}` is of it: {help:?}");
        }
    }

    #[test]
    fn examples_are_split_as_a_shell_splits_them() {
        assert_eq!(
            example_args("cat x | spark ingest --model m --when 'a <= 2' > out").unwrap(),
            ["spark", "ingest", "--model", "m", "--when", "a <= 2"]
        );
    }
}
