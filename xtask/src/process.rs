//! Running child processes with their output in a log file, and reading logs back.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{Context, Result};

/// The command line as a shell would show it, for messages and log headers.
pub fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            words.push(format!("'{}'", arg.replace('\'', r"'\''")));
        } else {
            words.push(arg.into_owned());
        }
    }
    words.join(" ")
}

/// Starts `command` with `stdin` as its input and both output streams in a new log file at `log`,
/// which begins with the command line.
pub fn spawn_logged(command: &mut Command, stdin: Stdio, log: &Path) -> Result<Child> {
    let mut file = File::create(log).with_context(|| format!("cannot create log file {}", log.display()))?;
    writeln!(file, "$ {}", describe(command)).with_context(|| format!("cannot write to log file {}", log.display()))?;
    let stderr = file.try_clone().with_context(|| format!("cannot duplicate log file handle {}", log.display()))?;
    command
        .stdin(stdin)
        .stdout(file)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start `{}`", describe(command)))
}

/// Runs `command` to completion with its output in `log` (see [`spawn_logged`]).
pub fn run_logged(command: &mut Command, log: &Path) -> Result<ExitStatus> {
    let mut child = spawn_logged(command, Stdio::null(), log)?;
    child.wait().with_context(|| format!("cannot wait for `{}`", describe(command)))
}

/// A log as text: serial output may hold bytes that are not UTF-8, which become U+FFFD.
pub fn read_log(log: &Path) -> Result<String> {
    let bytes = fs::read(log).with_context(|| format!("cannot read log file {}", log.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `count` lines of `text`.
pub fn last_lines(text: &str, count: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_arguments_a_shell_would_split() {
        let mut command = Command::new("qemu-system-x86_64");
        command.args(["-append", "", "-append", "a b", "-smp", "2", "it's"]);
        assert_eq!(describe(&command), r"qemu-system-x86_64 -append '' -append 'a b' -smp 2 'it'\''s'");
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(last_lines("a\nb", 5), ["a", "b"]);
        assert!(last_lines("", 3).is_empty());
    }
}
