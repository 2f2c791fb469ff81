//! `Config::from_yaml` on arbitrary text; valid configurations are routed and
//! round-tripped through `to_yaml` (see `routing_fuzz::check_config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Non-UTF-8 input cannot reach the parser through the public API (it takes &str).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    routing_fuzz::check_parsed(routing_core::Config::from_yaml(text));
});
