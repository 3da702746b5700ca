//! The fault runs' Gemini stand-in, with faults decided per request and call, so that the
//! outcome of every request is known before it is sent.
//!
//! Request `fault-{i}` asks about the topic `Fault tolerance {i}` (the topic is the part of the
//! request a `generateContent` body carries). Call `c` made for that request gets the fault of
//! slot `mix(i, c) mod 100`: below `error_pct` a 429 or 503 (with `Retry-After: 0`), then
//! `malformed_pct` slots of an answer that is not the schema, then `slow_pct` slots of an
//! answer after the client's timeout, and the rest answer well. So the injected percentages are
//! per call, as before, but each request's sequence of faults is fixed, and [`Rates::script`] replays
//! the generator's failure policy (functions/question-generator/src/gemini/policy.rs) over it:
//! the calls one generation makes and how it ends. A request generated again (the batch that
//! crashes after publishing, a batch retried while the broker is away) makes the same calls
//! again: the stand-in counts the calls per request and answers call `n` with the fault of
//! `n mod` the script's length.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qgen_contract::prompt::PromptData;
use qgen_testkit::gemini_reply;
use wiremock::{Request, Respond, ResponseTemplate};

use super::harness::env_number;

/// The topic of request number `index`; the stand-in reads the number back.
pub fn topic(index: usize) -> String {
    format!("Fault tolerance {index}")
}

fn index_of(topic: &str) -> Option<usize> {
    topic.strip_prefix("Fault tolerance ")?.parse().ok()
}

/// What the stand-in does with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 or 503, `Retry-After: 0`: transient, retried at once.
    Error,
    /// 200 with text that is not the response schema: unusable, repaired once.
    Malformed,
    /// The right answer 3 s late, after the client's 1 s timeout: transient.
    Slow,
    /// The right answer.
    Answer,
}

/// The injected fault rates, in percent of calls.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub error_pct: usize,
    pub malformed_pct: usize,
    pub slow_pct: usize,
}

impl Rates {
    /// `FAULT_GEMINI_ERROR_PCT` (30), `FAULT_GEMINI_MALFORMED_PCT` (10), `FAULT_GEMINI_SLOW_PCT` (5).
    pub fn from_env() -> Self {
        Rates {
            error_pct: env_number("FAULT_GEMINI_ERROR_PCT", 30),
            malformed_pct: env_number("FAULT_GEMINI_MALFORMED_PCT", 10),
            slow_pct: env_number("FAULT_GEMINI_SLOW_PCT", 5),
        }
    }

    /// The fault of call `call` (0 for the first) made for request `index`.
    pub fn fault(&self, index: usize, call: usize) -> Fault {
        let slot = (mix(((index as u64) << 8) | call as u64) % 100) as usize;
        if slot < self.error_pct {
            Fault::Error
        } else if slot < self.error_pct + self.malformed_pct {
            Fault::Malformed
        } else if slot < self.error_pct + self.malformed_pct + self.slow_pct {
            Fault::Slow
        } else {
            Fault::Answer
        }
    }

    /// One generation of request `index` as the generator's policy runs it: calls until an
    /// answer; a transient failure (error, timeout) is retried until `max_attempts` of them
    /// (`GEMINI_MAX_ATTEMPTS`), then the request fails `gemini_unavailable`; the first unusable
    /// answer gets one repair call, the second fails the request `invalid_model_output`.
    /// (The breaker is kept out of the way, and the deadline is minutes away.)
    pub fn script(&self, index: usize, max_attempts: u32) -> Script {
        let mut faults = Vec::new();
        let mut transient = 0;
        let mut repaired = false;
        for call in 0.. {
            let fault = self.fault(index, call);
            faults.push(fault);
            let outcome = match fault {
                Fault::Answer => Some("completed"),
                Fault::Error | Fault::Slow => {
                    transient += 1;
                    (transient >= max_attempts).then_some("failed:gemini_unavailable")
                }
                Fault::Malformed if repaired => Some("failed:invalid_model_output"),
                Fault::Malformed => {
                    repaired = true;
                    None
                }
            };
            if let Some(outcome) = outcome {
                return Script {
                    faults,
                    outcome: outcome.to_owned(),
                };
            }
        }
        unreachable!("a script ends by its max_attempts-th transient failure or second unusable answer")
    }

    /// The probability that a generation ends `failed`, were each call's fault drawn at random
    /// with these rates: the figure the scripts' failures are checked against.
    pub fn failure_probability(&self, max_attempts: u32) -> f64 {
        let transient = (self.error_pct + self.slow_pct) as f64 / 100.0;
        let unusable = self.malformed_pct as f64 / 100.0;
        // p(t, r): failing from t transient failures so far, r repair calls used.
        fn p(t: u32, r: bool, max: u32, transient: f64, unusable: f64) -> f64 {
            let after_transient = if t + 1 >= max {
                1.0
            } else {
                p(t + 1, r, max, transient, unusable)
            };
            let after_unusable = if r {
                1.0
            } else {
                p(t, true, max, transient, unusable)
            };
            transient * after_transient + unusable * after_unusable
        }
        p(0, false, max_attempts, transient, unusable)
    }
}

/// splitmix64's finalizer: a well-spread, fixed hash.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The calls of one generation and its outcome (`completed` or `failed:<code>`).
#[derive(Debug, Clone)]
pub struct Script {
    pub faults: Vec<Fault>,
    pub outcome: String,
}

/// The stand-in's state, shared with the test: the calls made per request.
pub struct Chaos {
    rates: Rates,
    max_attempts: u32,
    calls: Mutex<HashMap<usize, usize>>,
    /// Calls whose topic named no request of the run.
    strays: Mutex<usize>,
}

impl Chaos {
    pub fn new(rates: Rates, max_attempts: u32) -> Arc<Self> {
        Arc::new(Chaos {
            rates,
            max_attempts,
            calls: Mutex::new(HashMap::new()),
            strays: Mutex::new(0),
        })
    }

    /// Calls made so far for each request number.
    pub fn calls(&self) -> HashMap<usize, usize> {
        self.calls.lock().unwrap().clone()
    }

    pub fn strays(&self) -> usize {
        *self.strays.lock().unwrap()
    }
}

/// The responder mounted on the stand-in.
pub struct Responder(pub Arc<Chaos>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let chaos = &self.0;
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let Some(index) = PromptData::from_generate_content(&body).and_then(|data| index_of(&data.topic))
        else {
            *chaos.strays.lock().unwrap() += 1;
            // 400 is final for the generator: such a request fails `gemini_rejected`, which no
            // script expects.
            return ResponseTemplate::new(400);
        };
        let n = {
            let mut calls = chaos.calls.lock().unwrap();
            let n = calls.entry(index).or_default();
            *n += 1;
            *n - 1
        };
        let script = chaos.rates.script(index, chaos.max_attempts);
        match script.faults[n % script.faults.len()] {
            Fault::Error => {
                let status = if n.is_multiple_of(2) { 429 } else { 503 };
                ResponseTemplate::new(status).insert_header("retry-after", "0")
            }
            Fault::Malformed => {
                ResponseTemplate::new(200).set_body_json(gemini_reply("{\"questions\": \"nope\"", "STOP"))
            }
            Fault::Slow => answer(request).set_delay(Duration::from_secs(3)),
            Fault::Answer => answer(request),
        }
    }
}

fn answer(request: &Request) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(qgen_contract::offline::answer_generate_content(&request.body))
}
