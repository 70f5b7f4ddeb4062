//! Running child processes with their output in a log file, and reading logs back.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use anyhow::{Context, Result, bail};

/// How much of a failed command's output an error shows.
const FAILURE_TAIL_LINES: usize = 20;

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

/// Runs `command` to completion with its output captured (and no input).
pub fn captured(command: &mut Command) -> Result<Output> {
    command.stdin(Stdio::null()).output().with_context(|| format!("cannot start `{}`", describe(command)))
}

/// Runs `command` like [`captured`]; fails if it does, with the end of its output.
pub fn run_captured(command: &mut Command) -> Result<Output> {
    let output = captured(command)?;
    if !output.status.success() {
        bail!("{}", failure_report(command, &output));
    }
    Ok(output)
}

/// "`COMMAND` failed (STATUS)" and the last lines of what it printed (output, then errors).
pub fn failure_report(command: &Command, output: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let mut report = format!("`{}` failed ({})", describe(command), output.status);
    for line in last_lines(&text, FAILURE_TAIL_LINES) {
        report.push_str("\n    ");
        report.push_str(line);
    }
    report
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
    fn failures_show_the_command_status_and_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let error = run_captured(&mut command).unwrap_err().to_string();
        assert_eq!(error, "`sh -c 'echo out; echo err >&2; exit 3'` failed (exit status: 3)\n    out\n    err");
        let output = run_captured(Command::new("sh").args(["-c", "echo fine"])).unwrap();
        assert_eq!(output.stdout, b"fine\n");
        let error = captured(&mut Command::new("/nonexistent/program")).unwrap_err();
        assert!(error.to_string().starts_with("cannot start `/nonexistent/program`"));
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(last_lines("a\nb", 5), ["a", "b"]);
        assert!(last_lines("", 3).is_empty());
    }
}
