//! Feeds arbitrary bytes to the IRC line reader and parser, checking the invariants in
//! `confab::gateway::irc::line::check_invariants`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    confab::gateway::irc::line::check_invariants(data);
});
