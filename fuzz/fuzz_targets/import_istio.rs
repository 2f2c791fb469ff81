//! The Istio `VirtualService` / `DestinationRule` importer on arbitrary text (see
//! `routing_fuzz::check_import`). Text without an `apiVersion` gets a
//! VirtualService header, so the fuzzer spends its time inside the importer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("apiVersion") {
        routing_fuzz::check_import(text);
    } else {
        routing_fuzz::check_import(&format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n{text}"
        ));
    }
});
