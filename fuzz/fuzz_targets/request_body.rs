//! The API's body parser and validator, on any bytes: a request that obeys every rule, or a
//! refusal naming its field — never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qgen_contract::validation::{Limits, parse_request_body};
use qgen_fuzz::{assert_clear_refusal, assert_valid_request};

fuzz_target!(|body: &[u8]| {
    let limits = Limits::default();
    match parse_request_body(body, &limits) {
        Ok(request) => assert_valid_request(&request, &limits),
        Err(error) => assert_clear_refusal(&error),
    }
});
