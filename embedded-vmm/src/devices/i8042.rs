//! Enough of the i8042 keyboard controller for Linux's probe and its reset: a controller with no
//! devices behind it that passes its self-test, and command 0xfe (pulse the reset line).

use crate::machine::{I8042_COMMAND, I8042_DATA};
use alloc::collections::VecDeque;

/// Replies the controller keeps at most: a guest that sends commands without reading the replies
/// loses the oldest (real hardware has a one-byte output register), so nothing grows without
/// bound.
const OUTPUT_MAX: usize = 16;

#[derive(Clone, Debug, Default)]
pub struct I8042 {
    output: VecDeque<u8>,
    command_byte: u8,
    /// The next data-port write is the argument of this command.
    pending: Option<u8>,
}

/// What a write asks of the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum I8042Effect {
    None,
    Reset,
}

impl I8042 {
    pub fn read(&mut self, port: u16) -> u8 {
        if port == I8042_COMMAND {
            // Output buffer full when there is data; system flag set.
            return 0x04 | (!self.output.is_empty()) as u8;
        }
        self.output.pop_front().unwrap_or(0)
    }

    pub fn write(&mut self, port: u16, value: u8) -> I8042Effect {
        if port == I8042_DATA {
            if self.pending.take() == Some(0x60) {
                self.command_byte = value;
            }
            return I8042Effect::None;
        }
        match value {
            0x20 => self.reply(self.command_byte),
            0x60 => self.pending = Some(0x60),
            0xaa => self.reply(0x55),        // controller self-test passed
            0xab | 0xa9 => self.reply(0x01), // port tests: clock line stuck low (no device)
            0xfe => return I8042Effect::Reset,
            _ => {}
        }
        I8042Effect::None
    }

    fn reply(&mut self, byte: u8) {
        if self.output.len() >= OUTPUT_MAX {
            self.output.pop_front();
        }
        self.output.push_back(byte);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest asking for the self-test in a loop without reading (0xaa to port 0x64) keeps at
    /// most [`OUTPUT_MAX`] replies.
    #[test]
    fn replies_are_bounded() {
        let mut k = I8042::default();
        for _ in 0..1_000_000 {
            k.write(0x64, 0xaa);
        }
        assert_eq!(k.output.len(), OUTPUT_MAX);
        assert_eq!(k.read(0x60), 0x55);
    }

    #[test]
    fn self_test_command_byte_and_reset() {
        let mut k = I8042::default();
        k.write(0x64, 0xaa);
        assert_eq!(k.read(0x64) & 1, 1);
        assert_eq!(k.read(0x60), 0x55);
        k.write(0x64, 0x60);
        k.write(0x60, 0x47);
        k.write(0x64, 0x20);
        assert_eq!(k.read(0x60), 0x47);
        assert_eq!(k.write(0x64, 0xfe), I8042Effect::Reset);
    }
}
